"""WAL upkeep, a step of the worker's pass: checkpoint and truncate the write-ahead log
when the writers' own checkpoints no longer keep it small, and warn once when a reader
keeps it growing.

Every process's writer connection checkpoints on its own (SQLite's automatic checkpoint
after 1,000 pages), and under a steady load that keeps the log near 4 MiB: each time a
checkpoint completes, the next commit starts the log over (its header gets new salts).
That never shrinks the file, though: after a burst, or after a long read transaction
held the log (a TUI over a slow link, a `BEGIN` left open in a shell), the `-wal` file
stays as large as it grew, up to `journal_size_limit` (64 MiB), and a log that no one
restarts is never truncated either.

So every 2 seconds this step, on the worker's own connection and thread rather than
a checkpoint writer's, looks at the log's size and header:

- the log is under 1 MiB, or it restarted since the last step and is under 8 MiB: the
  writers cope; nothing to do (a second checkpointer would only make theirs fail while
  it holds the lock);
- it restarted but is larger: one `wal_checkpoint(TRUNCATE)` brings the file back;
- it did not restart (few writes, or a reader pins it): `wal_checkpoint(PASSIVE)`,
  which waits for no one, then TRUNCATE if that copied every frame back.

TRUNCATE runs with a short busy timeout, so it never holds writers up for long
(RELIABILITY 5.4 D1/D2).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from durable import crashpoints
from durable.errors import StoreError
from durable.store.connection import connect_writer
from durable.timesource import monotonic

logger = logging.getLogger(__name__)

EVERY = 2.0
"""Seconds (monotonic) between two maintenance steps of one worker (a step that finds
nothing to do costs a stat and a 32-byte read)."""
KEEP_BELOW = 1024 * 1024
"""A log this small is left to the writers' automatic checkpoints."""
SHRINK_ABOVE = 8 * 1024 * 1024
"""A log larger than this is checkpointed and truncated even while the writers restart
it: twice what their automatic checkpoints keep it at, so it got away (a burst, a
reader) and would otherwise keep its size."""
WARN_ABOVE = 64 * 1024 * 1024
"""A log this large is worth a warning (it is also `journal_size_limit`)."""
WARN_BLOCKED_AFTER = 30.0
"""Seconds without a complete checkpoint, the log above SHRINK_ABOVE, before warning
that a reader is holding it."""
TRUNCATE_BUSY_MS = 200
"""How long a TRUNCATE checkpoint waits for the current writer and readers: while it
waits, new writers wait too, so it gives up quickly and tries at the next step."""
HEADER = slice(12, 24)
"""The WAL header's checkpoint sequence number and salts: they change when the log
restarts (a checkpoint completed and a writer began again from its start)."""


@dataclass(frozen=True)
class CheckpointReport:
    """What one maintenance step found and did."""

    wal_bytes: int
    """The log's size after the step."""
    checkpointed: bool
    """Whether a checkpoint ran (False: the writers were restarting the log)."""
    complete: bool
    """Whether it copied every frame back into the database."""
    truncated: bool
    """Whether the log was truncated."""
    seconds: float
    """How long the step took."""


class WalMaintenance:
    """Keeps one database's WAL small; `due_step` runs a step once every `every` s."""

    def __init__(self, path: Path, *, every: float = EVERY) -> None:
        self.path = path
        """The database file."""
        self.every = every
        self.warnings = 0
        """How many WAL warnings this instance has logged."""
        self._next = monotonic()
        self._header: bytes | None = None
        self._blocked_since: float | None = None
        self._warned_size = self._warned_blocked = False

    @property
    def wal_path(self) -> Path:
        """The `-wal` file beside the database."""
        return self.path.with_name(self.path.name + "-wal")

    def wal_bytes(self) -> int:
        """The current size of the log (0 when there is none)."""
        try:
            return os.stat(self.wal_path).st_size
        except OSError:
            return 0

    @property
    def due(self) -> bool:
        """Whether `every` seconds have passed since the last step."""
        return monotonic() >= self._next

    def due_step(self) -> CheckpointReport | None:
        """Run a step if `every` seconds have passed since the last; never raises."""
        if not self.due:
            return None
        self._next = monotonic() + self.every
        try:
            return self.step()
        except (sqlite3.Error, StoreError, OSError) as exc:
            logger.warning("WAL checkpoint of %s failed: %s", self.path, exc)
            return None

    def step(self) -> CheckpointReport:
        """Checkpoint and truncate the log as it needs (see the module docstring);
        warn if it keeps growing."""
        began, size = monotonic(), self.wal_bytes()
        restarted = self._restarted()
        if size <= KEEP_BELOW or (restarted and size <= SHRINK_ABOVE):
            self._watch(size, True, began)
            return CheckpointReport(size, False, True, False, monotonic() - began)
        conn = connect_writer(self.path)
        try:
            conn.execute(f"PRAGMA busy_timeout={TRUNCATE_BUSY_MS}")
            if restarted:
                # The writers restart it, but it got large: one TRUNCATE (a PASSIVE
                # would never find it complete while they write) brings it back.
                ready = True
            else:
                busy, frames, done = conn.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
                ready = busy == 0 and frames == done
            crashpoints.crash_point("after_checkpoint_start")
            truncated = False
            if ready:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                truncated = busy == 0
            # Complete: every frame is back in the database (PASSIVE said so, or the
            # TRUNCATE that had to do it succeeded).
            complete = truncated if restarted else ready
        finally:
            conn.close()
        size = self.wal_bytes()
        self._restarted()  # what the checkpoint left is the new baseline
        self._watch(size, complete, began)
        return CheckpointReport(size, True, complete, truncated, monotonic() - began)

    def _restarted(self) -> bool:
        """Whether the log restarted since the last look (its header changed); not at
        the first look, which knows nothing yet (so the log gets checkpointed)."""
        try:
            with open(self.wal_path, "rb") as wal:
                header = wal.read(32)[HEADER]
        except OSError:
            header = b""
        restarted = self._header is not None and header != self._header
        self._header = header
        return restarted

    def _watch(self, size: int, complete: bool, now: float) -> None:
        """Warn once per episode: the log is too large, or no checkpoint completes."""
        if size < WARN_ABOVE:
            self._warned_size = False
        elif not self._warned_size:
            self._warned_size = True
            self._warn(
                "the write-ahead log %s is %.0f MiB (limit %.0f MiB): a long read "
                "transaction is keeping checkpoints from reclaiming it",
                self.wal_path, size / 2**20, WARN_ABOVE / 2**20,
            )  # fmt: skip
        if complete or size <= SHRINK_ABOVE:
            self._blocked_since, self._warned_blocked = None, False
            return
        if self._blocked_since is None:
            self._blocked_since = now
        elif (
            now - self._blocked_since >= WARN_BLOCKED_AFTER and not self._warned_blocked
        ):
            self._warned_blocked = True
            self._warn(
                "the write-ahead log %s (%.1f MiB) has not been fully checkpointed for "
                "%.0f s: a reader is holding an old snapshot (an open transaction); "
                "it grows until that reader ends",
                self.wal_path, size / 2**20, now - self._blocked_since,
            )  # fmt: skip

    def _warn(self, message: str, *args: object) -> None:
        self.warnings += 1
        logger.warning(message, *args)
