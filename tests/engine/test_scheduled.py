"""flow.run() on a schedule: one run per event, at the event's time, on the fake clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pendulum
import pytest

from durable import Flow, Parameter, context, task
from durable.engine.scheduled import run_on_schedule_async
from durable.errors import ConfigurationError
from durable.schedules import IntervalClock, IntervalSchedule, Schedule
from durable.states import State
from durable.timesource import FakeTime
from tests.engine.helpers import rows

pytestmark = pytest.mark.anyio


async def run_scheduled(flow: Flow, db: Path, clock: FakeTime, **options: Any) -> State:
    """Run the flow on its schedule, jumping the fake clock to each wake-up time."""
    outcome: list[State] = []

    async def drive() -> None:
        outcome.append(await run_on_schedule_async(flow, db=db, time=clock, **options))

    async with anyio.create_task_group() as group:
        group.start_soon(drive)
        while not outcome:
            await anyio.lowlevel.checkpoint()
            await anyio.to_thread.run_sync(lambda: None)
            if clock._sleepers:
                clock.advance(min(w for w, _ in clock._sleepers) - clock.now())
    return outcome[0]


def noting_flow(schedule: Any, seen: list[Any]) -> Flow:
    @task
    def note(x: int) -> int:
        seen.append((context.scheduled_start_time, x))
        return x

    with Flow("scheduled", schedule=schedule) as flow:
        note(Parameter("x", default=0))
    return flow


async def test_each_event_is_a_new_run_at_its_time(
    db: Path, fake_time: FakeTime
) -> None:
    start = fake_time.now().add(hours=1)
    schedule = IntervalSchedule(start_date=start, interval=timedelta(hours=1),
                                end_date=start.add(hours=2))  # fmt: skip
    seen: list[Any] = []
    state = await run_scheduled(noting_flow(schedule, seen), db, fake_time)
    assert state.is_successful()
    assert [when for when, _ in seen] == [start, start.add(hours=1), start.add(hours=2)]
    assert fake_time.now() == start.add(hours=2)
    assert rows(db, "SELECT COUNT(*) FROM flow_runs WHERE state = 'Success'") == [(3,)]


async def test_clock_parameter_defaults_go_over_the_given_ones(
    db: Path, fake_time: FakeTime
) -> None:
    start = fake_time.now().add(minutes=5)
    schedule = Schedule(clocks=[
        IntervalClock(timedelta(days=1), start_date=start, end_date=start,
                      parameter_defaults={"x": 7}),
        IntervalClock(timedelta(days=1), start_date=start.add(minutes=1),
                      end_date=start.add(minutes=1)),
    ])  # fmt: skip
    seen: list[Any] = []
    await run_scheduled(noting_flow(schedule, seen), db, fake_time, parameters={"x": 1})
    assert [x for _, x in seen] == [7, 1]


async def test_a_schedule_without_events_ahead_runs_nothing(
    db: Path, fake_time: FakeTime
) -> None:
    past = pendulum.datetime(2020, 1, 1, tz="UTC")
    schedule = IntervalSchedule(start_date=past, interval=timedelta(hours=1),
                                end_date=past.add(hours=1))  # fmt: skip
    with pytest.raises(ConfigurationError, match="no events"):
        await run_on_schedule_async(noting_flow(schedule, []), db=db, time=fake_time)
    assert rows(db, "SELECT COUNT(*) FROM flow_runs") == [(0,)]


def test_run_on_schedule_false_runs_once_now(db: Path) -> None:
    schedule = IntervalSchedule(start_date=pendulum.datetime(2030, 1, 1, tz="UTC"),
                                interval=timedelta(hours=1))  # fmt: skip
    seen: list[Any] = []
    flow = noting_flow(schedule, seen)
    assert flow.run(run_on_schedule=False, db=db, x=3).is_successful()
    assert [x for _, x in seen] == [3]


def test_a_scheduled_flow_cannot_resume_a_run_id_on_its_schedule(db: Path) -> None:
    schedule = IntervalSchedule(start_date=pendulum.datetime(2030, 1, 1, tz="UTC"),
                                interval=timedelta(hours=1))  # fmt: skip
    with pytest.raises(ConfigurationError, match="run_on_schedule=False"):
        noting_flow(schedule, []).run(run_id="r1", db=db)
