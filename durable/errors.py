"""The exceptions durable raises on purpose.

```
DurableError             base for what durable raises on purpose (signals are not errors)
├── ConfigurationError   bad task, flow or parameter definition: raised at definition time
│   └── ParameterError   unknown, missing or malformed flow-run parameters
├── FlowChangedError     resume refused: the flow's fingerprint differs from the run's
├── RunNotFoundError     no flow run with that id (or prefix)
├── SerializationError   a result cannot be (un)pickled: names the task run and the type
└── StoreError           the database is unusable
    ├── DatabaseAccessError  this user may not read or write the file or its directory
    │   └── InsecurePermissionsError  other users could write it: refused for writing
    ├── DiskFullError      a write found the disk (or the database's size cap) full
    └── SchemaTooNewError   written by a newer durable: refused, never modified
```

`ConfigurationError` also derives from `ValueError`, because Prefect 1 raised `ValueError` for
the same mistakes and code written for it catches that.
"""

from __future__ import annotations

from typing import Any


class DurableError(Exception):
    """Base class for every error durable raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # A task may raise one, and a failed task's exception is pickled as its result:
        # rebuild it from its message and attributes, whatever its __init__ takes.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[DurableError], args: tuple[Any, ...], state: dict[str, Any]
) -> DurableError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigurationError(DurableError, ValueError):
    """A task, flow or parameter is defined in a way that cannot run."""


class ParameterError(ConfigurationError):
    """Flow-run parameters are unknown, missing or malformed; nothing was run."""


class FlowChangedError(DurableError):
    """A run cannot resume because its flow has changed shape."""

    def __init__(self, *, run_id: str, flow_name: str) -> None:
        super().__init__(
            f"Run {run_id!r} was started by another version of flow {flow_name!r} "
            "(its tasks or edges differ); pass allow_flow_changes=True "
            "(CLI: --allow-flow-changes) to resume it anyway, or start a new run"
        )
        self.run_id, self.flow_name = run_id, flow_name


class RunNotFoundError(DurableError):
    """No flow run matches the id given."""

    def __init__(self, run_id: str, *, detail: str = "") -> None:
        message = f"No flow run {run_id!r} in this database"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.run_id = run_id


class SerializationError(DurableError):
    """A task's result could not be serialized or deserialized."""

    def __init__(
        self, *, task_name: str, type_name: str, serializer: str, reason: str
    ) -> None:
        super().__init__(
            f"Task {task_name!r} returned a {type_name} that the {serializer!r} "
            f"serializer cannot store ({reason}); return a picklable value, "
            "or set checkpoint=False on the task"
        )
        self.task_name, self.type_name = task_name, type_name
        self.serializer, self.reason = serializer, reason


class StoreError(DurableError):
    """The database cannot be opened or used."""


class DatabaseAccessError(StoreError):
    """The file, its -wal/-shm or its directory may not be read or written by this
    user: a setup problem (exit 2), found before SQLite touches anything."""


class InsecurePermissionsError(DatabaseAccessError):
    """The database (or its directory) is writable by other users, who could then change
    what runs: refused for writing unless allowed (`--allow-insecure-perms`), exit 2."""


class DiskFullError(StoreError):
    """A write failed for lack of space (SQLITE_FULL): nothing of it was recorded, and
    what committed before stands; free space, then resume the run."""


class LeaseLostError(StoreError):
    """A worker-run process lost its claim: another worker runs its flow run now, so
    its writes are refused (fenced) rather than mixed with the new owner's."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer durable; it is left untouched."""

    def __init__(self, *, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"Database {path!r} has schema version {found}, but this durable "
            f"supports up to {supported}; it was written by a newer durable. "
            "Upgrade durable to use it (the file was not modified)"
        )
        self.path, self.found, self.supported = path, found, supported
