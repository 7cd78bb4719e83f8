"""The read model's SQL, fitted to the columns a database has, and how its rows become
records (a run's detail: task order from the flow's graph, attempts from its states).

Every value is bound; the only text put into SQL comes from this module.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from durable.store.browse.filters import LogFilter, RunFilter
from durable.store.browse.records import (
    AttemptSpan,
    FlowHistory,
    HistoryRun,
    RunDetail,
    RunRow,
    StateEvent,
    TaskCell,
    TaskRow,
    TaskRunDetail,
)

WAITING = ("Scheduled", "Late")
"""Scheduled-run statuses that mean waiting to run."""
ACTIVE = ("Running", "Cancelling")
"""Flow-run states that mean running now."""
FAILED = ("Failed", "TimedOut", "TriggerFailed", "Crashed")
"""Flow-run states that mean it failed (the header's "failed(1h)" badge)."""


class Queries:
    """The model's SQL, fitted once to the columns the database has."""

    def __init__(self, has: Callable[..., bool]) -> None:
        trigger = worker = "NULL"
        join = ""
        if has("scheduled_runs"):
            join = " LEFT JOIN scheduled_runs s ON s.id = r.id"
            trigger = (
                "s.kind"
                if has("scheduled_runs", "kind")
                else "CASE WHEN s.id IS NULL THEN NULL ELSE 'schedule' END"
            )
            worker = "s.claimed_by"
        self.runs = (
            "SELECT r.id, r.flow_name, COALESCE(f.version, 0), r.state, r.created_at,"
            f" r.started_at, r.ended_at, {trigger}, {worker} FROM flow_runs r"
            f" LEFT JOIN flows f ON f.id = r.flow_id{join}"
        )
        self.flow_runs = (
            f"{self.runs} WHERE r.flow_name = ?"
            " ORDER BY r.created_at DESC, r.rowid DESC LIMIT ?"
        )
        graph = "f.graph" if has("flows", "graph") else "NULL"
        detail = f", r.parameters, r.parameters_serializer, {graph} FROM flow_runs r"
        self.run = self.runs.replace(" FROM flow_runs r", detail) + " WHERE r.id = ?"
        named = has("task_runs", "run_name")
        name = "COALESCE(run_name, task_name)" if named else "task_name"
        task = (
            f"SELECT id, task_slug, {name}, map_index, state, attempts, started_at,"
            " ended_at, state_message FROM task_runs"
        )
        self.tasks = f"{task} WHERE flow_run_id = ? ORDER BY rowid"
        self.task = f"{task} WHERE id = ? AND flow_run_id = ?"
        self.flows = self._flows(has)
        self.flow = self._flow(has)
        self.last_runs = (
            "SELECT r.flow_name, r.state FROM (SELECT DISTINCT name FROM flows) n"
            " JOIN flow_runs r ON r.rowid IN (SELECT rowid FROM flow_runs"
            " WHERE flow_name = n.name ORDER BY created_at DESC, rowid DESC LIMIT 20)"
            " ORDER BY r.flow_name, r.created_at, r.rowid"
        )
        self.scheduled = (
            "SELECT id, flow_name, "
            + ("kind" if has("scheduled_runs", "kind") else "'schedule'")
            + ", scheduled_for, status, claimed_by, message FROM scheduled_runs"
        )

    @staticmethod
    def _paused(has: Callable[..., bool]) -> str:
        return (
            "COALESCE((SELECT paused_at IS NOT NULL FROM flow_settings"
            " WHERE name = f.name), 0)"
            if has("flow_settings")
            else "0"
        )

    @classmethod
    def _flow(cls, has: Callable[..., bool]) -> str:
        # One name's latest version (f): its graph, the latest registered schedule.
        schedule = (
            "(SELECT schedule_text FROM flows WHERE name = f.name"
            " AND registered_at IS NOT NULL ORDER BY version DESC LIMIT 1)"
            if has("flows", "registered_at")
            else "NULL"
        )
        graph = "f.graph" if has("flows", "graph") else "NULL"
        return (
            f"SELECT f.version, {schedule}, {cls._paused(has)}, {graph} FROM flows f"
            " WHERE f.name = ? ORDER BY f.version DESC LIMIT 1"
        )

    @classmethod
    def _flows(cls, has: Callable[..., bool]) -> str:
        # Per name: the latest version (f) and the latest registered one (g).
        registered = has("flows", "registered_at")
        catchup = "g.catchup" if has("flows", "catchup") else "NULL"
        paused = cls._paused(has)
        return (
            "SELECT f.name, f.version, "
            + (
                f"g.id IS NOT NULL, g.schedule_text, {paused}, {catchup} FROM flows f"
                " LEFT JOIN flows g ON g.id = (SELECT id FROM flows WHERE name = f.name"
                " AND registered_at IS NOT NULL ORDER BY version DESC LIMIT 1)"
                if registered
                else f"0, NULL, {paused}, NULL FROM flows f"
            )
            + " WHERE f.version = (SELECT MAX(version) FROM flows WHERE name = f.name)"
            " ORDER BY f.name"
        )


NARROW = 5_000
"""Up to this many runs, a text filter's matches are found through indexes and sorted;
beyond, runs are scanned newest first until the page is full (the page fills fast)."""


@dataclass(frozen=True, slots=True)
class TextMatch:
    """A bare word of a filter: the runs whose id starts with it, or whose flow's name
    contains it (in any case)."""

    word: str
    flows: tuple[str, ...]
    """The flow names that contain the word."""
    every_flow: bool
    """Every flow's name contains it: every run matches."""
    runs: int
    """How many runs those flows have (0 when not counted: none, or every flow)."""

    def clause(self) -> tuple[str, list[Any]]:
        """The condition, written so that SQLite takes the right path to the rows.

        Few matching runs: a union of two index searches (id range, flow names), then
        a sort. Many: no index for this word (`+column`), so runs are read newest first
        and the page fills within a few thousand rows. Either way no filter scans every
        run unless it matches almost none of them and some other word is broad.
        """
        if self.every_flow:
            return "", []
        args: list[Any] = [self.word, self.word + "\uffff", *self.flows]
        plus = "+" if self.runs > NARROW or len(self.flows) > 500 else ""
        names = ", ".join("?" * len(self.flows))
        in_flows = f" OR {plus}r.flow_name IN ({names})" if self.flows else ""
        return f"(({plus}r.id >= ? AND {plus}r.id < ?){in_flows})", args


def run_conditions(
    filter: RunFilter, matches: Sequence[TextMatch] = ()
) -> tuple[str, list[Any]]:
    """The WHERE clause of a run filter (its bare words as `matches`); values are
    bound."""
    clauses: list[str] = []
    args: list[Any] = []
    if filter.state:
        clauses.append(f"r.state IN ({', '.join('?' * len(filter.state))})")
        args.extend(sorted(filter.state))
    if filter.flow is not None:
        clauses.append("r.flow_name = ?")
        args.append(filter.flow)
    if filter.since is not None:
        clauses.append("r.created_at >= ?")
        args.append(filter.since)
    for match in matches:
        clause, values = match.clause()
        if clause:
            clauses.append(clause)
            args.extend(values)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def parameters_text(value: bytes | str | None, serializer: str) -> str:
    """Show stored parameters without unpickling: JSON pretty, anything else sized."""
    if value is None:
        return "{}"
    data = value.encode() if isinstance(value, str) else bytes(value)
    if serializer != "json":
        return f"(pickled, {len(data)} bytes)"
    try:
        return json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except ValueError:
        return f"(unreadable JSON, {len(data)} bytes)"


@dataclass(frozen=True, slots=True)
class Graph:
    """A flow version's stored graph: task order and edges (empty when absent)."""

    order: Mapping[str, int]
    edges: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str | None) -> Graph | None:
        if text is None:
            return None
        try:
            data = json.loads(text)
            order = {str(task[0]): i for i, task in enumerate(data["tasks"])}
            edges = tuple(dict.fromkeys((str(e[0]), str(e[1])) for e in data["edges"]))
        except (ValueError, KeyError, IndexError, TypeError):
            return None  # written by something else: show the run without a graph
        return cls(order, edges)

    def upstream(self) -> dict[str, tuple[str, ...]]:
        found: defaultdict[str, list[str]] = defaultdict(list)
        for up, down in self.edges:
            found[down].append(up)
        return {down: tuple(ups) for down, ups in found.items()}


def run_row(row: Sequence[Any], tasks: Mapping[str, int]) -> RunRow:
    """A run from the first nine columns of `Queries.runs`."""
    return RunRow(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], tasks
    )


def run_detail(
    row: Sequence[Any], tasks: Sequence[Any], history: Sequence[Any]
) -> RunDetail:
    """Assemble a run's detail from its `Queries.run` row, its `Queries.tasks` rows
    and its states (id, task run id, name, message, timestamp), oldest first."""
    graph = Graph.parse(row[11])
    where = {task[0]: (task[1], task[3]) for task in tasks}
    events, attempts = [], defaultdict[str, list[tuple[str, float]]](list)
    for state_id, task_run_id, name, message, timestamp in history:
        slug, index = where.get(task_run_id, (None, -1))
        events.append(StateEvent(state_id, timestamp, slug, index, name, message))
        if task_run_id is not None:
            attempts[task_run_id].append((name, timestamp))
    upstream = {} if graph is None else graph.upstream()
    rows = [task_row(task, upstream, attempts[task[0]]) for task in tasks]
    if graph is not None:
        last, created = len(graph.order), {r.task_run_id: i for i, r in enumerate(rows)}
        rows.sort(
            key=lambda r: (graph.order.get(r.slug, last), r.map_index, created[r.task_run_id])
        )  # fmt: skip
    return RunDetail(
        run_row(row, dict(Counter(r.state for r in rows))),
        parameters_text(row[9], row[10]),
        tuple(rows),
        () if graph is None else graph.edges,
        tuple(events),
    )


def task_row(
    task: Sequence[Any],
    upstream: Mapping[str, tuple[str, ...]],
    history: Sequence[tuple[str, float]],
) -> TaskRow:
    """A task run from a `Queries.tasks` row, its upstream slugs and its states."""
    return TaskRow(
        task[0], task[1], task[2], task[3], task[4], task[5], task[6], task[7],
        task[8], upstream.get(task[1], ()), attempt_spans(history),
    )  # fmt: skip


def attempt_spans(history: Sequence[tuple[str, float]]) -> tuple[AttemptSpan, ...]:
    """Each attempt: a Running state to the state after it (open while running)."""
    spans: list[AttemptSpan] = []
    start: float | None = None
    for name, timestamp in history:
        if start is not None:
            spans.append(AttemptSpan(start, timestamp, name))
            start = None
        if name == "Running":
            start = timestamp
    if start is not None:
        spans.append(AttemptSpan(start, None, "Running"))
    return tuple(spans)


TAIL = (
    "SELECT l.id, l.timestamp, l.level, l.logger, l.flow_run_id, r.flow_name,"
    " t.task_slug, COALESCE(t.map_index, -1), l.message FROM ({lines}) l"
    " LEFT JOIN flow_runs r ON r.id = l.flow_run_id"
    " LEFT JOIN task_runs t ON t.id = l.task_run_id ORDER BY l.id"
)
"""The log tail's lines, as `TailLine`s, oldest first, around `{lines}`: the newest
lines wanted (`log_conditions`), chosen before the joins so that only they are joined."""
TASK_STATES = (
    "SELECT id, name, message, timestamp FROM states WHERE task_run_id = ? ORDER BY id"
)
CELLS = (
    "SELECT flow_run_id, id, task_slug, state, attempts, started_at, ended_at,"
    " state_message FROM task_runs WHERE map_index = -1 AND flow_run_id IN"
)
"""Task runs that are not mapped children: run id, then `TaskCell`'s columns."""
COUNTS = (
    "SELECT (SELECT COUNT(*) FROM flow_runs WHERE state IN (?, ?)),"
    " (SELECT COUNT(*) FROM flow_runs WHERE state IN (?, ?, ?, ?)"
    " AND created_at >= ? AND ended_at >= ?)"
)
"""Runs running now, and runs that ended failed since a time: `(*ACTIVE, *FAILED,
since - LONGEST_RUN, since)`, two searches of the (state, created_at) index."""
LONGEST_RUN = 7 * 86_400.0
"""The failed-runs badge leaves out runs created longer than this before its window,
so that it reads a week of failures, not every failure ever (seconds)."""
RECENT_RUNS = 100
"""The log tail's `flow:` looks at the lines of that flow's latest this-many runs."""
TAIL_WINDOW = 200_000
"""Without `run:` or `flow:`, the log tail looks among the latest this-many lines, so a
rare level or word costs a bounded scan, never one of the whole table."""


def log_conditions(
    filter: LogFilter, *, after_id: int, newest_id: int
) -> tuple[str, list[Any]]:
    """The WHERE clause of the log tail (logs `l`), its values bound: by run through
    the run's index, by flow through its latest runs, else within `TAIL_WINDOW`."""
    clauses, args = ["l.id > ?"], list[Any]([after_id])
    if filter.run is not None:
        clauses.append("l.flow_run_id = ?")
        args.append(filter.run)
    if filter.flow is not None:
        clauses.append(
            "l.flow_run_id IN (SELECT id FROM flow_runs WHERE flow_name = ?"
            " ORDER BY created_at DESC LIMIT ?)"
        )
        args += [filter.flow, RECENT_RUNS]
    if filter.run is None and filter.flow is None:
        args[0] = max(after_id, newest_id - TAIL_WINDOW)
    if filter.level:
        clauses.append("l.level >= ?")
        args.append(filter.level)
    for word in filter.text:
        clauses.append("l.message LIKE ? ESCAPE '\\'")
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        args.append(f"%{escaped}%")
    return " WHERE " + " AND ".join(clauses), args


def flow_history(
    name: str,
    flow: Sequence[Any],
    next_tick: float | None,
    runs: Sequence[RunRow],
    cells: Sequence[Any],
) -> FlowHistory:
    """Assemble a flow's history from its `Queries.flow` row, its runs (newest first)
    and their task runs (run id, then `TaskCell`'s columns)."""
    graph = Graph.parse(flow[3])
    by_run: defaultdict[str, dict[str, TaskCell]] = defaultdict(dict)
    seen: dict[str, None] = dict.fromkeys(graph.order if graph is not None else ())
    for run_id, *columns in cells:
        cell = TaskCell(*columns)
        by_run[run_id][cell.slug] = cell
    for run in reversed(runs):  # slugs outside the graph: in order of first appearance
        seen.update(dict.fromkeys(by_run[run.id]))
    return FlowHistory(
        name, flow[0], flow[1], bool(flow[2]), next_tick, tuple(seen),
        () if graph is None else graph.edges,
        tuple(HistoryRun(run, by_run[run.id]) for run in reversed(runs)),
    )  # fmt: skip


def task_run_detail(
    row: Sequence[Any],
    counts: Mapping[str, int],
    task: Sequence[Any],
    history: Sequence[Any],
) -> TaskRunDetail:
    """Assemble a task run's detail from its run's `Queries.run` row, the run's task
    counts, its `Queries.task` row and its states (id, name, message, timestamp)."""
    graph = Graph.parse(row[11])
    slug, index = task[1], task[3]
    events = tuple(StateEvent(i, at, slug, index, name, message)
                   for i, name, message, at in history)  # fmt: skip
    upstream = {} if graph is None else graph.upstream()
    spans = [(name, at) for _, name, _, at in history]
    downstream = () if graph is None else tuple(
        dict.fromkeys(down for up, down in graph.edges if up == slug)
    )  # fmt: skip
    return TaskRunDetail(
        run_row(row, counts), task_row(task, upstream, spans), events, downstream
    )
