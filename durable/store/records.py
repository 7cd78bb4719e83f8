"""Plain records the store returns; database rows never leave `durable.store`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FlowRunRecord:
    """One flow run as stored."""

    id: str
    flow_name: str
    flow_version: int
    fingerprint: str
    source_path: str | None
    state: str
    state_message: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class TaskRunRecord:
    """One task run as stored (its latest state; history lives in StateRecord)."""

    id: str
    flow_run_id: str
    task_slug: str
    task_name: str
    map_index: int
    state: str
    state_message: str | None
    attempts: int
    has_result: bool
    started_at: float | None
    ended_at: float | None
    updated_at: float
    run_name: str | None = None
    """The name its task's `task_run_name` gave it, if any."""


@dataclass(frozen=True, slots=True)
class StateRecord:
    """One transition in a run's history."""

    id: int
    flow_run_id: str
    task_run_id: str | None
    name: str
    message: str | None
    timestamp: float
    details: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log line written during a run."""

    id: int
    flow_run_id: str | None
    task_run_id: str | None
    timestamp: float
    level: int
    logger: str
    message: str


@dataclass(frozen=True, slots=True)
class CacheEntryRecord:
    """One cached task result, without its value (`Store.load_cache_value` reads it)."""

    id: int
    cache_key: str
    map_index: int
    flow_run_id: str
    task_run_id: str
    serializer: str
    hashed_inputs: dict[str, str]
    hashed_parameters: dict[str, str]
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class NewCacheEntry:
    """A cached task result to store: its value serialized, its inputs fingerprinted."""

    cache_key: str
    map_index: int
    flow_run_id: str
    task_run_id: str
    serializer: str
    value: bytes
    hashed_inputs: dict[str, str]
    hashed_parameters: dict[str, str]
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change to record: the state's name, message, time and details."""

    name: str
    message: str | None
    timestamp: float
    details: dict[str, Any] | None
    finished: bool


@dataclass(frozen=True, slots=True)
class NewTaskRun:
    """A task run to create, Pending, when its flow run starts."""

    id: str
    slug: str
    name: str
    map_index: int = -1


@dataclass(frozen=True, slots=True)
class NewRegistration:
    """A flow version to register: what identifies it, its copy and its schedule."""

    name: str
    fingerprint: str
    source_path: str | None
    flow_blob: bytes
    """The Flow, cloudpickled: what a worker loads and runs."""
    flow_hash: str
    """Equal for two registrations of an unchanged flow (see `store.packaging`)."""
    schedule: bytes | None
    """The flow's Schedule, cloudpickled (None: the flow has no schedule)."""
    schedule_text: str | None
    """The schedule in one line, kept as text so a listing never needs to unpickle it."""
    registered_at: float
    catchup: str | None = None
    """The flow's catchup policy (`Flow(catchup=...)`); None: the worker's default."""
    graph: str | None = None
    """The flow's graph as JSON (`durable.core.identity.shape`), for readers."""
    parameters: str | None = None
    """The flow's parameters as JSON (`durable.core.identity.parameters_of`)."""


@dataclass(frozen=True, slots=True)
class RegisteredVersion:
    """What a registration did: the version that holds the flow, and whether it is new."""

    name: str
    version: int
    is_new: bool
    """False when the flow was unchanged and its latest version was kept."""


@dataclass(frozen=True, slots=True)
class FlowSummaryRecord:
    """One flow by name: its latest version, its latest registration and its latest run."""

    name: str
    version: int
    """The latest version, whether registered or created by a run."""
    registered_version: int | None
    """The latest registered version (None: never registered)."""
    registered_at: float | None
    source_path: str | None
    """The file of the latest registered version (of the latest version if none)."""
    schedule: bytes | None
    """The latest registered version's Schedule, cloudpickled."""
    schedule_text: str | None
    last_run_id: str | None
    last_run_state: str | None
    last_run_at: float | None
    """When the latest run started (when it was created, if it has not started)."""
    paused: bool = False
    """Whether its schedule is paused (durable schedule pause)."""


@dataclass(frozen=True, slots=True)
class RegisteredFlowRecord:
    """A registered flow version, with its copy of the flow loaded."""

    name: str
    version: int
    fingerprint: str
    source_path: str | None
    registered_at: float
    schedule_text: str | None
    flow: Any
    """The Flow, unpickled: ready to run."""


@dataclass(frozen=True, slots=True)
class SchedulableFlowRecord:
    """A flow whose latest registered version has a schedule, and where its ticks stand."""

    name: str
    version: int
    source_path: str | None
    schedule: bytes
    """The Schedule, cloudpickled."""
    cursor: float
    """Ticks up to here are accounted for: the newest tick recorded for the flow (any
    version), or its first registration if none is."""
    catchup: str | None = None
    """The flow's catchup policy (None: the worker's default)."""
    paused: bool = False
    """Whether its schedule is paused (its ticks are recorded as Skipped)."""


@dataclass(frozen=True, slots=True)
class NewScheduledRun:
    """A schedule tick to record: a run to start, or a missed tick that is skipped."""

    id: str
    flow_name: str
    flow_version: int
    scheduled_for: float
    parameters_hash: str
    parameters: bytes
    """The clock's parameter defaults, pickled."""
    status: str
    """Scheduled, or Skipped (with `message` saying why)."""
    message: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class ScheduledRunRecord:
    """One schedule tick as stored, with its claim if a worker holds it."""

    id: str
    """Also the id of the flow run it starts."""
    flow_name: str
    flow_version: int
    scheduled_for: float
    parameters: bytes
    status: str
    message: str | None
    created_at: float
    claimed_by: str | None
    lease_token: str | None
    lease_expires_at: float | None
    pid: int | None
    pid_started: str | None
    launches: int
    crashes: int
    ended_at: float | None
    kind: str = "schedule"
    """schedule (a tick), manual (`durable trigger`) or backfill (`durable backfill`)."""
    claimed_at: float | None = None
    rerun: str | None = None
    """A queued re-run: `resume`, `restart` or `restart:["slug", ...]` (see
    `durable.store.reruns`)."""


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A worker that has run on the database, and the runs it holds now."""

    name: str
    pid: int
    pid_started: str
    concurrency: int
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    running: int
    """How many runs it holds claims on."""
