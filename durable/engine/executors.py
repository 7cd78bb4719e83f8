"""Executors: where task bodies run.

`LocalExecutor` (the default) runs one task at a time, in the flow's order, with sync bodies
called directly on the engine's thread, as Prefect 1's LocalExecutor did. A body with a
timeout runs on a worker thread so that the timeout can abandon it (a soft timeout: Python
cannot kill a thread, so its code may go on in the background, as in Prefect 1).
`ConcurrentExecutor` runs up to `max_workers` ready tasks at once: sync bodies on threads,
async bodies on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import anyio.to_thread
from anyio import CapacityLimiter


class Executor(Protocol):
    """Runs task bodies; the flow runner runs at most `max_workers` at once."""

    max_workers: int

    async def call(
        self, fn: Callable[..., Any], kwargs: dict[str, Any], *, is_async: bool,
        abandonable: bool,
    ) -> Any:  # fmt: skip
        """Call one task body with its inputs and return its result.

        `abandonable` asks for a body that a cancelled scope can walk away from (used for
        timeouts): sync bodies then run on a thread.
        """
        ...


class LocalExecutor:
    """One task at a time, in order; sync bodies on the engine's own thread."""

    max_workers = 1

    async def call(
        self, fn: Callable[..., Any], kwargs: dict[str, Any], *, is_async: bool,
        abandonable: bool,
    ) -> Any:  # fmt: skip
        if is_async:
            return await fn(**kwargs)
        if abandonable:
            return await anyio.to_thread.run_sync(
                partial(fn, **kwargs), abandon_on_cancel=True
            )
        return fn(**kwargs)

    def __repr__(self) -> str:
        return "LocalExecutor()"


class ConcurrentExecutor:
    """Up to `max_workers` tasks at once: sync bodies on threads, async on the loop."""

    def __init__(self, max_workers: int = 8) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self.max_workers = max_workers
        """How many task bodies may run at the same time."""
        self._threads: CapacityLimiter | None = None  # made inside the event loop

    async def call(
        self, fn: Callable[..., Any], kwargs: dict[str, Any], *, is_async: bool,
        abandonable: bool,
    ) -> Any:  # fmt: skip
        if is_async:
            return await fn(**kwargs)
        if self._threads is None:
            self._threads = CapacityLimiter(self.max_workers)
        return await anyio.to_thread.run_sync(
            partial(fn, **kwargs), abandon_on_cancel=abandonable, limiter=self._threads
        )

    def __repr__(self) -> str:
        return f"ConcurrentExecutor(max_workers={self.max_workers})"
