"""The one place durable reads the clock or sleeps, so tests can move time by hand.

`DURABLE_FAKE_CLOCK=PATH` (tests only) makes `SYSTEM_TIME` a `FileTime`: the wall clock of
every durable process started with it is the real one shifted by the `offset` seconds in
the JSON file at PATH, which a test rewrites to step the clock of real worker processes
(RELIABILITY C4). The monotonic clock is not shifted, as a real clock step leaves it.
"""

from __future__ import annotations

import json
import os
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

    def monotonic(self) -> float:
        """Return seconds from a clock that wall-clock steps do not move (for how long
        something lasted, never for dates)."""
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

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, when: DateTime) -> None:
        delay = when.timestamp() - self.timestamp()
        if delay > 0:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()


class FakeTime:
    """A time source that moves only when a test calls `advance`."""

    def __init__(self, start: DateTime) -> None:
        self._now, self._sleepers = start, list[tuple[DateTime, anyio.Event]]()
        self._elapsed = 0.0

    def now(self) -> DateTime:
        return self._now

    def timestamp(self) -> float:
        return self._now.timestamp()

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep_until(self, when: DateTime) -> None:
        if when <= self._now:
            return await anyio.lowlevel.checkpoint()
        woken = anyio.Event()
        self._sleepers.append((when, woken))
        await woken.wait()

    def advance(self, delta: timedelta) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._elapsed += delta.total_seconds()
        self.jump(delta)

    def jump(self, delta: timedelta) -> None:
        """Step the wall clock alone, by `delta` (negative: back), as an NTP step or
        a person setting the clock does: the monotonic clock does not move."""
        self._now += delta
        for when, woken in self._sleepers:
            if when <= self._now:
                woken.set()
        self._sleepers = [(w, e) for w, e in self._sleepers if w > self._now]

    @property
    def sleepers(self) -> int:
        """How many waits are pending (lets a test know the engine is asleep)."""
        return len(self._sleepers)


class FileTime(SystemTime):
    """The real clock shifted by the `offset` (seconds) that a JSON file holds: a wall
    clock that a test steps from outside the process (see the module docstring).

    The file is read again only when its modification time changes; a missing or
    unreadable file means no shift.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        """The JSON file, `{"offset": seconds}`."""
        self._stamp: int | None = None
        self._offset = 0.0

    def now(self) -> DateTime:
        return pendulum.from_timestamp(self.timestamp(), tz="UTC")

    def timestamp(self) -> float:
        return time.time() + self.offset()

    def offset(self) -> float:
        """The current shift in seconds."""
        try:
            stamp = os.stat(self.path).st_mtime_ns
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8") as file:
                    self._offset = float(json.load(file).get("offset", 0.0))
                self._stamp = stamp
        except (OSError, ValueError, AttributeError):
            pass  # a file being rewritten: keep the last offset read
        return self._offset


def monotonic() -> float:
    """Return seconds from a clock that never jumps (for measuring waits, not for dates)."""
    return time.monotonic()


FAKE_CLOCK_ENV = "DURABLE_FAKE_CLOCK"


def _system_time() -> SystemTime:
    path = os.environ.get(FAKE_CLOCK_ENV)
    return FileTime(path) if path else SystemTime()


SYSTEM_TIME = _system_time()
"""The default time source: the real clock (a `FileTime` under DURABLE_FAKE_CLOCK)."""


def from_timestamp(seconds: float) -> DateTime:
    """Turn stored Unix seconds back into a UTC instant."""
    return pendulum.from_timestamp(seconds, tz="UTC")
