"""One task body across a process boundary: what goes out, what runs there, what comes back.

The flow's process packs a `BodyCall` (the body, its inputs, the task run's context and the
log levels) with cloudpickle; the worker process (a ProcessExecutor child or a Dask worker)
runs it with `execute`, which never raises: the body's value, exception or signal comes
back as an outcome, with the log records the body emitted. The database never crosses.

Log records cross as plain dicts and are replayed through `logging` in the flow's process,
inside the task run's context, so they reach the console and the run's logs as if the body
had run there.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from durable import context, redaction, signals
from durable.executors.base import InterruptedBody, RemoteException, TransferError
from durable.log import capture_prints
from durable.states import NoResult, State

LogLine = dict[str, Any]
"""A log record as plain, picklable values (`logging.makeLogRecord` rebuilds it)."""

LogSink = Callable[[LogLine], None]


@dataclass(frozen=True, slots=True)
class BodyCall:
    """Everything a worker needs to run one task body."""

    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    is_async: bool
    context: dict[str, Any]
    """The task run's `durable.context` values (flow and task)."""
    log_levels: dict[str, int]
    """Effective levels of the root and `durable` loggers in the flow's process."""
    origin_pid: int
    """The flow's process: a body running there needs no log forwarding."""
    secrets: tuple[str, ...] = ()
    """The secret values registered in the flow's process: redacted there too."""


# Packing (in the flow's process) ----------------------------------------------------------
def task_label() -> str:
    """Name the current task run for a message: `name` or `name[i]`."""
    name = str(context.get("task_name", "<task>"))
    index = context.get("map_index")
    return name if index is None else f"{name}[{index}]"


def pack_call(fn: Callable[..., Any], kwargs: dict[str, Any], is_async: bool) -> bytes:
    """Pack a body call made inside a task run's context; raise TransferError if it can't."""
    values = _picklable_context(context.to_dict())
    call = BodyCall(
        fn=fn,
        kwargs=kwargs,
        is_async=is_async,
        context=values,
        log_levels={
            "": logging.getLogger().getEffectiveLevel(),
            "durable": logging.getLogger("durable").getEffectiveLevel(),
        },
        origin_pid=os.getpid(),
        secrets=redaction.registered(),
    )
    try:
        return _dumps(call)
    except Exception as exc:
        what = _first_unpicklable(fn, kwargs)
        raise TransferError(task=task_label(), what=what, reason=_reason(exc)) from exc


def _picklable_context(values: dict[str, Any]) -> dict[str, Any]:
    # A context value that cannot be pickled is left out rather than failing the task.
    import cloudpickle  # here, not at the top: `import durable` stays light

    try:
        cloudpickle.dumps(values)
    except Exception:  # noqa: BLE001 (user values fail to pickle in any way)
        return {k: v for k, v in values.items() if _is_picklable(v)}
    return values


def _is_picklable(value: Any) -> bool:
    import cloudpickle

    try:
        cloudpickle.dumps(value)
    except Exception:  # noqa: BLE001 (user values fail to pickle in any way)
        return False
    return True


def _first_unpicklable(fn: Callable[..., Any], kwargs: dict[str, Any]) -> str:
    if not _is_picklable(fn):
        return "body (the task's run function or Task object)"
    for key, value in kwargs.items():
        if not _is_picklable(value):
            return f"input {key!r} (a {type(value).__qualname__})"
    return "inputs"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# Running (in the worker) ------------------------------------------------------------------
_sink: ContextVar[LogSink | None] = ContextVar("durable_body_log_sink", default=None)
# While a ProcessExecutor child runs a body: the sink for records of any thread.
_process_sink: list[LogSink] = []


class _Forward(logging.Handler):
    """Hands the records of a running body to its sink (installed once per process)."""

    def __init__(self, *, print_strays: bool) -> None:
        super().__init__()
        self.print_strays = print_strays
        """Print records of no body (WARNING and up) on stderr: in a ProcessExecutor
        child nothing else would show them; a Dask worker has its own handlers."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = _sink.get() or (_process_sink[0] if _process_sink else None)
        if sink is None:
            stray = self.print_strays and record.levelno >= logging.WARNING
            if stray and logging.lastResort is not None:
                logging.lastResort.handle(record)
            return
        try:
            sink(as_line(record))
        except Exception:  # noqa: BLE001 (a log line must never break the body)
            self.handleError(record)


_FORMATTER = logging.Formatter()
_LINE_KEYS = (
    "name", "levelno", "levelname", "pathname", "filename", "module", "lineno",
    "funcName", "created", "msecs", "relativeCreated", "thread", "threadName",
    "process", "processName", "stack_info",
)  # fmt: skip


def as_line(record: logging.LogRecord) -> LogLine:
    """Flatten a record: its message formatted, its traceback folded into it."""
    line = {key: getattr(record, key, None) for key in _LINE_KEYS}
    message = record.getMessage()
    if record.exc_text:  # formatted already (and redacted, if it held a secret)
        message = f"{message}\n{record.exc_text}"
    elif record.exc_info:
        message = f"{message}\n{_FORMATTER.formatException(record.exc_info)}"
    line.update(msg=message, args=None, exc_info=None, exc_text=None)
    return line


def _install_forwarding(print_strays: bool) -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _Forward) for h in root.handlers):
        root.addHandler(_Forward(print_strays=print_strays))


@contextmanager
def _forwarding(call: BodyCall, sink: LogSink, whole_process: bool) -> Iterator[None]:
    if os.getpid() == call.origin_pid:
        # A worker thread of the flow's own process (a Dask cluster with processes=False):
        # the run's handlers see the records directly, in the context set below.
        yield
        return
    _install_forwarding(print_strays=whole_process)
    for name, level in call.log_levels.items():
        logging.getLogger(name or None).setLevel(level)
    token = _sink.set(sink)
    if whole_process:
        _process_sink.append(sink)
    try:
        yield
    finally:
        _sink.reset(token)
        _process_sink.clear()


def execute(data: bytes, sink: LogSink, *, whole_process: bool = False) -> bytes:
    """Run a packed body call; return its packed outcome (this never raises).

    Log records the body emits go to `sink` as they happen: those of this thread, or
    with `whole_process` (a process that runs one body at a time) those of any thread.
    """
    try:
        call: BodyCall = pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 (unpickling runs the user's code)
        error = TransferError(task="<task>", what="body", reason=_reason(exc))
        return _pack_outcome(("error", error), "<task>")
    if call.secrets:
        redaction.register_all(call.secrets)
    label = str(call.context.get("task_name", "<task>"))
    with context.task_context(call.context), _forwarding(call, sink, whole_process):
        printing = call.context.get("log_stdout") and isinstance(
            call.context.get("logger"), logging.Logger
        )
        capture = capture_prints(call.context["logger"]) if printing else nullcontext()
        with capture:
            outcome = _run(call)
        sys.stdout.flush()
    return _pack_outcome(outcome, label)


def _run(call: BodyCall) -> tuple[str, Any]:
    try:
        if call.is_async:
            import asyncio  # here, not at the top: `import durable` stays light

            value = asyncio.run(call.fn(**call.kwargs))
        else:
            value = call.fn(**call.kwargs)
    except signals.Signal as signal:  # the user chose the state
        return ("signal", _signal_parts(signal))
    except BaseException as exc:  # noqa: BLE001 (user code)
        # Any kind: a worker process ignores Ctrl-C, so even a KeyboardInterrupt is
        # the body's own, and a CancelledError cannot be a cancellation of ours.
        return ("error", exc)
    return ("value", value)


def _signal_parts(signal: signals.Signal) -> tuple[type[signals.Signal], tuple[Any, ...],
                                                    State, bool]:  # fmt: skip
    # Signals are rebuilt field by field: some (ENDRUN) cannot go through their
    # __init__ again, and a FAIL's state holds the signal itself as its result.
    state = signal.state
    carries_itself = state.has_result and state.result is signal
    if carries_itself:
        state.result = NoResult
    return (type(signal), signal.args, state, carries_itself)


def _pack_outcome(outcome: tuple[str, Any], label: str) -> bytes:
    try:
        return _dumps(outcome)
    except Exception as exc:  # noqa: BLE001 (user values fail to pickle in any way)
        kind, value = outcome
        if kind == "error":
            # As in the store: an exception that cannot be pickled crosses as a
            # stand-in with its type, message and traceback.
            return _dumps(("error", RemoteException.from_exception(value)))
        what = "result" if kind == "value" else "signal"
        error = TransferError(
            task=label, what=f"{what} ({type(value).__qualname__})", reason=_reason(exc)
        )
        return _dumps(("error", error))


def _dumps(value: Any) -> bytes:
    import cloudpickle

    data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return data


# Unpacking (in the flow's process) --------------------------------------------------------
def unpack_outcome(data: bytes) -> Any:
    """Return the body's value, or raise its exception or signal, here."""
    try:
        kind, value = pickle.loads(data)
    except Exception as exc:
        raise TransferError(
            task=task_label(), what="result", reason=_reason(exc)
        ) from exc
    if kind == "value":
        return value
    if kind == "signal":
        raise _rebuild_signal(*value)
    if isinstance(value, KeyboardInterrupt):  # the body's own: not a stop of the run
        raise InterruptedBody(value, "a worker process") from value
    raise value


def _rebuild_signal(
    cls: type[signals.Signal], args: tuple[Any, ...], state: State, carries_itself: bool
) -> signals.Signal:
    signal = cls.__new__(cls, *args)
    signal.args = args
    signal.state = state
    if carries_itself:
        state.result = signal
    return signal


def pack_with_lines(outcome: bytes, lines: list[LogLine]) -> bytes:
    """Bundle an outcome with the log lines of its body (for one reply)."""
    return pickle.dumps((outcome, lines), protocol=pickle.HIGHEST_PROTOCOL)


def unpack_with_lines(data: bytes) -> tuple[bytes, list[LogLine]]:
    """Split what `pack_with_lines` bundled."""
    outcome, lines = pickle.loads(data)
    return outcome, lines


def replay(line: LogLine) -> None:
    """Emit a record from a worker here, in the current (task run's) context."""
    if redaction.ACTIVE:  # made elsewhere: not through this process's record factory
        line = {**line, "msg": redaction.redact(str(line.get("msg", "")))}
    record = logging.makeLogRecord(line)
    logging.getLogger(record.name).handle(record)
