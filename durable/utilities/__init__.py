"""Helpers Prefect 1 kept under `prefect.utilities`, at the same paths under `durable`."""
