"""Authoring: tasks, flows, parameters and edges, which build a DAG and know nothing of SQLite.

The public names are re-exported by `durable`; import them from there.
"""
