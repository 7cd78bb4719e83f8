"""Issue 4 acceptance (RELIABILITY C1): two hours of worker downtime, on a fake clock,
under each catchup policy: exactly the expected runs, every other missed tick recorded
as Skipped, and no tick ever twice, however many workers restart.

Two flows tick: one every 5 minutes (an interval), one on cron `*/10 * * * *`. A worker
passes every 5 minutes for 30 minutes and stops; the clock moves 2 hours (plus a
lateness) with no pass; a new Worker on the same store passes once (the restart),
another new Worker passes again at the same instant (a second restart), then the
schedule goes on. The policy is set on the worker (`Worker(catchup=...)`, the CLI's
`--catchup`) or on the flow (`Flow(catchup=...)`, which wins over the worker's).
RELIABILITY's `latest` is `skip` here; it has no `window=` policy.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pendulum
import pytest

from durable import Flow
from durable.schedules import CronSchedule, IntervalSchedule
from durable.store import Store
from durable.store.packaging import package_flow
from durable.store.records import ScheduledRunRecord
from durable.timesource import FakeTime
from durable.worker import Catchup, InProcessLauncher, Worker
from tests.worker import flows, shared

pytestmark = pytest.mark.anyio

INTERVAL, CRON = "every-5-minutes", "cron-every-10-minutes"
FIVE_MINUTES, TEN_MINUTES = timedelta(minutes=5), timedelta(minutes=10)
UP_FOR = timedelta(minutes=30)
"""How long the first worker runs (passing every 5 minutes) before the downtime."""
DOWNTIME = timedelta(hours=2)
LATE_AFTER = timedelta(seconds=60)
"""The worker's default: how overdue a tick is when catchup `none` skips it."""

OTHER: dict[Catchup, Catchup] = {"all": "none", "skip": "all", "none": "all"}
"""A worker policy that would run other ticks than the flow's own policy."""

# (policy, seconds after the last missed tick that the worker restarts,
#  interval ticks run, cron ticks run), of the 24 and 12 ticks due in the 2 hours.
EXPECTED = [
    pytest.param("all", 0, 24, 12, id="all"),
    pytest.param("all", 90, 24, 12, id="all-90s-late"),
    pytest.param("skip", 0, 1, 1, id="skip"),
    pytest.param("skip", 90, 1, 1, id="skip-90s-late"),
    # `none` runs only ticks less than late_after (60 s) overdue. A restart exactly at
    # a tick runs that one (0 s overdue: on time) and no older one; a restart 60 s or
    # more after the last tick runs none of the 24 / 12.
    pytest.param("none", 0, 1, 1, id="none-restart-at-a-tick"),
    pytest.param("none", 59, 1, 1, id="none-59s-late"),
    pytest.param("none", 60, 0, 0, id="none-60s-late"),
    pytest.param("none", 90, 0, 0, id="none-90s-late"),
]


def build_flows(catchup: Catchup | None) -> list[Flow]:
    every_5 = IntervalSchedule(flows.START, FIVE_MINUTES)
    with Flow(INTERVAL, schedule=every_5, catchup=catchup) as one:
        flows.first()
    cron = CronSchedule("*/10 * * * *")
    with Flow(CRON, schedule=cron, catchup=catchup) as two:
        flows.first()
    return [one, two]


def ticks(
    after: pendulum.DateTime, step: timedelta, until: pendulum.DateTime
) -> list[float]:
    """Every multiple of `step` (counted from START) in (after, until]: the oracle."""
    count = int((after - flows.START).total_seconds() // step.total_seconds()) + 1
    found: list[float] = []
    while (at := flows.START + step * count) <= until:
        found.append(at.timestamp())
        count += 1
    return found


def rows_of(
    runs: list[ScheduledRunRecord], flow: str, after: float, until: float
) -> list[ScheduledRunRecord]:
    return [r for r in runs if r.flow_name == flow and after < r.scheduled_for <= until]


def duplicates(runs: list[ScheduledRunRecord]) -> list[tuple[str, float]]:
    """Keys seen more than once: GROUP BY flow_name, scheduled_for HAVING COUNT(*) > 1."""
    seen = Counter((r.flow_name, r.scheduled_for) for r in runs)
    return [key for key, count in seen.items() if count > 1]


async def execution_order(store: Store, runs: list[ScheduledRunRecord]) -> list[float]:
    """The scheduled times of `runs`, in the order their flow runs started.

    State ids follow the database's commit order, so the first state of each flow run
    orders the runs as they really ran.
    """
    started = []
    for run in runs:
        states = await store.list_states(run.id)
        started.append((states[0].id, run.scheduled_for))
    return [scheduled_for for _, scheduled_for in sorted(started)]


def worker(store: Store, time: FakeTime, catchup: Catchup, name: str) -> Worker:
    launcher = InProcessLauncher(store, time)
    return Worker(store, time, launcher, catchup=catchup, name=name,
                  late_after=LATE_AFTER)  # fmt: skip


async def check_missed_ticks(
    store: Store, runs: list[ScheduledRunRecord], catchup: Catchup,
    missed: list[float], ran: int,
) -> None:  # fmt: skip
    """The missed ticks are exactly one row each: the `ran` newest Finished with
    Success, in order, and every other one Skipped by `catchup`."""
    assert [r.scheduled_for for r in runs] == missed  # none dropped, none twice
    finished = [r for r in runs if r.status == "Finished"]
    skipped = [r for r in runs if r.status == "Skipped"]
    assert len(finished) == ran
    assert len(skipped) == len(missed) - ran
    assert [r.scheduled_for for r in finished] == missed[len(missed) - ran :]
    assert {r.message for r in finished} <= {"Success"}
    assert all(repr(catchup) in (r.message or "") for r in skipped)  # names it
    in_order = sorted(r.scheduled_for for r in finished)
    assert await execution_order(store, finished) == in_order


@pytest.mark.parametrize("policy_of", ["worker", "flow"])
@pytest.mark.parametrize(("catchup", "late", "interval_runs", "cron_runs"), EXPECTED)
async def test_two_hours_of_downtime_run_exactly_the_policys_ticks_once(
    store: Store, fake_time: FakeTime, policy_of: str, catchup: Catchup, late: int,
    interval_runs: int, cron_runs: int,
) -> None:  # fmt: skip
    flow_policy = catchup if policy_of == "flow" else None
    worker_policy = catchup if policy_of == "worker" else OTHER[catchup]
    for flow in build_flows(flow_policy):
        new = package_flow(flow, file=None, registered_at=fake_time.timestamp())
        await store.register_flow(new)

    # Up for 30 minutes, a pass every 5: every tick runs on time.
    first = worker(store, fake_time, worker_policy, "before")
    for _ in range(UP_FOR // FIVE_MINUTES):
        fake_time.advance(FIVE_MINUTES)
        await first.run_once()
    stopped = fake_time.now()
    before = await store.list_scheduled_runs()
    for name, step in ((INTERVAL, FIVE_MINUTES), (CRON, TEN_MINUTES)):
        rows = rows_of(before, name, 0, stopped.timestamp())
        assert [r.scheduled_for for r in rows] == ticks(flows.START, step, stopped)
        assert {(r.status, r.message) for r in rows} == {("Finished", "Success")}
    assert len(before) == 6 + 3

    # Down for 2 hours (no pass); a new worker restarts `late` s after the last tick.
    fake_time.advance(DOWNTIME + timedelta(seconds=late))
    report = await worker(store, fake_time, worker_policy, "after").run_once()
    runs = await store.list_scheduled_runs()
    since, now = stopped.timestamp(), fake_time.timestamp()
    missed = {
        INTERVAL: ticks(stopped, FIVE_MINUTES, fake_time.now()),
        CRON: ticks(stopped, TEN_MINUTES, fake_time.now()),
    }
    assert {name: len(at) for name, at in missed.items()} == {INTERVAL: 24, CRON: 12}
    for name, ran in ((INTERVAL, interval_runs), (CRON, cron_runs)):
        rows = rows_of(runs, name, since, now)
        await check_missed_ticks(store, rows, catchup, missed[name], ran)
    assert (report.created, report.launched) == (36, interval_runs + cron_runs)
    assert shared.CALLS["first"] == len(before) + interval_runs + cron_runs

    # A second restart at the same instant (another new Worker) creates nothing.
    again = await worker(store, fake_time, worker_policy, "again").run_once()
    assert (again.created, again.launched) == (0, 0)
    assert await store.list_scheduled_runs() == runs

    # The schedule goes on: the next ticks (5 and 10 minutes after the last missed
    # one) run on time, whatever the policy.
    restarted = worker(store, fake_time, worker_policy, "later")
    for step in (FIVE_MINUTES - timedelta(seconds=late), FIVE_MINUTES):
        fake_time.advance(step)
        await restarted.run_once()
    runs = await store.list_scheduled_runs()
    next_ticks = Counter(
        (r.flow_name, r.scheduled_for - now + late, r.status, r.message)
        for r in runs
        if r.scheduled_for > now
    )
    assert next_ticks == {
        (INTERVAL, 300, "Finished", "Success"): 1,
        (INTERVAL, 600, "Finished", "Success"): 1,
        (CRON, 600, "Finished", "Success"): 1,
    }
    assert duplicates(runs) == []
    assert len({r.id for r in runs}) == len(runs) == 9 + 36 + 3
