"""The one place durable reads the clock or sleeps, so tests can move time by hand."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Protocol

import anyio
import anyio.lowlevel
import pendulum
from pendulum import DateTime


class TimeSource(Protocol):
    """Where the engine reads the time and waits for it."""

    def now(self) -> DateTime:
        """Return the current instant, in UTC."""
        ...

    def timestamp(self) -> float:
        """Return the current instant as Unix seconds (cheaper than `now`)."""
        ...

    async def sleep_until(self, when: DateTime) -> None:
        """Return once `when` has come."""
        ...


class SystemTime:
    """The real clock."""

    def now(self) -> DateTime:
        return pendulum.now("UTC")

    def timestamp(self) -> float:
        return time.time()

    async def sleep_until(self, when: DateTime) -> None:
        delay = when.timestamp() - time.time()
        if delay > 0:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()


class FakeTime:
    """A time source that moves only when a test calls `advance`."""

    def __init__(self, start: DateTime) -> None:
        self._now, self._sleepers = start, list[tuple[DateTime, anyio.Event]]()

    def now(self) -> DateTime:
        return self._now

    def timestamp(self) -> float:
        return self._now.timestamp()

    async def sleep_until(self, when: DateTime) -> None:
        if when <= self._now:
            return await anyio.lowlevel.checkpoint()
        woken = anyio.Event()
        self._sleepers.append((when, woken))
        await woken.wait()

    def advance(self, delta: timedelta) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._now += delta
        for when, woken in self._sleepers:
            if when <= self._now:
                woken.set()
        self._sleepers = [(w, e) for w, e in self._sleepers if w > self._now]

    @property
    def sleepers(self) -> int:
        """How many waits are pending (lets a test know the engine is asleep)."""
        return len(self._sleepers)


def monotonic() -> float:
    """Return seconds from a clock that never jumps (for measuring waits, not for dates)."""
    return time.monotonic()


SYSTEM_TIME = SystemTime()
"""The default time source."""


def from_timestamp(seconds: float) -> DateTime:
    """Turn stored Unix seconds back into a UTC instant."""
    return pendulum.from_timestamp(seconds, tz="UTC")
