"""State the worker tests' flows share with the tests. Kept apart from the flows: a
registered copy pickles task bodies by value but this module by reference."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

CALLS: Counter[str] = Counter()
"""How many times each task body ran (reset by the tests' fixture)."""

HALT: list[Callable[[], None]] = []
"""Callbacks `halt` calls (then waits forever): a test's way to crash a run mid-flow."""

BROKEN: set[str] = set()
"""Names of tasks that fail while listed (the re-run tests mend them between runs)."""
