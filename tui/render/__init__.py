"""Pure renderers for the TUI: states, times, Gantt bars, the DAG, the history grid, sparklines.

Every function here takes its data (and the current time) as arguments and returns a
`rich.text.Text` or a `str`, so each one is tested against golden strings without Textual.
"""

from __future__ import annotations
