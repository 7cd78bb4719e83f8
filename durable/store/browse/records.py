"""The records the TUI's read model returns: immutable, plain values, one per row a
screen shows. `durable.store.browse.ReadModel` builds them; renderers and screens only read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunRow:
    """One flow run, as the Runs list shows it."""

    id: str
    flow_name: str
    flow_version: int
    state: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    trigger: str | None
    """schedule, manual or backfill (how its scheduled run came to be); None when the
    run was not started by a worker."""
    worker: str | None
    """The worker holding its claim (only while the run is claimed)."""
    tasks: Mapping[str, int]
    """How many of its task runs are in each state."""


@dataclass(frozen=True, slots=True)
class AttemptSpan:
    """One attempt of a task run: from its Running state to the state after it."""

    start: float
    end: float | None
    """None while the attempt is still running."""
    state: str
    """The state the attempt ended in (Running while it runs)."""


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task run of a run, with its attempts."""

    task_run_id: str
    slug: str
    name: str
    """Its own name (`task_run_name`) if it has one, else its task's."""
    map_index: int
    """-1 for a task run that is not a mapped child."""
    state: str
    attempts: int
    started_at: float | None
    ended_at: float | None
    message: str | None
    upstream: tuple[str, ...]
    """The slugs of the tasks it waits for (empty when the version has no graph)."""
    spans: tuple[AttemptSpan, ...]


@dataclass(frozen=True, slots=True)
class StateEvent:
    """One state transition of a run or of one of its task runs."""

    id: int
    timestamp: float
    task_slug: str | None
    """None for the flow run's own transitions."""
    map_index: int
    name: str
    message: str | None


@dataclass(frozen=True, slots=True)
class RunDetail:
    """Everything the Run detail screen shows, from one consistent read."""

    run: RunRow
    parameters: str
    """Pretty JSON, or "(pickled, N bytes)": the model never unpickles."""
    tasks: tuple[TaskRow, ...]
    """In the flow's dependency order (then map index) if its version has a graph,
    else in creation order."""
    edges: tuple[tuple[str, str], ...]
    """(upstream slug, downstream slug); empty if the version has no graph."""
    events: tuple[StateEvent, ...]


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line of a run."""

    id: int
    timestamp: float
    level: int
    logger: str
    task_slug: str | None
    map_index: int
    message: str


@dataclass(frozen=True, slots=True)
class TailLine:
    """One log line of the global tail (any run), with the run and flow it belongs to."""

    id: int
    timestamp: float
    level: int
    logger: str
    flow_run_id: str | None
    flow_name: str | None
    """None when the line's run is gone (or it was logged outside a run)."""
    task_slug: str | None
    map_index: int
    message: str


@dataclass(frozen=True, slots=True)
class TaskRunDetail:
    """Everything the Task run screen shows, from one consistent read."""

    run: RunRow
    task: TaskRow
    """The task run, with one span per attempt."""
    events: tuple[StateEvent, ...]
    """Its own state history, oldest first."""
    downstream: tuple[str, ...]
    """The slugs of the tasks that wait for it (empty when the version has no graph)."""


@dataclass(frozen=True, slots=True)
class TaskCell:
    """One task run of a run in a flow's history: a cell of the history grid."""

    task_run_id: str
    slug: str
    state: str
    attempts: int
    started_at: float | None
    ended_at: float | None
    message: str | None


@dataclass(frozen=True, slots=True)
class HistoryRun:
    """One run in a flow's history, with its task runs by slug (not mapped children)."""

    run: RunRow
    tasks: Mapping[str, TaskCell]


@dataclass(frozen=True, slots=True)
class FlowHistory:
    """Everything the Flow detail screen shows of one flow, from one consistent read."""

    name: str
    version: int
    """Its latest version."""
    schedule: str | None
    """The latest registered version's schedule, in one line."""
    paused: bool
    next_tick: float | None
    """When its earliest waiting scheduled run is due, if it has one."""
    tasks: tuple[str, ...]
    """Task slugs: the latest version's graph order, then any other slug its runs have."""
    edges: tuple[tuple[str, str], ...]
    """(upstream slug, downstream slug) of the latest version; empty without a graph."""
    runs: tuple[HistoryRun, ...]
    """Its latest runs, oldest first."""


@dataclass(frozen=True, slots=True)
class RunCounts:
    """The header's badge: runs running now, and runs failed since a given time."""

    running: int
    failed: int


@dataclass(frozen=True, slots=True)
class FlowRow:
    """One flow, by name, as the Flows list shows it."""

    name: str
    version: int
    """Its latest version (registered or created by a run)."""
    registered: bool
    """Whether any version of it is registered (a worker can run it)."""
    schedule: str | None
    """The latest registered version's schedule, in one line."""
    paused: bool
    catchup: str | None
    last_runs: tuple[str, ...]
    """The states of its latest runs (up to 20), oldest first."""
    running: int
    next_tick: float | None
    """When its earliest waiting scheduled run is due, if it has one."""


@dataclass(frozen=True, slots=True)
class ScheduledRow:
    """One scheduled run: a schedule tick, a trigger or a backfilled tick."""

    id: str
    """Also the id of the flow run it starts."""
    flow_name: str
    kind: str
    scheduled_for: float
    status: str
    worker: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One worker that has run on the database."""

    name: str
    pid: int
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    concurrency: int
    running: int
    """How many runs it holds claims on."""


@dataclass(frozen=True, slots=True)
class ParameterRow:
    """One parameter of a registered flow, for the trigger form."""

    name: str
    default: str | None
    """The default as JSON text (None: no default, or one that is not JSON)."""
    required: bool


@dataclass(frozen=True, slots=True)
class ActionRow:
    """One line of the audit log (durable.control's actions)."""

    id: int
    at: float
    actor: str
    verb: str
    target: str
    outcome: str
    ok: bool


@dataclass(frozen=True, slots=True)
class ResultRow:
    """A task run's stored result, described without loading it."""

    task_run_id: str
    slug: str
    map_index: int
    serializer: str
    size: int
    """Bytes stored in the database (for a result kept in a file: its reference)."""
    preview: str | None
    """The start of a JSON result (never a pickled one: the model does not unpickle)."""
