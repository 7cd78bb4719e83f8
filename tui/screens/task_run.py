"""Task run (pushed from Run detail or the history grid): a task run's attempts on the
left, the selected attempt's log lines on the right, its state message and neighbours
below; `[`/`]` switch attempts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Static

from durable.store.browse import LogLine, StateEvent, TaskRunDetail
from durable.text import clean as shown
from tui.render.palette import clean, glyph, state_cell
from tui.render.timefmt import clock, duration
from tui.screens.base import PollingScreen, plain
from tui.widgets import Cell, FollowLog, VimTable

ATTEMPT_COLUMNS = [("n", "#"), ("start", "Start"), ("state", "State"),
                   ("took", "Duration")]  # fmt: skip
STARTED = re.compile(r"Starting task run \(attempt \d+\)")
"""The engine's line at the start of each attempt: log lines are split into attempts
there (their timestamps are the logging clock's, not the run's time source)."""
LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a task run: its Running state and the state that ended it."""

    start: float
    end: float | None
    state: str
    message: str | None


def attempts_of(events: Sequence[StateEvent]) -> list[Attempt]:
    """Each Running state and the one after it (still running if none follows)."""
    found = []
    for i, event in enumerate(events):
        if event.name == "Running":
            end = events[i + 1] if i + 1 < len(events) else None
            found.append(Attempt(event.timestamp, end.timestamp if end else None,
                                 end.name if end else "Running",
                                 end.message if end else None))  # fmt: skip
    return found


def split_attempts(lines: Sequence[LogLine]) -> list[list[LogLine]]:
    """The lines of each attempt, in order: a new one begins at each start line (lines
    before the first go with it)."""
    groups: list[list[LogLine]] = [[]]
    for line in lines:
        if (
            STARTED.search(line.message)
            and groups[-1]
            and any(STARTED.search(seen.message) for seen in groups[-1])
        ):
            groups.append([])
        groups[-1].append(line)
    return groups


def log_text(line: LogLine) -> list[str]:
    """A log line as lines of plain text: a traceback's lines indented below the first,
    control characters (escape sequences) replaced."""
    level = LEVELS.get(line.level, str(line.level))
    first, *rest = line.message.splitlines() or [""]
    return [clean(f"{clock(line.timestamp)} {level} {first}"),
            *(clean(f"    {more}") for more in rest)]  # fmt: skip


class TaskRunScreen(PollingScreen):
    """One task run: its attempts, the selected attempt's logs, its message."""

    AUTO_FOCUS = "#attempts"
    DEFAULT_CSS = """
    TaskRunScreen #attempts { width: 44; height: 1fr; }
    TaskRunScreen #task-log { width: 1fr; height: 1fr; }
    TaskRunScreen #body { height: 1fr; }
    TaskRunScreen #detail { height: auto; max-height: 12; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("left_square_bracket", "attempt(-1)", "Prev attempt"),
        Binding("right_square_bracket", "attempt(1)", "Next attempt"),
        Binding("R", "restart", "Retry from here", id="run.restart"),
    ]

    def __init__(self, run_id: str, task_run_id: str) -> None:
        super().__init__()
        self.run_id, self.task_run_id = run_id, task_run_id
        self.detail: TaskRunDetail | None = None
        self.lines: list[LogLine] = []
        self._log_after = 0
        self._shown: tuple[str | None, int] = (None, 0)
        """The attempt the log shows, and how many of its lines it holds."""

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with Horizontal(id="body"):
            yield VimTable(ATTEMPT_COLUMNS, id="attempts", follow=True)
            yield FollowLog(id="task-log")
        yield Static(id="detail")
        yield Footer()

    def load(self, model: Any, force: bool) -> Any:
        if not model.changed() and not force:
            return None
        detail = model.task_run(self.run_id, self.task_run_id)
        logs = model.logs(self.run_id, after_id=self._log_after,
                          task_run_id=self.task_run_id)  # fmt: skip
        return detail, logs

    def apply(self, data: Any) -> None:
        detail, logs = data
        if detail is None:
            self.query_one("#header", Static).update(
                plain(f"No task run {self.task_run_id} in run {self.run_id}")
            )
            return
        self.detail = detail
        if logs:
            self._log_after = logs[-1].id
            self.lines += logs
        self.show_detail(detail)

    def tick(self) -> None:
        if self.detail is not None and self.detail.task.state == "Running":
            self.show_detail(self.detail)

    def show_detail(self, detail: TaskRunDetail) -> None:
        now, task = self.durable.clock(), detail.task
        name = task.slug if task.map_index < 0 else f"{task.slug}[{task.map_index}]"
        header = plain(f"task {name} · run {detail.run.id} ({detail.run.flow_name}) · ")
        header.append_text(state_cell(task.state))
        header.append(f" · attempts {task.attempts}")
        if task.started_at is not None:
            end = task.ended_at if task.ended_at is not None else now
            header.append(f" · {duration(end - task.started_at)}")
        self.query_one("#header", Static).update(header)
        attempts = attempts_of(detail.events)
        table = self.query_one("#attempts", VimTable)
        table.show([(str(i), _attempt_cells(i, a, now))
                    for i, a in enumerate(attempts, 1)])  # fmt: skip
        table.border_title = f"Attempts · {len(attempts)}"
        self._show_log()
        self._show_message(detail, attempts)

    def _selected(self) -> int | None:
        """The selected attempt's index (None: no attempts, show every line)."""
        key = self.query_one("#attempts", VimTable).selected_key
        return int(key) - 1 if key is not None else None

    def _show_log(self) -> None:
        index = self._selected()
        groups = split_attempts(self.lines)
        if index is None:
            lines = self.lines
        else:  # an attempt without lines of its own (yet) shows none
            lines = groups[index] if index < len(groups) else []
        key = None if index is None else str(index + 1)
        log = self.query_one("#task-log", FollowLog)
        shown_key, count = self._shown
        if shown_key != key or count > len(lines):
            log.clear()
            count = 0
        if len(lines) > count:
            log.append([text for line in lines[count:] for text in log_text(line)])
        self._shown = (key, len(lines))
        log.border_subtitle = "all attempts" if key is None else f"attempt {key}"

    def _show_message(self, detail: TaskRunDetail, attempts: list[Attempt]) -> None:
        index = self._selected()
        text = Text()
        if index is not None and index < len(attempts):
            attempt = attempts[index]
            text.append(f"attempt {index + 1}/{len(attempts)} · ")
            text.append_text(state_cell(attempt.state))
            if attempt.message:
                text.append(shown(f" · {attempt.message}"))
            text.append("\n")
        if detail.task.message:
            text.append(shown(f"{glyph(detail.task.state)} {detail.task.message}\n"))
        up = ", ".join(detail.task.upstream) or "—"
        down = ", ".join(detail.downstream) or "—"
        text.append(clean(f"▲ upstream: {up}   ▼ downstream: {down}"))
        self.query_one("#detail", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.detail is not None and event.data_table.id == "attempts":
            self._show_log()
            self._show_message(self.detail, attempts_of(self.detail.events))

    def action_attempt(self, step: int) -> None:
        table = self.query_one("#attempts", VimTable)
        if table.row_count:
            row = max(0, min(table.cursor_row + step, table.row_count - 1))
            table.move_cursor(row=row)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_restart(self) -> None:
        if self.detail is not None:
            self.durable.confirm_restart(  # TUI.md E: "this task + downstream"
                self.detail.run, selected=self.detail.task.slug, mode="from_task"
            )


def _attempt_cells(number: int, attempt: Attempt, now: float) -> list[Cell]:
    end = attempt.end if attempt.end is not None else now
    return [plain(number), plain(clock(attempt.start)), state_cell(attempt.state),
            plain(duration(end - attempt.start))]  # fmt: skip
