"""Result files: a result larger than a threshold lives in a file beside the database.

A result is serialized into a `SpooledResult`, which keeps it in memory up to the
threshold and beyond it spills to a temporary file in `<db>.results/`, so a large value
is never copied whole in memory. A spilled result is fsynced, renamed to its final name
and its directory fsynced (`PendingFile.persist`) before the row that names it is even
queued. That row (serializer `file:<serializer>`, value a JSON reference with the file's
name, size and sha256) is the only source of truth: a file that no row names (a crash
between the rename and the commit) is an orphan, never read, and `find_orphans` /
`remove_orphans` list and delete such files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durable.errors import ConfigurationError, StoreError
from durable.store.connection import connect_reader
from durable.store.serializers import SERIALIZERS, Serializer, dump_into, load_from
from durable.timesource import SystemTime

logger = logging.getLogger(__name__)

THRESHOLD_ENV = "DURABLE_RESULT_FILE_THRESHOLD"
"""The environment variable that sets the threshold, in bytes (`64MiB` works too)."""
DEFAULT_THRESHOLD = 1 << 20
"""Results whose serialized size is above this (1 MiB) go to files."""
FILE_PREFIX = "file:"
"""A stored serializer name with this prefix means: the value names a result file."""
ORPHAN_MIN_AGE = 3600.0
"""Seconds a file must have existed before it may be called an orphan: a file whose
row is still queued (renamed, not yet committed) is younger than that."""

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_SIZE = re.compile(r"(\d+)\s*([kmg]?)(?:i?b)?", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_WRITE_BUFFER = 1 << 20


ResultBlob = tuple[str, bytes]
"""A result as its row stores it: (serializer name, value bytes or file reference)."""


def threshold_from_env() -> int:
    """Return the threshold in bytes from `DURABLE_RESULT_FILE_THRESHOLD` (or 1 MiB)."""
    raw = os.environ.get(THRESHOLD_ENV, "").strip()
    if not raw:
        return DEFAULT_THRESHOLD
    match = _SIZE.fullmatch(raw)
    if match is None:
        raise ConfigurationError(
            f"{THRESHOLD_ENV}={raw!r} is not a size; set it to a number of bytes "
            "(1048576) or with a unit (512KiB, 64MiB, 1GiB), or unset it for 1 MiB"
        )
    return int(match[1]) * _UNITS[match[2].lower()]


def results_directory(db: Path) -> Path:
    """Return where the result files of the database at `db` go: `<db>.results/`."""
    return db.with_name(db.name + ".results")


@dataclass(frozen=True, slots=True)
class Reference:
    """What a row stores about its result file."""

    file: str
    """The file's name inside the results directory."""
    size: int
    sha256: str

    def encode(self) -> bytes:
        return json.dumps(
            {"file": self.file, "size": self.size, "sha256": self.sha256},
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, value: bytes) -> Reference:
        data = json.loads(value)
        return cls(str(data["file"]), int(data["size"]), str(data["sha256"]))


# Writing ------------------------------------------------------------------------------
class SpooledResult:
    """A write-only file that stays in memory up to `threshold` bytes, then spills.

    Spilling moves what is buffered to a temporary file (mode 0600) in `directory` and
    sends every later write straight there: a large write is never copied into memory,
    and the memory held is at most `threshold` plus the writer's 1 MiB buffer.
    """

    # Most results stay small: nothing of the file (name, hash) is made until a spill.
    def __init__(self, directory: Path, threshold: int, stem: str) -> None:
        self.directory, self.threshold, self.stem = directory, threshold, stem
        self.size = 0
        self._parts: list[bytes] = []
        self._file: io.BufferedWriter[io.FileIO] | None = None
        self._hash: Any = None  # hashlib's sha256 object, once spilled
        self.name = ""
        """The final file name, unique per write (a rerun never reuses a name)."""
        self.temporary: Path | None = None
        """Where the bytes go until `PendingFile.persist` renames them."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if type(data) is not bytes:  # a bytearray, or a buffer the pickler lends
            data = memoryview(data).cast("B")
        n = len(data)
        if self._file is None:
            if self.size + n <= self.threshold:
                # bytes are immutable: kept as they are; anything else is copied.
                self._parts.append(data if type(data) is bytes else bytes(data))
                self.size += n
                return n
            self._spill()
        assert self._file is not None, "spilled above"
        self._hash.update(data)
        self._file.write(data)
        self.size += n
        return n

    def _spill(self) -> None:
        make_directory(self.directory)
        self.name = f"{_UNSAFE.sub('_', self.stem)}-{uuid.uuid4().hex[:16]}"
        self.temporary = self.directory / f".{self.name}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.temporary, flags, 0o600)
        file = io.BufferedWriter(io.FileIO(fd, "w"), buffer_size=_WRITE_BUFFER)
        self._file = file
        self._hash = hashlib.sha256()
        for part in self._parts:
            self._hash.update(part)
            file.write(part)
        self._parts = []

    def finish(self, serializer_name: str) -> ResultBlob | PendingFile:
        """Return the result inline, or the spilled file still to be made durable."""
        if self._file is None or self.temporary is None:
            parts = self._parts
            return (serializer_name, parts[0] if len(parts) == 1 else b"".join(parts))
        self._file.flush()
        reference = Reference(self.name, self.size, self._hash.hexdigest())
        return PendingFile(
            FILE_PREFIX + serializer_name, reference, self.directory, self._file,
            self.temporary,
        )  # fmt: skip

    def discard(self) -> None:
        """Forget what was written (the value failed to serialize)."""
        if self._file is not None and self.temporary is not None:
            self._file.close()
            self.temporary.unlink(missing_ok=True)
        self._parts = []


@dataclass(slots=True)
class PendingFile:
    """A spilled result, written but not yet durable, and named by no row yet."""

    serializer: str
    """The name the row stores: `file:` and the serializer's name."""
    reference: Reference
    directory: Path
    file: io.BufferedWriter[io.FileIO]
    temporary: Path

    @property
    def path(self) -> Path:
        """Where the file is once persisted."""
        return self.directory / self.reference.file

    def persist(self) -> ResultBlob:
        """Fsync the file, rename it to its final name, fsync the directory.

        Blocking (seconds for a large file): call it off the event loop. Returns what
        the result row stores; queue that row only after this returns.
        """
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.temporary, self.path)
        except BaseException:
            self.discard()
            raise
        # The rename survives a power cut only once the directory is synced.
        fsync_directory(self.directory)
        return (self.serializer, self.reference.encode())

    def discard(self) -> None:
        """Remove the temporary file (a result that will not be recorded)."""
        self.file.close()
        self.temporary.unlink(missing_ok=True)


def make_directory(directory: Path) -> None:
    """Create the results directory (mode 0700) and make its entry durable."""
    if directory.is_dir():
        return
    directory.mkdir(mode=0o700, exist_ok=True)
    fsync_directory(directory.parent)


def fsync_directory(directory: Path) -> None:
    """Make the directory's entries (a new or renamed file) survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Reading ------------------------------------------------------------------------------
class _HashingReader(io.RawIOBase):
    """Reads a file and hashes every byte read, for the check after loading."""

    def __init__(self, file: io.FileIO) -> None:
        self._file = file
        self.hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._file.readinto(buffer) or 0
        if n:
            self.hash.update(memoryview(buffer).cast("B")[:n])
            self.size += n
        return n


def read_file(path: Path, reference: Reference, serializer: Serializer) -> Any:
    """Load a result file, streaming; check its size before and its sha256 after.

    Raises StoreError when the file is missing, truncated or altered.
    """
    try:
        raw = io.FileIO(path, "r")
    except FileNotFoundError:
        raise StoreError(
            f"Result file {str(path)!r} is missing; restore it from a backup, or "
            "restart the task run so that it stores its result again"
        ) from None
    with raw:
        size = os.fstat(raw.fileno()).st_size
        if size != reference.size:
            raise StoreError(
                f"Result file {str(path)!r} has {size} bytes, not the "
                f"{reference.size} its row records; it was truncated or replaced: "
                "restore it from a backup, or restart the task run"
            )
        hashing = _HashingReader(raw)
        with io.BufferedReader(hashing, buffer_size=_WRITE_BUFFER) as reader:
            value = load_from(serializer, reader)
            while reader.read(_WRITE_BUFFER):  # hash what the serializer left
                pass
    if hashing.hash.hexdigest() != reference.sha256:
        raise StoreError(
            f"Result file {str(path)!r} does not match the checksum its row records; "
            "it was altered: restore it from a backup, or restart the task run"
        )
    return value


class ResultFiles:
    """Where a database's result files live, and the size above which results go there."""

    def __init__(self, directory: Path, threshold: int = DEFAULT_THRESHOLD) -> None:
        self.directory = directory
        self.threshold = threshold
        """Results whose serialized size is above this many bytes go to files."""

    def serialize(
        self, serializer: Serializer, value: Any, *, stem: str
    ) -> ResultBlob | PendingFile:
        """Serialize a value: inline bytes, or a spilled file still to be persisted.

        `stem` starts the file name (a task run id). Raises whatever the serializer
        raises, or OSError when the file cannot be written; nothing is left behind.
        """
        spool = SpooledResult(self.directory, self.threshold, stem)
        try:
            dump_into(serializer, value, spool)
            return spool.finish(serializer.name)
        except BaseException:
            spool.discard()
            raise

    def load(
        self, stored: str, value: bytes, *, serializer: Serializer | None = None
    ) -> Any:
        """Rebuild a stored value from its row's serializer name and value.

        `serializer` reads it when given (a task's own serializer of that name);
        otherwise the built-in serializer the row names.
        """
        if not stored.startswith(FILE_PREFIX):
            return (serializer or SERIALIZERS[stored]).loads(value)
        name = stored.removeprefix(FILE_PREFIX)
        if serializer is None:
            try:
                serializer = SERIALIZERS[name]
            except KeyError:
                raise StoreError(
                    f"A result file was written with the serializer {name!r}, which "
                    "this process does not know; read it with that serializer"
                ) from None
        reference = Reference.decode(value)
        return read_file(self.directory / reference.file, reference, serializer)

    def remove(self, name: str) -> None:
        """Delete a file that its row no longer names (called after that commit)."""
        try:
            (self.directory / name).unlink(missing_ok=True)
        except OSError as exc:  # left for remove_orphans
            logger.warning("cannot remove result file %s: %s", name, exc)


def is_file_reference(stored: str) -> bool:
    """Whether a row's serializer name means its value names a result file."""
    return stored.startswith(FILE_PREFIX)


def stored_serializer_name(stored: str) -> str:
    """Return the serializer's own name from a row's (`file:pickle` -> `pickle`)."""
    return stored.removeprefix(FILE_PREFIX)


# Rows that name files -----------------------------------------------------------------
def result_file_of(conn: sqlite3.Connection, task_run_id: str) -> str | None:
    """Return the file that a task run's result row names now, if any."""
    row = conn.execute(
        "SELECT value FROM results WHERE task_run_id = ?"
        " AND substr(serializer, 1, 5) = 'file:'",
        (task_run_id,),
    ).fetchone()
    return None if row is None else Reference.decode(row[0]).file


def expired_cache_files(
    conn: sqlite3.Connection, cache_key: str, map_index: int, now: float
) -> list[str]:
    """Return the files of a key's cache entries that expire by `now`."""
    fetched = conn.execute(
        "SELECT value FROM cache WHERE cache_key = ? AND map_index = ?"
        " AND expires_at <= ? AND substr(serializer, 1, 5) = 'file:'",
        (cache_key, map_index, now),
    ).fetchall()
    return [Reference.decode(value).file for (value,) in fetched]


def referenced_files(conn: sqlite3.Connection) -> set[str]:
    """Return every file name that a result row or a cache entry names."""
    names: set[str] = set()
    for table in ("results", "cache"):
        fetched = conn.execute(
            f"SELECT value FROM {table} WHERE substr(serializer, 1, 5) = 'file:'"
        )
        names.update(Reference.decode(value).file for (value,) in fetched)
    return names


# Orphans ------------------------------------------------------------------------------
def find_orphans(
    db: Path,
    *,
    min_age: float = ORPHAN_MIN_AGE,
    now: float | None = None,
) -> list[Path]:
    """List the files in the database's results directory that no row names.

    Such a file is a result whose commit never happened (a crash after its file was
    written), a temporary file cut short, or a result that a later one replaced when a
    crash prevented its removal. Files younger than `min_age` seconds are left out: their
    row may still be on its way to the database.
    """
    directory = results_directory(db)
    if not directory.is_dir():
        return []
    at = SystemTime().timestamp() if now is None else now
    # The directory is listed before the rows are read, so a file renamed after the
    # listing is not judged at all, and one listed is old enough that its row, if it
    # ever gets one, has long been committed.
    candidates = [
        Path(entry.path)
        for entry in os.scandir(directory)
        if entry.is_file(follow_symlinks=False)
        and at - entry.stat(follow_symlinks=False).st_mtime >= min_age
    ]
    if not candidates:
        return []
    conn = connect_reader(db)
    try:
        referenced = referenced_files(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"Cannot read database {str(db)!r}: {exc}") from exc
    finally:
        conn.close()
    return sorted(path for path in candidates if path.name not in referenced)


def remove_orphans(
    db: Path, *, min_age: float = ORPHAN_MIN_AGE, now: float | None = None
) -> list[Path]:
    """Delete the files `find_orphans` lists; return them."""
    orphans = find_orphans(db, min_age=min_age, now=now)
    for path in orphans:
        path.unlink(missing_ok=True)
    return orphans
