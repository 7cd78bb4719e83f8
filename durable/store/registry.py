"""The flow registry: flow versions stored by `durable register`, listed by name, and
loaded back for a worker to run. A part of `Store`, kept in a module of its own.

A registered version is a row of `flows` with `registered_at` set; rows that flow runs
create have it NULL. Registering an unchanged flow keeps its version
(`rows.register_version`). Loading a copy runs code, as loading a result does: a database
is trusted input, like a Python file.
"""

from __future__ import annotations

import abc
import pickle
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from durable.store import rows
from durable.store.records import (
    FlowSummaryRecord,
    NewRegistration,
    RegisteredFlowRecord,
    RegisteredVersion,
)
from durable.store.schema import MIGRATIONS, V4, V6
from durable.store.writer import CheckpointWriter

REGISTRY_SCHEMA, SETTINGS_SCHEMA = MIGRATIONS.index(V4) + 1, MIGRATIONS.index(V6) + 1
"""The first schema version with registrations (older databases, opened read-only and
so not migrated, have none)."""


def _summary_sql(registry: bool, settings: bool) -> str:
    # Per name: the latest version (f), the latest registered one (g), the latest run (r).
    registered = (
        "g.version, g.registered_at, COALESCE(g.source_path, f.source_path),"
        " g.schedule, g.schedule_text"
        if registry
        else "NULL, NULL, f.source_path, NULL, NULL"
    )
    latest_registered = (
        " LEFT JOIN flows g ON g.id = (SELECT id FROM flows WHERE name = f.name"
        " AND registered_at IS NOT NULL ORDER BY version DESC LIMIT 1)"
        if registry
        else ""
    )
    return (
        f"SELECT f.name, f.version, {registered}, r.id, r.state,"
        " COALESCE(r.started_at, r.created_at),"
        + (
            " COALESCE((SELECT paused_at IS NOT NULL FROM flow_settings"
            " WHERE name = f.name), 0)"
            if settings
            else " 0"
        )
        + " FROM flows f"
        f"{latest_registered}"
        " LEFT JOIN flow_runs r ON r.id = (SELECT id FROM flow_runs"
        " WHERE flow_name = f.name ORDER BY created_at DESC, id LIMIT 1)"
        " WHERE f.version = (SELECT MAX(version) FROM flows WHERE name = f.name)"
        " ORDER BY f.name"
    )


def load_copy(data: bytes, source_path: str | None) -> Any:
    """Unpickle a registered flow or schedule, as `durable run` would load its file.

    The file's directory goes on sys.path first, as with `python FILE`, so the modules
    it imports from beside it (pickled by reference) are found. Raises whatever
    unpickling raises: it runs imports and the user's reducers.
    """
    if source_path is not None:
        folder = str(Path(source_path).parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
    return pickle.loads(data)


class FlowRegistry(abc.ABC):
    """Store operations on registered flows: the worker's source of flows and schedules."""

    @property
    @abc.abstractmethod
    def writer(self) -> CheckpointWriter:
        """The checkpoint writer that registrations go through."""

    @abc.abstractmethod
    async def _fetch(self, sql: str, args: Iterable[Any]) -> list[Any]:
        """Run a query on the reader connection."""

    async def register_flow(self, new: NewRegistration) -> RegisteredVersion:
        """Store a flow as its next version, unless its latest version is the same flow.

        The check and the insert share one write transaction, so two registrations of
        one flow at the same time create one version, not two.
        """
        outcome: list[RegisteredVersion] = []
        self.writer.submit(
            lambda conn: outcome.append(rows.register_version(conn, new))
        )
        await self.writer.flush()
        return outcome[0]

    async def list_flows(self) -> list[FlowSummaryRecord]:
        """Return every flow, by name: its latest version, registration and run."""
        version = int((await self._fetch("PRAGMA user_version", ()))[0][0])
        sql = _summary_sql(version >= REGISTRY_SCHEMA, version >= SETTINGS_SCHEMA)
        return [FlowSummaryRecord(*row) for row in await self._fetch(sql, ())]

    async def load_registered_flow(
        self, name: str, version: int | None = None
    ) -> RegisteredFlowRecord | None:
        """Return a registered version of a flow with its copy loaded, ready to run.

        Args:
            name: the flow's name.
            version: the version to load; None loads the latest registered one.

        Returns:
            None if the flow has no such registered version (a version that only runs
            created holds no copy).

        Raises:
            Exception: whatever unpickling the copy raises, e.g. ModuleNotFoundError
                when a module it imports has moved; register the flow again.
        """
        if not await self._has_registry():
            return None
        only = "" if version is None else " AND version = ?"
        fetched = await self._fetch(
            "SELECT name, version, fingerprint, source_path, registered_at,"
            " schedule_text, flow_blob FROM flows WHERE name = ?"
            f" AND registered_at IS NOT NULL{only} ORDER BY version DESC LIMIT 1",
            (name,) if version is None else (name, version),
        )
        if not fetched:
            return None
        name, version, fingerprint, source, registered_at, text, blob = fetched[0]
        return RegisteredFlowRecord(
            name, version, fingerprint, source, registered_at, text,
            flow=load_copy(blob, source),
        )  # fmt: skip

    async def _has_registry(self) -> bool:
        version = await self._fetch("PRAGMA user_version", ())
        return int(version[0][0]) >= REGISTRY_SCHEMA
