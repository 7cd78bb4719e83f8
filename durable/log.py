"""Logging: Prefect-like console lines, run logs batched into the store, print capture.

Records emitted while a flow run is active (in its context, on any thread) land in the
store's `logs` table with the flow-run and task-run ids, queued for the checkpoint writer's
next batch so logging never waits on the disk.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

from durable import context, redaction

LOGGER_NAME = "durable"
CONSOLE_FORMAT = "[%(asctime)s] %(levelname)s - %(name)s | %(message)s"
CONSOLE_DATEFMT = "%Y-%m-%d %H:%M:%S%z"

LogSink = Callable[[tuple[str | None, str | None, float, int, str, str]], None]


class _ConsoleFormatter(logging.Formatter):
    """Times in UTC, as the rest of durable."""

    converter = staticmethod(time.gmtime)


def configure_console() -> None:
    """Give the `durable` logger a console handler and level, once per process.

    The level comes from `DURABLE_LOG_LEVEL` (default INFO). Does nothing when the
    `durable` logger already has handlers (the application configured logging itself).
    """
    root = logging.getLogger(LOGGER_NAME)
    if getattr(root, "_durable_configured", False) or root.handlers:
        return
    root.setLevel(os.environ.get("DURABLE_LOG_LEVEL", "INFO").upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ConsoleFormatter(CONSOLE_FORMAT, CONSOLE_DATEFMT))
    root.addHandler(handler)
    root._durable_configured = True  # type: ignore[attr-defined]


_FORMATTER = logging.Formatter()


class StoreLogHandler(logging.Handler):
    """Sends records emitted inside flow run `run_id` to the store's log queue."""

    def __init__(self, run_id: str, sink: LogSink) -> None:
        super().__init__(logging.DEBUG)
        self._run_id, self._sink = run_id, sink

    def emit(self, record: logging.LogRecord) -> None:
        if context.get("flow_run_id") != self._run_id:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{_FORMATTER.formatException(record.exc_info)}"
            elif record.exc_text:  # a traceback already formatted (and redacted)
                message = f"{message}\n{record.exc_text}"
            if redaction.ACTIVE:  # also records that were not made here (replayed)
                message = redaction.redact(message)
            self._sink(
                (self._run_id, context.get("task_run_id"), record.created,
                 record.levelno, record.name, message)
            )  # fmt: skip
        except Exception:  # noqa: BLE001 (a log line must never break the run)
            self.handleError(record)


@contextmanager
def store_logs(run_id: str, sink: LogSink) -> Iterator[None]:
    """Capture the run's log records into the store while the block runs."""
    handler = StoreLogHandler(run_id, sink)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


class _Capture:
    """One capturing block: its logger and the start of a line not ended yet."""

    __slots__ = ("logger", "rest")

    def __init__(self, logger: logging.Logger) -> None:
        self.logger, self.rest = logger, ""


_print_target: ContextVar[_Capture | None] = ContextVar(
    "durable_print_target", default=None
)


class _StdoutRouter:
    """Stands in for sys.stdout: sends a capturing task's prints to its logger.

    Each capturing block buffers its own unfinished line: mapped children share a
    logger, and under threads their `print`s interleave (the text, then a newline).
    """

    def __init__(self, original: IO[str]) -> None:
        self.original = original

    def write(self, text: str) -> int:
        capture = _print_target.get()
        if capture is None:
            return self.original.write(text)
        *lines, capture.rest = (capture.rest + text).split("\n")
        for line in lines:
            capture.logger.info(line)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


@contextmanager
def capture_prints(logger: logging.Logger) -> Iterator[None]:
    """Send `print` output of the code inside the block (this context only) to `logger`."""
    if not isinstance(sys.stdout, _StdoutRouter):
        sys.stdout = _StdoutRouter(sys.stdout)
    capture = _Capture(logger)
    token = _print_target.set(capture)
    try:
        yield
    finally:
        _print_target.reset(token)
        if capture.rest:
            logger.info(capture.rest)
