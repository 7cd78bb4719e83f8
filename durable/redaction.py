"""Secret redaction: the values of `Secret` tasks never reach the database or the console.

A process registers each secret value it fetches (`register`). From then on, every log
record made in the process, everything written to `sys.stdout`/`sys.stderr` and every state
message the engine records has the value replaced by `****`, and a result or cache entry
whose serialized bytes contain it is refused rather than stored. Until the first
registration none of this runs: the hot paths test one module attribute (`ACTIVE`).

Limits, as with any redaction by value: a secret split across two `write` calls, encoded
differently (base64, reversed, one character per line) or written by a subprocess to its
own stdout is not recognised. Secrets shorter than `MIN_LENGTH` characters are refused,
since redacting them would blank out ordinary text.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from durable.errors import ConfigurationError, SerializationError

MASK = "****"
"""What a secret value is replaced with."""
MIN_LENGTH = 4
"""The shortest value `register` accepts."""

ACTIVE = False
"""Whether a secret has been registered in this process (the hot paths' one check)."""

_lock = threading.Lock()
_texts: tuple[str, ...] = ()  # longest first, so a secret holding another goes whole
_needles: tuple[bytes, ...] = ()  # the byte forms a serialized value may hold
_FORMATTER = logging.Formatter()
_previous_factory: Any = None  # the record factory in place before ours


def register(value: str) -> None:
    """Redact `value` from now on, in this process (and the bodies it sends elsewhere).

    Raises:
        ConfigurationError: The value is not a string, or shorter than `MIN_LENGTH`.
    """
    global ACTIVE, _texts, _needles
    if not isinstance(value, str):
        raise ConfigurationError(
            f"A secret's value must be a str, not {type(value).__qualname__}"
        )
    if len(value) < MIN_LENGTH:
        raise ConfigurationError(
            f"A secret's value must have at least {MIN_LENGTH} characters: redacting a "
            "shorter one would blank out ordinary text"
        )
    with _lock:
        if value in _texts:
            return
        _texts = tuple(sorted({*_texts, value}, key=len, reverse=True))
        forms = {value.encode(), json.dumps(value)[1:-1].encode()}
        _needles = tuple(sorted({*_needles, *forms}, key=len, reverse=True))
        if not ACTIVE:
            _install()
            ACTIVE = True


def registered() -> tuple[str, ...]:
    """Return the values registered in this process (to hand to a worker process)."""
    return _texts


def register_all(values: Iterable[str]) -> None:
    """Register values another process registered (see `registered`)."""
    for value in values:
        register(value)


def redact(text: str) -> str:
    """Return `text` with every registered secret replaced by `MASK`."""
    for secret in _texts:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def leaks(data: bytes | bytearray | memoryview | str) -> bool:
    """Whether serialized bytes (or text) hold a registered secret."""
    if isinstance(data, str):
        return any(secret in data for secret in _texts)
    raw = data if isinstance(data, bytes) else bytes(data)
    return any(needle in raw for needle in _needles)


def file_leaks(path: Path, chunk: int = 1 << 20) -> bool:
    """Whether a file holds a registered secret (read in pieces, overlapping)."""
    if not _needles:
        return False
    overlap = max(len(n) for n in _needles) - 1
    tail = b""
    with path.open("rb") as file:
        while block := file.read(chunk):
            window = tail + block
            if any(needle in window for needle in _needles):
                return True
            tail = window[-overlap:] if overlap else b""
    return False


def refused_result(task_name: str, value: Any, serializer: str) -> SerializationError:
    """The error of a result that holds a secret's value: refused, not stored."""
    return SerializationError(
        task_name=task_name, type_name=type(value).__qualname__, serializer=serializer,
        reason="it holds the value of a Secret, and secrets are never stored",
    )  # fmt: skip


def redact_record(record: logging.LogRecord) -> None:
    """Replace secrets in a log record's message, traceback and stack, in place.

    The message is formatted now only when it holds a secret; a traceback holding one
    is kept as redacted text (`exc_text`) and its exception dropped (`exc_info`), so no
    handler can render it again from the frames.
    """
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 (a bad format string: logging reports it itself)
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and not record.exc_text:
        text = _FORMATTER.formatException(record.exc_info)
        clean = redact(text)
        if clean != text:
            record.exc_text, record.exc_info = clean, None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingStream:
    """Stands in for `sys.stdout`/`sys.stderr`: writes text with secrets masked."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        """The stream written to."""

    def write(self, text: str) -> int:
        self.stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _install() -> None:
    # Records are redacted as they are made, so every handler (the console, the store,
    # the application's own) sees the masked text; print() goes through the streams.
    global _previous_factory
    previous = _previous_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


def forget_all() -> None:
    """Unregister every secret and stop redacting (for tests; a run never calls it)."""
    global ACTIVE, _texts, _needles, _previous_factory
    with _lock:
        _texts, _needles, ACTIVE = (), (), False
        if _previous_factory is not None:
            logging.setLogRecordFactory(_previous_factory)
            _previous_factory = None
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, RedactingStream):
                setattr(sys, name, stream.stream)
