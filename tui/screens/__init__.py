"""The screens: Runs (the default area), Run detail, Task run, Flows, Flow detail,
Schedules, Workers and Logs."""

from tui.screens.base import MUTATING, Loaded, PollingScreen, TableScreen, plain
from tui.screens.events import EventsScreen
from tui.screens.flow_detail import FlowDetailScreen
from tui.screens.run_detail import RunDetailScreen
from tui.screens.runs import RunsScreen, run_cells, task_counts
from tui.screens.tables import FlowsScreen, SchedulesScreen, WorkersScreen
from tui.screens.task_run import TaskRunScreen

__all__ = [
    "MUTATING", "EventsScreen", "FlowDetailScreen", "FlowsScreen", "Loaded",
    "PollingScreen", "RunDetailScreen", "RunsScreen", "SchedulesScreen", "TableScreen",
    "TaskRunScreen", "WorkersScreen", "plain", "run_cells", "task_counts",
]  # fmt: skip
