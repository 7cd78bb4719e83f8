"""Executors in the flow's own process: one task at a time, or many on threads.

`LocalExecutor` (the default) runs one task at a time, in the flow's order, with sync bodies
called directly on the engine's thread, as Prefect 1's LocalExecutor did. A body with a
timeout runs on a worker thread so that the timeout can abandon it (a soft timeout: Python
cannot kill a thread, so its code may go on in the background, as in Prefect 1).
`ConcurrentExecutor` runs up to `max_workers` ready tasks at once: sync bodies on threads,
async bodies on the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio.to_thread
from anyio import CapacityLimiter

from durable.errors import ConfigurationError
from durable.executors.base import InterruptedBody


class _Raised(Exception):  # noqa: N818 (a carrier, not an error of its own)
    """Carries a body's BaseException that is not an Exception (GeneratorExit, a
    CancelledError, a user's subclass) from its thread: raised as itself, it would
    break the event loop's await on the thread's future instead of reaching the task
    runner, which records it as the task run's failure."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


def _carry(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        raise
    except BaseException as exc:  # noqa: BLE001 (re-raised on the loop's side)
        raise _Raised(exc) from None


async def on_thread(
    fn: Callable[[], Any], *, abandon: bool, limiter: CapacityLimiter | None = None
) -> Any:
    """Run a sync body on a worker thread; its exception, whatever its kind, is
    raised here as itself."""
    try:
        return await anyio.to_thread.run_sync(
            partial(_carry, fn), abandon_on_cancel=abandon, limiter=limiter
        )
    except _Raised as raised:
        if isinstance(raised.error, KeyboardInterrupt):
            # Ctrl-C reaches the main thread only: this one is the body's own doing.
            raise InterruptedBody(raised.error, "a worker thread") from raised.error
        raise raised.error from None


class LocalExecutor:
    """One task at a time, in order; sync bodies on the engine's own thread."""

    max_workers = 1

    @asynccontextmanager
    async def start(self) -> AsyncIterator[None]:
        """Nothing to hold: bodies run on the engine's thread."""
        yield

    async def call(
        self, fn: Callable[..., Any], kwargs: dict[str, Any], *, is_async: bool,
        abandonable: bool,
    ) -> Any:  # fmt: skip
        if is_async:
            return await fn(**kwargs)
        if abandonable:
            return await on_thread(partial(fn, **kwargs), abandon=True)
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

    @asynccontextmanager
    async def start(self) -> AsyncIterator[None]:
        """Hold a thread limiter for the run (made in the run's event loop)."""
        if self._threads is not None:  # held already: share it
            yield
            return
        self._threads = CapacityLimiter(self.max_workers)
        try:
            yield
        finally:
            self._threads = None

    async def call(
        self, fn: Callable[..., Any], kwargs: dict[str, Any], *, is_async: bool,
        abandonable: bool,
    ) -> Any:  # fmt: skip
        if is_async:
            return await fn(**kwargs)
        if self._threads is None:  # called outside start(): still bounded
            self._threads = CapacityLimiter(self.max_workers)
        return await on_thread(
            partial(fn, **kwargs), abandon=abandonable, limiter=self._threads
        )

    def __repr__(self) -> str:
        return f"ConcurrentExecutor(max_workers={self.max_workers})"


class LocalDaskExecutor(ConcurrentExecutor):
    """Prefect 1's name for running tasks on local threads: a `ConcurrentExecutor`.

    `scheduler="threads"` (the default) and `"synchronous"` (one task at a time) are
    accepted; for `"processes"` use `ProcessExecutor`. `num_workers` is `max_workers`.
    Other keywords (Prefect's dask config) are accepted and ignored.
    """

    def __init__(
        self, scheduler: str = "threads", num_workers: int | None = None, **_: Any
    ) -> None:
        if scheduler not in ("threads", "synchronous"):
            raise ConfigurationError(
                f"LocalDaskExecutor(scheduler={scheduler!r}) is not supported: it runs "
                "tasks on threads; for processes use durable.executors.ProcessExecutor"
            )
        workers = 1 if scheduler == "synchronous" else num_workers or 8
        super().__init__(max_workers=workers)
        self.scheduler = scheduler

    def __repr__(self) -> str:
        return (
            f"LocalDaskExecutor(scheduler={self.scheduler!r}, "
            f"num_workers={self.max_workers})"
        )
