"""Waiting for task concurrency slots: limits by tag (`durable limits set TAG N`).

A task run carrying a limited tag takes a slot of each such tag before each attempt and
gives them back when the attempt ends; while a tag is full it waits, polling every
`SLOT_POLL` on the run's time source (so a fake clock drives it in tests). The limits a
flow run honours are read once, when it starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from durable.liveness import Liveness, liveness, process_token

if TYPE_CHECKING:
    from durable.engine.task_runner import RunEnvironment

logger = logging.getLogger("durable.TaskRunner")

SLOT_POLL = timedelta(seconds=0.25)
"""How often a task run waiting for a slot asks again."""


def _maybe_alive(pid: int | None, token: str | None) -> bool:
    # A holder on another host cannot be checked: its slot is kept, never stolen.
    return liveness(pid, token) is not Liveness.DEAD


@asynccontextmanager
async def concurrency_slots(
    env: RunEnvironment, task_name: str, tags: Collection[str], task_run_id: str
) -> AsyncIterator[None]:
    """Hold a slot of each of `tags` that has a limit while the block runs."""
    limited = env.limited_tags.intersection(tags)
    if not limited:
        yield
        return
    pid, store, time = os.getpid(), env.store, env.time
    token, waiting = process_token(pid), False
    while not await store.take_slots(
        limited, task_run_id, pid=pid, pid_started=token, now=time.timestamp(),
        is_live=_maybe_alive,
    ):  # fmt: skip
        if not waiting:
            logger.info("Task %r: waiting for a concurrency slot (%s)", task_name,
                        ", ".join(sorted(limited)))  # fmt: skip
            waiting = True
        await time.sleep_until(time.now() + SLOT_POLL)
    try:
        yield
    finally:
        store.give_back_slots(task_run_id)
