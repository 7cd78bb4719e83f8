"""The screens: Runs (the default area), Run detail, Flows, Schedules and Workers."""

from tui.screens.base import MUTATING, Loaded, PollingScreen, TableScreen, plain
from tui.screens.run_detail import RunDetailScreen
from tui.screens.runs import RunsScreen, run_cells, task_counts
from tui.screens.tables import FlowsScreen, SchedulesScreen, WorkersScreen

__all__ = [
    "MUTATING", "FlowsScreen", "Loaded", "PollingScreen", "RunDetailScreen", "RunsScreen",
    "SchedulesScreen", "TableScreen", "WorkersScreen", "plain", "run_cells", "task_counts",
]  # fmt: skip
