"""The task library: ready-made tasks and flow-building helpers, as Prefect 1's `prefect.tasks`.

Modules build on the authoring layer (`durable.core`), never on the engine or the store:
`control_flow` (case, switch, ifelse, merge, FilterTask).
"""
