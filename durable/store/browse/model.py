"""The TUI's read model: what each screen shows, read from a durable database as
immutable records through one read-only SQLite connection.

It never writes (the connection is `mode=ro` and `query_only`), never unpickles (a
parameter that is not JSON shows as its size), and never holds a read transaction
between calls, so workers never wait on the TUI and WAL checkpoints go on. `changed()`
reads `PRAGMA data_version`: a poll that finds nothing committed costs one statement.
It reads every schema version from 1 on: what an older database lacks reads as empty.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from durable.store.browse.connection import ModelConnection, ModelError
from durable.store.browse.filters import (
    LogFilter,
    RunFilter,
)
from durable.store.browse.queries import (
    ACTIVE,
    CELLS,
    COUNTS,
    FAILED,
    LONGEST_RUN,
    TAIL,
    TASK_STATES,
    WAITING,
    Queries,
    TextMatch,
    flow_history,
    log_conditions,
    run_conditions,
    run_detail,
    run_row,
    task_run_detail,
)
from durable.store.browse.records import (
    ActionRow,
    FlowHistory,
    FlowRow,
    LogLine,
    ParameterRow,
    ResultRow,
    RunCounts,
    RunDetail,
    RunRow,
    ScheduledRow,
    TailLine,
    TaskRunDetail,
    WorkerRow,
)

__all__ = ["ModelError", "ReadModel"]

NO_FILTER = RunFilter()
"""The filter that lets every run through."""
NO_LOG_FILTER = LogFilter()
"""The filter that lets every log line through."""
CHUNK = 500
"""Ids bound per `IN (...)`: below SQLite's oldest variable limit (999)."""


class ReadModel(ModelConnection):
    """A read-only view of one durable database, for one process's TUI.

    Safe to call from any thread, one call at a time (a lock serialises them).
    Raises ModelError when the database is missing, not durable's, too new, or a read
    fails (for instance while a crashed writer's WAL is recovered).
    """

    def __init__(self, db: str | Path) -> None:
        super().__init__(db)
        self._sql = Queries(self._has)

    # Runs ----------------------------------------------------------------------------
    def runs(self, filter: RunFilter = NO_FILTER, limit: int = 500) -> list[RunRow]:
        """Return the runs that pass `filter`, newest first, at most `limit`."""
        with self._lock, self._snapshot():
            where, args = run_conditions(filter, self._text_matches(filter.text))
            fetched = self._fetch(
                f"{self._sql.runs}{where}"
                " ORDER BY r.created_at DESC, r.rowid DESC LIMIT ?",
                (*args, limit),
            )
            counts = self._task_counts([row[0] for row in fetched])
        return [run_row(row, counts.get(row[0], {})) for row in fetched]

    def run(self, run_id: str) -> RunDetail | None:
        """Return one run with its task runs, graph and state history (None: no such
        run)."""
        with self._lock, self._snapshot():
            fetched = self._fetch(self._sql.run, (run_id,))
            if not fetched:
                return None
            tasks = self._fetch(self._sql.tasks, (run_id,))
            history = self._fetch(
                "SELECT id, task_run_id, name, message, timestamp FROM states"
                " WHERE flow_run_id = ? ORDER BY id",
                (run_id,),
            )
        return run_detail(fetched[0], tasks, history)

    def results(self, run_id: str, preview: int = 120) -> list[ResultRow]:
        """Return what a run's task runs stored as results: serializer, size and, for
        JSON, the first `preview` characters. Nothing is unpickled."""
        with self._lock:
            fetched = self._fetch(
                "SELECT r.task_run_id, t.task_slug, t.map_index, r.serializer,"
                " length(r.value), CASE WHEN r.serializer = 'json'"
                " THEN CAST(substr(r.value, 1, ?) AS TEXT) END"
                " FROM task_runs t JOIN results r ON r.task_run_id = t.id"
                " WHERE t.flow_run_id = ? ORDER BY t.rowid",
                (preview, run_id),
            )
        return [ResultRow(*row) for row in fetched]

    def logs(
        self,
        run_id: str,
        *,
        after_id: int = 0,
        task_run_id: str | None = None,
        limit: int = 10_000,
    ) -> list[LogLine]:
        """Return a run's log lines with ids above `after_id`, oldest first; only one
        task run's if `task_run_id` is given. Poll with the last id seen."""
        only = "" if task_run_id is None else " AND l.task_run_id = ?"
        args = (run_id, after_id, *([] if task_run_id is None else [task_run_id]))
        with self._lock:
            fetched = self._fetch(
                "SELECT l.id, l.timestamp, l.level, l.logger, t.task_slug,"
                " COALESCE(t.map_index, -1), l.message FROM logs l"
                " LEFT JOIN task_runs t ON t.id = l.task_run_id"
                f" WHERE l.flow_run_id = ? AND l.id > ?{only} ORDER BY l.id LIMIT ?",
                (*args, limit),
            )
        return [LogLine(*row) for row in fetched]

    def tail(
        self, filter: LogFilter = NO_LOG_FILTER, *, after_id: int = 0, limit: int = 500
    ) -> list[TailLine]:
        """Return the newest `limit` log lines of any run that pass `filter` and have
        ids above `after_id`, oldest first. Poll with the last id seen.

        Without `run:` or `flow:` only the latest `TAIL_WINDOW` lines are looked at,
        and `flow:` looks at the flow's latest `RECENT_RUNS` runs: a tail is recent.
        """
        with self._lock, self._snapshot():
            newest = self._fetch("SELECT MAX(id) FROM logs")[0][0] or 0
            where, args = log_conditions(filter, after_id=after_id, newest_id=newest)
            lines = f"SELECT * FROM logs l{where} ORDER BY l.id DESC LIMIT ?"
            fetched = self._fetch(TAIL.format(lines=lines), (*args, limit))
        return [TailLine(*row) for row in fetched]

    def task_run(self, run_id: str, task_run_id: str) -> TaskRunDetail | None:
        """Return one task run of a run with its attempts and state history (None: no
        such task run in that run)."""
        with self._lock, self._snapshot():
            run = self._fetch(self._sql.run, (run_id,))
            task = self._fetch(self._sql.task, (task_run_id, run_id))
            if not run or not task:
                return None
            history = self._fetch(TASK_STATES, (task_run_id,))
            counts = self._task_counts([run_id])
        return task_run_detail(run[0], counts.get(run_id, {}), task[0], history)

    def flow_history(self, name: str, limit: int = 50) -> FlowHistory | None:
        """Return a flow's latest `limit` runs (oldest first) with their task runs, its
        task order and graph, for the Flow detail screen (None: no such flow).

        The runs come through the (flow_name, created_at) index, so the cost follows
        `limit`, not how many runs the flow has.
        """
        with self._lock, self._snapshot():
            flow = self._fetch(self._sql.flow, (name,))
            if not flow:
                return None
            fetched = self._fetch(self._sql.flow_runs, (name, limit))
            ids = [row[0] for row in fetched]
            counts, cells = self._task_counts(ids), self._task_cells(ids)
            next_tick = None
            if self._has("scheduled_runs"):
                next_tick = self._fetch(
                    "SELECT MIN(scheduled_for) FROM scheduled_runs"
                    " WHERE flow_name = ? AND status IN (?, ?)",
                    (name, *WAITING),
                )[0][0]
        runs = [run_row(row, counts.get(row[0], {})) for row in fetched]
        return flow_history(name, flow[0], next_tick, runs, cells)

    def _task_cells(self, run_ids: Sequence[str]) -> list[Any]:
        """The task runs (not mapped children) of runs: run id, then `TaskCell`'s."""
        cells: list[Any] = []
        for start in range(0, len(run_ids), CHUNK):
            chunk = run_ids[start : start + CHUNK]
            marks = ", ".join("?" * len(chunk))
            cells += self._fetch(f"{CELLS} ({marks}) ORDER BY rowid", chunk)
        return cells

    def counts(self, since: float) -> RunCounts:
        """Count the runs running now and those that ended failed at or after `since`
        (the header's badge; a run created over `LONGEST_RUN` before is left out)."""
        with self._lock:
            args = (*ACTIVE, *FAILED, since - LONGEST_RUN, since)
            running, failed = self._fetch(COUNTS, args)[0]
        return RunCounts(running, failed)

    # Flows, schedules, workers -----------------------------------------------------
    def flows(self) -> list[FlowRow]:
        """Return every flow by name, in name order."""
        with self._lock, self._snapshot():
            fetched = self._fetch(self._sql.flows)
            latest: defaultdict[str, list[str]] = defaultdict(list)
            for name, state in self._fetch(self._sql.last_runs):
                latest[name].append(state)
            # Counted here, not with GROUP BY: given ANALYZE statistics, SQLite would
            # walk a whole flow_name index to group rather than seek the few active.
            running = Counter(
                name
                for (name,) in self._fetch(
                    "SELECT flow_name FROM flow_runs WHERE state IN (?, ?)", ACTIVE
                )
            )
            ticks: dict[str, float] = {}
            if self._has("scheduled_runs"):
                for name, when in self._fetch(
                    "SELECT flow_name, scheduled_for FROM scheduled_runs"
                    " WHERE status IN (?, ?)",
                    WAITING,
                ):
                    ticks[name] = min(when, ticks.get(name, when))
        flows = []
        for name, version, registered, schedule, paused, catchup in fetched:
            row = FlowRow(
                name, version, bool(registered), schedule, bool(paused), catchup,
                tuple(latest.get(name, ())), running.get(name, 0), ticks.get(name),
            )  # fmt: skip
            flows.append(row)
        return flows

    def scheduled(
        self, *, flow: str | None = None, limit: int = 200
    ) -> list[ScheduledRow]:
        """Return scheduled runs: the waiting ones (Scheduled, Late) first, soonest
        first, then the latest of the others, up to `limit` in all."""
        if not self._has("scheduled_runs"):
            return []
        only, args = ("", ()) if flow is None else (" AND flow_name = ?", (flow,))
        with self._lock, self._snapshot():
            waiting = self._fetch(
                f"{self._sql.scheduled} WHERE status IN (?, ?){only}"
                " ORDER BY scheduled_for, id LIMIT ?",
                (*WAITING, *args, limit),
            )
            others = self._fetch(
                f"{self._sql.scheduled} WHERE status NOT IN (?, ?){only}"
                " ORDER BY scheduled_for DESC, id DESC LIMIT ?",
                (*WAITING, *args, limit - len(waiting)),
            )
        return [ScheduledRow(*row) for row in (*waiting, *others)]

    def workers(self) -> list[WorkerRow]:
        """Return every worker that has run on the database, latest heartbeat first."""
        if not self._has("workers"):
            return []
        with self._lock:
            fetched = self._fetch(
                "SELECT w.name, w.pid, w.started_at, w.heartbeat_at, w.stopped_at,"
                " w.concurrency, (SELECT COUNT(*) FROM scheduled_runs s"
                " WHERE s.status = 'Running' AND s.claimed_by = w.name)"
                " FROM workers w ORDER BY w.heartbeat_at DESC, w.name"
            )
        return [WorkerRow(*row) for row in fetched]

    def _text_matches(self, text: str | None) -> list[TextMatch]:
        """How each bare word of a filter is best looked for (see `TextMatch`)."""
        words = (text or "").split()
        if not words:
            return []
        names = [name for (name,) in self._fetch("SELECT DISTINCT name FROM flows")]
        matches = []
        for word in words:
            found = tuple(n for n in names if word.casefold() in n.casefold())
            runs = 0
            if found and len(found) < len(names) and len(found) <= CHUNK:
                marks = ", ".join("?" * len(found))
                runs = self._fetch(
                    f"SELECT COUNT(*) FROM flow_runs WHERE flow_name IN ({marks})",
                    found,
                )[0][0]
            matches.append(TextMatch(word, found, len(found) == len(names), runs))
        return matches

    def _task_counts(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        counts: defaultdict[str, dict[str, int]] = defaultdict(dict)
        for start in range(0, len(run_ids), CHUNK):
            chunk = run_ids[start : start + CHUNK]
            for run_id, state, count in self._fetch(
                "SELECT flow_run_id, state, COUNT(*) FROM task_runs WHERE flow_run_id"
                f" IN ({', '.join('?' * len(chunk))}) GROUP BY flow_run_id, state",
                chunk,
            ):
                counts[run_id][state] = count
        return counts

    # The trigger form and the audit log ------------------------------------------------
    def parameters(self, flow_name: str) -> list[ParameterRow]:
        """Return the parameters of a flow's latest registered version, by name ([]:
        none, not registered, or registered before parameters were recorded)."""
        if not self._has("flows", "parameters"):
            return []
        with self._lock:
            fetched = self._fetch(
                "SELECT parameters FROM flows WHERE name = ? AND registered_at IS NOT"
                " NULL ORDER BY version DESC LIMIT 1",
                (flow_name,),
            )
        if not fetched or fetched[0][0] is None:
            return []
        return [
            ParameterRow(p["name"], p["default"], bool(p["required"]))
            for p in json.loads(fetched[0][0])
        ]

    def actions(self, limit: int = 200) -> list[ActionRow]:
        """Return the newest `limit` lines of the audit log, newest first."""
        if not self._has("actions"):
            return []
        with self._lock:
            fetched = self._fetch(
                "SELECT id, at, actor, verb, target, outcome, ok FROM actions"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            )
        return [
            ActionRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in fetched
        ]
