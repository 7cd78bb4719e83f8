"""Flows the worker tests register: `shared.CALLS` counts each task body that ran."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pendulum

from durable import Flow, task
from durable.schedules import IntervalSchedule
from tests.worker import shared

START = pendulum.datetime(2026, 1, 1, tz="UTC")


@task
def first() -> int:
    shared.CALLS["first"] += 1
    return 1


@task
def second(x: int) -> int:
    shared.CALLS["second"] += 1
    return x + 1


def every_minute(name: str = "ticking") -> Flow:
    """A two-task flow on a one-minute schedule that starts at START."""
    with Flow(name, schedule=IntervalSchedule(START, timedelta(minutes=1))) as flow:
        second(first())
    return flow


@task
async def halt(x: int) -> int:
    shared.CALLS["halt"] += 1
    if shared.HALT:
        shared.HALT.pop()()
        await anyio.sleep_forever()
    return x


def crashing(name: str = "crashing") -> Flow:
    """A two-task flow whose second task can be made to crash its run."""
    with Flow(name, schedule=IntervalSchedule(START, timedelta(minutes=1))) as flow:
        halt(first())
    return flow
