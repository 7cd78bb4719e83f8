"""Task concurrency limits by tag: a part of `Store`.

A limit says at most N task runs carrying a tag run at once, across every flow run and
process on the database (Prefect 1's task concurrency limits). A task run takes one slot
per limited tag, all or none, in one write transaction, and gives them back when its
attempt ends. A slot names the process holding it, so the slots of a process that died
(kill -9, power loss) are taken back by the next process that wants one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from dataclasses import dataclass

from durable.store.scheduling import RERUNS_SCHEMA, ScheduledRuns

IsLive = Callable[[int | None, str | None], bool]


@dataclass(frozen=True, slots=True)
class LimitRecord:
    """A tag's limit and the task runs holding its slots now."""

    tag: str
    slots: int
    holders: tuple[str, ...]
    """Task run ids holding a slot (including any of a dead process not reclaimed yet)."""


class ConcurrencyLimits(ScheduledRuns):
    """Store operations behind `durable limits` and the engine's slot waits."""

    async def set_limit(self, tag: str, slots: int | None) -> None:
        """Set (or, with None, remove) the limit of `tag`."""
        if slots is None:
            sql, args = "DELETE FROM concurrency_limits WHERE tag = ?", (tag,)
        else:
            sql = (
                "INSERT INTO concurrency_limits (tag, slots) VALUES (?, ?)"
                " ON CONFLICT (tag) DO UPDATE SET slots = excluded.slots"
            )
            args = (tag, slots)  # type: ignore[assignment]
        await self._write(lambda conn: conn.execute(sql, args))

    async def list_limits(self) -> list[LimitRecord]:
        """Every limit with its holders, by tag."""
        if await self._schema_version() < RERUNS_SCHEMA:
            return []  # a database from before limits, opened read-only
        fetched = await self._fetch(
            "SELECT l.tag, l.slots, group_concat(s.task_run_id) FROM concurrency_limits l"
            " LEFT JOIN concurrency_slots s ON s.tag = l.tag GROUP BY l.tag ORDER BY l.tag",
            (),
        )
        return [
            LimitRecord(tag, slots, tuple(held.split(",")) if held else ())
            for tag, slots, held in fetched
        ]

    async def take_slots(
        self, tags: Collection[str], task_run_id: str, *, pid: int, pid_started: str,
        now: float, is_live: IsLive,
    ) -> bool:  # fmt: skip
        """Take a slot of every limited tag in `tags` for `task_run_id`, or none.

        Returns False when one of them is full (slots held by dead processes are taken
        back first). A task run that holds its slots already takes them again.
        """

        def write(conn: sqlite3.Connection) -> bool:
            for tag in tags:
                row = conn.execute(
                    "SELECT slots FROM concurrency_limits WHERE tag = ?", (tag,)
                ).fetchone()
                if row is None:
                    continue
                held = conn.execute(
                    "SELECT task_run_id, pid, pid_started FROM concurrency_slots"
                    " WHERE tag = ? AND task_run_id != ?",
                    (tag, task_run_id),
                ).fetchall()
                dead = [h[0] for h in held if not is_live(h[1], h[2])]
                conn.executemany(
                    "DELETE FROM concurrency_slots WHERE tag = ? AND task_run_id = ?",
                    [(tag, d) for d in dead],
                )
                if len(held) - len(dead) >= int(row[0]):
                    return False
            conn.executemany(
                "INSERT OR REPLACE INTO concurrency_slots (tag, task_run_id, pid,"
                " pid_started, acquired_at) SELECT tag, ?, ?, ?, ? FROM"
                " concurrency_limits WHERE tag = ?",
                [(task_run_id, pid, pid_started, now, tag) for tag in tags],
            )
            return True

        taken: bool = await self._write(write)
        return taken

    def give_back_slots(self, task_run_id: str) -> None:
        """Queue the release of `task_run_id`'s slots (with its next checkpoint)."""
        self.writer.submit(
            lambda conn: conn.execute(
                "DELETE FROM concurrency_slots WHERE task_run_id = ?", (task_run_id,)
            )
        )
