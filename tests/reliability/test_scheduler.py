"""RELIABILITY 5.3, group C (the scheduler), on durable's architecture: the scheduler is
the worker (`durable worker`); each pass records the due ticks of every registered
schedule as `scheduled_runs` rows (UNIQUE key, inserted in the transaction that moves
the flow's cursor, the newest tick), claims them under a lease and launches each run in
a process of its own.

- **C1 downtime catch-up.** tests/worker/test_downtime.py proves the table in-process,
  exactly: 2 h of downtime with a 5-min interval and cron `*/10`, 24 / 12 runs for
  `all` (in order), 1 / 1 for `skip` (RELIABILITY's `latest`), 0 / 0 for `none` (a
  restart >= 60 s after the last tick; a restart at a tick runs that one), every other
  missed tick a `Skipped` row naming the policy (durable's MISSED record: count =
  missed - created), a second restart creating 0 rows, and the next ticks on time.
  `test_c1_downtime_with_real_workers_on_a_stepped_clock` adds the same table through
  real `durable worker --burst --catchup P` processes whose wall clock is stepped 2 h
  (DURABLE_FAKE_CLOCK). `window=30m` is **not built**: durable's policies are
  skip/all/none (`durable.core.flow.CATCHUPS`); `none` is a fixed 60 s window.
- **C2 four concurrent schedulers**: `test_c2_four_workers_killed_at_random_...`, real
  time (30 s PR, 120 s nightly), a random worker SIGKILLed (its process group) every
  U(5, 15) s and restarted. Schedules: 1 s interval and 1-min cron; a 6-field seconds
  cron is refused by durable (docs/schedules.md), so it is not in the mix.
  tests/worker/test_soak.py is the older, shorter variant (1 s interval only).
- **C3** `test_c3_crash_between_tick_insert_and_cursor_...`: crash point
  `after_tick_insert_before_cursor` x10 (PR) / x50 (nightly) beside a healthy worker.
- **C4 wall-clock steps**: in-process (PR: `FakeTime.jump`, an owner on "another host"
  whose liveness is unknown, so only its lease protects it) and with real processes
  (nightly: `DURABLE_FAKE_CLOCK`, 30 s of real time): -1 h, +1 h, +-288 s bumps x50. A live owner on this machine is
  never robbed (its liveness is ALIVE); a lease's expiry is timed on the watcher's
  monotonic clock (the fix this campaign made: before, a +1 h step expired every lease
  of an owner on another host at once).
- **C5 DST**: the unit vectors V1-V11, Lord Howe and Santiago are
  tests/schedules/test_dst.py (`next_fire_times`, CronClock, restarts at any minute, a
  minute-by-minute policy scan). `test_c5_...` adds the integration run: a worker on a
  fake clock stepped 1 min at a time through the 24 h around each transition (1,440
  steps) creates exactly the vector's runs, and exactly a brute-force oracle's runs
  for the whole window.
- **C6 overlap policy: not built.** durable has no SKIP / BUFFER_ONE overlap policy;
  what it does is ALLOW (one run per tick, overlapping runs run side by side, up to the
  worker's concurrency): `test_c6_...` pins that down.
- **C7** `test_c7_...`: a schedule row with an invalid cron written into the database
  directly is reported once (and left aside for 5 minutes, not unpickled and logged at
  every pass) while the other flows tick on time; the C2 run carries such a row too,
  so its lateness bounds hold with it.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import random
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pendulum
import pytest
from cronsim import CronSim

from durable import Flow, task
from durable.schedules import CronSchedule, IntervalSchedule
from durable.store import Store
from durable.store.packaging import package_flow
from durable.store.records import ScheduledRunRecord
from durable.timesource import SYSTEM_TIME, FakeTime, from_timestamp
from durable.worker import InProcessLauncher, Worker, run_scheduled
from tests.reliability._sched_helpers import (
    clock_env,
    duplicate_ticks,
    integrity,
    keep_artifacts_on_failure,
    kill_group,
    kill_groups,
    leaked_processes,
    lock_errors,
    percentile,
    query,
    rel_seed,
    start_worker,
    terminate_and_time,
    wait_until,
    write_clock,
)
from tests.schedules.test_dst import CRON_VECTORS
from tests.worker.helpers import HoldingLauncher
from tests.worker.processes import pause, read, register_file

MINUTE = timedelta(minutes=1)
ELSEWHERE = "another-host|boot|123"
"""A start token of a process on another machine: its liveness is unknown here."""


@task
def noop() -> int:
    return 1


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    opened = await Store.open(db)
    try:
        yield opened
    finally:
        await opened.close()


async def register(store: Store, flow: Flow, at: float) -> None:
    await store.register_flow(package_flow(flow, file=None, registered_at=at))


def ticks_between(flow: Flow, after: float, until: float) -> list[float]:
    """The oracle: the flow's schedule's ticks in (after, until]."""
    assert flow.schedule is not None
    found: list[float] = []
    for event in flow.schedule.events(from_timestamp(after)):
        if event.start_time.timestamp() > until:
            return found
        found.append(event.start_time.timestamp())
    return found


def rows_by_flow(db: Path) -> dict[str, list[tuple[float, str, str | None]]]:
    """(scheduled_for, status, message) of every scheduled run, per flow, in order."""
    found: dict[str, list[tuple[float, str, str | None]]] = defaultdict(list)
    for name, at, status, message in query(
        db,
        "SELECT flow_name, scheduled_for, status, message FROM scheduled_runs"
        " ORDER BY flow_name, scheduled_for",
    ):
        found[name].append((at, status, message))
    return found


# C1 ------------------------------------------------------------------------------------
C1_FLOWS = """\
from datetime import timedelta

import pendulum

from durable import Flow, task
from durable.schedules import CronSchedule, IntervalSchedule


@task
def tick():
    return 1


every_5 = IntervalSchedule(pendulum.datetime(2020, 1, 1, tz="UTC"), timedelta(minutes=5))
with Flow("every-5-minutes", schedule=every_5) as interval:
    tick()
with Flow("cron-every-10-minutes", schedule=CronSchedule("*/10 * * * *")) as cron:
    tick()
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("catchup", "interval_runs", "cron_runs"),
    [  # the PR tier runs one policy; test_downtime.py runs all three in-process
        pytest.param("all", 24, 12, marks=pytest.mark.nightly),
        pytest.param("skip", 1, 1, marks=pytest.mark.reliability),
        pytest.param("none", 0, 0, marks=pytest.mark.nightly),
    ],
)
def test_c1_downtime_with_real_workers_on_a_stepped_clock(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch, catchup: str,
    interval_runs: int, cron_runs: int,
) -> None:  # fmt: skip
    source = tmp_path / "downtime.py"
    source.write_text(C1_FLOWS)
    monkeypatch.setattr(sys, "path", list(sys.path))  # loading the file extends it
    # Registered on a 10-minute boundary; the worker's clock then reads 2 h 90 s later:
    # 24 five-minute and 12 ten-minute ticks are due, the newest 90 s overdue.
    real = SYSTEM_TIME.timestamp()
    registered = real // 600 * 600 - 600
    flows = register_file(db, source, registered_at=registered)
    clock = tmp_path / "clock.json"
    stopped_for = 2 * 3600 + 90
    write_clock(clock, registered + stopped_for - real)
    env = clock_env(clock)
    processes: list[subprocess.Popen[bytes]] = []

    def burst(name: str) -> None:
        process = start_worker(db, tmp_path, name, "--burst", "--catchup", catchup,
                               env=env)  # fmt: skip
        processes.append(process)
        code = process.wait(timeout=90)
        assert code == 0, (tmp_path / "workers.log").read_text()[-3000:]

    try:
        burst("restart")
        after_restart = rows_by_flow(db)
        burst("second-restart")  # at (about) the same instant: nothing new
        assert rows_by_flow(db) == after_restart
        # The next five-minute tick (R + 2 h 5 min) comes 10 s before the next pass.
        write_clock(clock, registered + 2 * 3600 + 300 + 10 - SYSTEM_TIME.timestamp())
        burst("later")
    finally:
        kill_groups(processes)

    rows = rows_by_flow(db)
    cutoff = registered + stopped_for
    for name, count, ran in (("every-5-minutes", 24, interval_runs),
                             ("cron-every-10-minutes", 12, cron_runs)):  # fmt: skip
        missed = [r for r in rows[name] if r[0] <= cutoff]
        due = ticks_between(flows[name], registered, cutoff)
        assert [at for at, _, _ in missed] == due  # every tick one row: none dropped
        assert len(due) == count
        statuses = [(status, message) for _, status, message in missed]
        skipped = ("Skipped", f"missed tick skipped by catchup policy {catchup!r}")
        finished = ("Finished", "Success")
        assert statuses == [skipped] * (len(due) - ran) + [finished] * ran
    # The schedule goes on: the next five-minute tick runs, on time, whatever the
    # policy; the next ten-minute one is not due yet.
    assert rows["every-5-minutes"][-1] == (
        registered + 2 * 3600 + 300,
        "Finished",
        "Success",
    )
    assert [r for r in rows["cron-every-10-minutes"] if r[0] > cutoff] == []
    assert duplicate_ticks(db) == []


# C2 ------------------------------------------------------------------------------------
C2_FLOWS = """\
import os
import time
from datetime import timedelta
from pathlib import Path

import pendulum

import durable.timesource
from durable import Flow, context, task
from durable.schedules import CronSchedule, IntervalSchedule

LOG = str(Path(__file__).with_name("executions.log"))


@task
def record():
    # One write per line, O_APPEND: a kill cannot tear it. The time is the workers'
    # (stepped) clock, the one scheduled_for is in: looked up in the run's process
    # (a global object would be pickled with the task, the registering process's).
    now = durable.timesource.SYSTEM_TIME.timestamp()
    line = f"{context.flow_run_id} {os.getpid()} {now:.6f}\\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    time.sleep(0.8)  # a run is going most of the time: kills land on bodies too


second = IntervalSchedule(pendulum.datetime(2020, 1, 1, tz="UTC"), timedelta(seconds=1))
with Flow("every-second", schedule=second) as every_second:
    record()
with Flow("every-minute", schedule=CronSchedule("* * * * *")) as every_minute:
    record()
with Flow("broken", schedule=CronSchedule("* * * * *")) as broken:
    record()
"""

WORKERS = 4
MAX_CRASHES = 3


def invalid_cron_schedule() -> bytes:
    """A pickled schedule whose cron is `61 * * * *`: what a row written by hand (or
    by another program) can hold, since validation happens only when one is built."""
    schedule = CronSchedule("* * * * *")
    schedule.clocks[0].cron.fields = "61 * * * *"  # type: ignore[attr-defined]
    schedule.clocks[0].cron.text = "61 * * * *"  # type: ignore[attr-defined]
    return pickle.dumps(schedule)


def corrupt_schedule(db: Path, flow: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        changed = conn.execute(
            "UPDATE flows SET schedule = ? WHERE name = ?",
            (invalid_cron_schedule(), flow),
        ).rowcount
    finally:
        conn.close()
    assert changed == 1


def executions(path: Path) -> dict[str, list[float]]:
    """When each flow run's body started (the workers' clock), from the side log."""
    found: dict[str, list[float]] = defaultdict(list)
    for line in path.read_text().splitlines() if path.exists() else []:
        run_id, _pid, at = line.split()
        found[run_id].append(float(at))
    return found


@dataclass
class Pool:
    """Worker slots on one database: the live process of each and what was done."""

    db: Path
    cwd: Path
    args: tuple[str, ...]
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    every: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: int = 0
    spared: int = 0
    killed_at: list[float] = field(default_factory=list)
    """When each kill happened, in the real time (the test's clock)."""

    def start(self, slot: int) -> None:
        name = f"w{slot}.{len(self.every)}"
        process = start_worker(self.db, self.cwd, name, *self.args, env=self.env)
        self.every.append(process)
        if slot < len(self.processes):
            self.processes[slot], self.names[slot] = process, name
        else:
            self.processes.append(process)
            self.names.append(name)

    def victim(self, rng: random.Random) -> int:
        """A random worker holding a run, if one does, else any (so that kills land
        on running runs, whose recovery then counts in the lateness)."""
        holding = {name for (name,) in query(
            self.db, "SELECT claimed_by FROM scheduled_runs WHERE status = 'Running'"
        )}  # fmt: skip
        slots = [i for i, name in enumerate(self.names) if name in holding]
        if slots:
            return rng.choice(slots)
        return rng.randrange(len(self.names))

    def kill_and_restart(self, slot: int) -> None:
        """kill -9 a worker's group, unless it holds a run that crashed before (so no
        run reaches the 3 crashes that make it Crashed: G5, not this test's subject)."""
        held = query(
            self.db,
            "SELECT COUNT(*) FROM scheduled_runs WHERE status = 'Running'"
            " AND claimed_by = ? AND crashes > 0",
            (self.names[slot],),
        )[0][0]
        if held:
            self.spared += 1
            return
        # The time before the kill: every claim the kill causes comes after it.
        self.killed_at.append(SYSTEM_TIME.timestamp())
        kill_group(self.processes[slot])
        self.kills += 1
        self.start(slot)


def drained(db: Path, stop: float) -> bool:
    """Every tick up to `stop` is recorded (a newer one exists) and has ended."""
    newest, waiting = query(
        db,
        "SELECT MAX(scheduled_for), SUM(status IN ('Scheduled', 'Late', 'Running')"
        " AND scheduled_for <= ?) FROM scheduled_runs WHERE flow_name = 'every-second'",
        (stop,),
    )[0]
    return newest is not None and newest > stop and not waiting


def serving(db: Path, pids: set[int]) -> bool:
    """Every worker of `pids` has registered (it handles SIGTERM from then on)."""
    rows = query(db, "SELECT pid FROM workers WHERE stopped_at IS NULL")
    return pids <= {pid for (pid,) in rows}


def recoveries(
    runs: Sequence[ScheduledRunRecord], killed_at: Sequence[float]
) -> list[float]:
    """For each run taken over after its worker was killed: seconds from that kill to
    its new claim (the stepped clock's offset is constant: add it to `killed_at`)."""
    found = []
    for run in runs:
        if run.crashes and run.claimed_at is not None:
            kill = max((k for k in killed_at if k <= run.claimed_at), default=None)
            if kill is not None:
                found.append(run.claimed_at - kill)
    return found


def lateness(
    runs: Sequence[ScheduledRunRecord], started: dict[str, list[float]]
) -> dict[str, float]:
    """Seconds from each tick to its dispatch: its claim, or, for a run whose worker was
    killed (it was claimed again since), the first start of its body."""
    late = {}
    for run in runs:
        if run.crashes == 0 and run.claimed_at is not None:
            late[run.id] = run.claimed_at - run.scheduled_for
        else:
            late[run.id] = min(started[run.id]) - run.scheduled_for
    return late


@pytest.mark.parametrize(
    "duration",
    [
        pytest.param(30, id="30s", marks=[pytest.mark.reliability,
                                          pytest.mark.timeout(150)]),
        pytest.param(120, id="120s", marks=[pytest.mark.nightly,
                                            pytest.mark.timeout(400)]),
    ],
)  # fmt: skip
def test_c2_four_workers_killed_at_random_run_every_tick_once_on_time(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch, duration: int,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    born_after = SYSTEM_TIME.timestamp()  # children older are not ours
    seed = rel_seed("C2")
    rng = random.Random(seed)
    source = tmp_path / "ticking.py"
    source.write_text(C2_FLOWS)
    monkeypatch.setattr(sys, "path", list(sys.path))
    # Shift the workers' clock so the window starts 45 s into a minute: the 1-min cron
    # then ticks inside even the 30 s window (once), not by luck.
    clock = tmp_path / "clock.json"
    offset = (45 - SYSTEM_TIME.timestamp() % 60) % 60
    write_clock(clock, offset)
    registered = SYSTEM_TIME.timestamp() + offset
    flows = register_file(db, source, registered_at=registered)
    corrupt_schedule(db, "broken")  # C7: the others must tick on time regardless
    log = tmp_path / "workers.log"
    pool = Pool(db, tmp_path, ("--catchup", "all"), clock_env(clock))

    with keep_artifacts_on_failure("C2", seed, [db, db.with_name(db.name + "-wal"),
                                                log, tmp_path / "executions.log"]):  # fmt: skip
        try:
            for slot in range(WORKERS):
                pool.start(slot)
            # Lateness counts from when the workers serve (their start-up is not
            # dispatch); the ticks before must still be there, once each.
            wait_until(lambda: serving(db, {p.pid for p in pool.processes}), 30,
                       "every worker registered")  # fmt: skip
            serving_from = SYSTEM_TIME.timestamp() + offset
            until = serving_from + duration
            while (now := SYSTEM_TIME.timestamp() + offset) < until:
                pause(min(rng.uniform(5, 15), until - now))
                if SYSTEM_TIME.timestamp() + offset < until:
                    pool.kill_and_restart(pool.victim(rng))
            stop = SYSTEM_TIME.timestamp() + offset
            wait_until(lambda: drained(db, stop), 60, f"every tick up to {stop}")
            wait_until(lambda: serving(db, {p.pid for p in pool.processes}), 30,
                       "every worker registered")  # fmt: skip
            took = terminate_and_time(pool.processes)
            codes = [process.returncode for process in pool.processes]
        finally:
            kill_groups(pool.every)
        text = log.read_text(errors="replace")
        assert codes == [0] * WORKERS, text[-3000:]
        assert max(took) <= 5.0, took

        runs = read(db, lambda s: s.list_scheduled_runs())
        started = executions(tmp_path / "executions.log")
        assert duplicate_ticks(db) == []
        due = [r for r in runs if r.scheduled_for <= stop]
        for name in ("every-second", "every-minute"):
            mine = [r.scheduled_for for r in due if r.flow_name == name]
            assert mine == ticks_between(flows[name], registered, stop), name
        assert [r for r in runs if r.flow_name == "broken"] == []
        assert {(r.status, r.message) for r in due} == {("Finished", "Success")}
        assert all(r.crashes < MAX_CRASHES for r in runs)
        for run in due:  # at least once; again only after its process was killed
            assert 1 <= len(started[run.id]) <= 1 + run.crashes, run
            assert min(started[run.id]) >= run.scheduled_for, run  # never early

        late = lateness([r for r in due if r.scheduled_for > serving_from], started)
        recovered = recoveries(due, [k + offset for k in pool.killed_at])
        p99, worst = percentile(list(late.values()), 99), max(late.values())
        broken = [line for line in text.splitlines() if "'broken'" in line]
        assert 1 <= len(broken) <= len(pool.every), broken  # once per worker process
        assert lock_errors(text) == []
        assert integrity(db) == "ok"
        assert leaked_processes([p.pid for p in pool.every], born_after) == []
        with capsys.disabled():
            print(
                f"\nC2 {duration}s seed {seed}: {len(due)} ticks "
                f"({sum(r.flow_name == 'every-minute' for r in due)} cron), "
                f"{pool.kills} kills ({pool.spared} spared), "
                f"{sum(r.crashes for r in runs)} runs recovered; dispatch lateness "
                f"p50 {percentile(list(late.values()), 50):.3f} s, p99 {p99:.3f} s, "
                f"max {worst:.3f} s; kill to new claim of its runs: "
                f"{', '.join(f'{r:.2f}' for r in recovered) or '-'} s; "
                f"SIGTERM exits {max(took):.2f} s"
            )
        assert p99 <= 1.5, sorted(late.values())[-5:]
        assert worst <= 5.0, sorted(late.values())[-5:]
        assert all(r <= 5.0 for r in recovered), recovered  # G6: ~2 s


# C3 ------------------------------------------------------------------------------------
C3_FLOW = """\
from datetime import timedelta

import pendulum

from durable import Flow, task
from durable.schedules import IntervalSchedule


@task
def tick():
    return 1


second = IntervalSchedule(pendulum.datetime(2020, 1, 1, tz="UTC"), timedelta(seconds=1))
with Flow("every-second", schedule=second) as flow:
    tick()
"""


@pytest.mark.parametrize(
    ("crashes", "alongside"),
    [
        pytest.param(10, False, id="x10", marks=[pytest.mark.reliability,
                                                 pytest.mark.timeout(120)]),
        pytest.param(50, True, id="x50-beside-a-healthy-worker",
                     marks=[pytest.mark.nightly, pytest.mark.timeout(900)]),
    ],
)  # fmt: skip
def test_c3_crash_between_tick_insert_and_cursor_loses_and_doubles_nothing(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch, crashes: int,
    alongside: bool, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A worker killed inside the transaction that inserts ticks (and so moves the
    cursor) leaves no trace: the rollback drops its rows, the next pass inserts them.

    In the PR tier the crashing workers run one after the other (each dies at its
    first insert, ~1 s a round); nightly, crashing at the 1st-3rd insert, a healthy worker runs beside them
    all along, racing them for every tick (rounds take longer: the crashing one must
    win a race to reach its crash point)."""
    seed = rel_seed("C3")
    rng = random.Random(seed)
    source = tmp_path / "ticking.py"
    source.write_text(C3_FLOW)
    monkeypatch.setattr(sys, "path", list(sys.path))
    registered = SYSTEM_TIME.timestamp()
    [flow] = register_file(db, source, registered_at=registered).values()
    log = tmp_path / "workers.log"
    processes: list[subprocess.Popen[bytes]] = []
    with keep_artifacts_on_failure("C3", seed, [db, log]):
        try:
            if alongside:
                healthy = start_worker(db, tmp_path, "healthy", "--catchup", "all")
                processes.append(healthy)
            for round_ in range(crashes):
                # The first insert of a pass (PR), or a later one (nightly).
                arrival = rng.randint(1, 3) if alongside else 1
                arm = f"after_tick_insert_before_cursor:{arrival}"
                # No fork server (it would start first, for nothing): the runs it
                # launched before its crash run on as `durable worker-run` processes,
                # and the next worker settles them when they end.
                crashing = start_worker(
                    db, tmp_path, f"crashing.{round_}", "--catchup", "all",
                    env={"DURABLE_CRASH_AT": arm, "DURABLE_WORKER_FORK": "0"},
                )  # fmt: skip
                processes.append(crashing)
                crashing.wait(timeout=30)
                assert crashing.returncode == -9, (arm, log.read_text()[-2000:])
            if not alongside:
                healthy = start_worker(db, tmp_path, "healthy", "--catchup", "all")
                processes.append(healthy)
            stop = SYSTEM_TIME.timestamp()
            wait_until(lambda: drained(db, stop), 30, "every tick up to the stop")
            took = terminate_and_time([healthy])
            assert healthy.returncode == 0, log.read_text()[-2000:]
        finally:
            kill_groups(processes)
        runs = read(db, lambda s: s.list_scheduled_runs())
        assert duplicate_ticks(db) == []
        newest = max(r.scheduled_for for r in runs)
        assert [r.scheduled_for for r in runs] == ticks_between(
            flow, registered, newest
        )  # none missing, none twice
        due = [r for r in runs if r.scheduled_for <= stop]
        assert {(r.status, r.message) for r in due} == {("Finished", "Success")}
        assert integrity(db) == "ok"
        with capsys.disabled():
            print(f"\nC3 x{crashes} seed {seed}: {len(runs)} ticks, 0 duplicates, "
                  f"0 missing; healthy worker stopped in {took[0]:.2f} s")  # fmt: skip


# C4 ------------------------------------------------------------------------------------
def lease_of(runs: Sequence[ScheduledRunRecord]) -> tuple[str | None, str | None]:
    [run] = [r for r in runs if r.status == "Running"]
    return run.lease_token, run.claimed_by


@pytest.mark.reliability
@pytest.mark.anyio
@pytest.mark.parametrize("owner_clock", ["same-clock", "own-clock"])
async def test_c4_clock_steps_neither_steal_nor_prolong_a_lease(
    store: Store, fake_time: FakeTime, owner_clock: str
) -> None:
    """The owner runs on another host (its liveness is unknown: only its lease keeps
    its run). The watcher's wall clock steps -1 h, +1 h and 50 times by up to
    +-288 s, with the owner's clock stepping too (one machine's clock) or not (hosts
    whose clocks disagree): no step takes the run; once the owner stops renewing, the
    run is taken over exactly one lease period (30 s) later, whatever the clock did."""
    seed = rel_seed("C4 in-process")
    rng = random.Random(seed)
    owner_time = fake_time if owner_clock == "same-clock" else FakeTime(fake_time.now())
    with Flow("ticking", schedule=IntervalSchedule(fake_time.now(), MINUTE)) as flow:
        noop()
    await register(store, flow, fake_time.timestamp())
    for clock in {fake_time, owner_time}:
        clock.advance(MINUTE)
    owner = Worker(store, owner_time, HoldingLauncher(ELSEWHERE), name="owner")
    watcher = Worker(store, fake_time, InProcessLauncher(store, fake_time),
                     name="watcher")  # fmt: skip
    await owner.run_once()
    held = lease_of(await store.list_scheduled_runs())
    assert held[1] == "owner"

    async def step(jump: float) -> None:
        fake_time.jump(timedelta(seconds=jump))
        for clock in {fake_time, owner_time}:
            clock.advance(timedelta(seconds=1))
        await owner.heartbeat()
        assert await watcher.recover() == 0, jump
        assert lease_of(await store.list_scheduled_runs()) == held

    await watcher.recover()  # the watcher sees the lease before the steps
    for jump in [-3600, 3600, *(rng.uniform(-288, 288) for _ in range(50))]:
        await step(jump)
    assert duplicate_ticks(store.path) == []

    # The owner dies (no more renewals), and the watcher's clock jumps back 1 h: its
    # run is taken over 30 s (monotonic) after the last renewal, not an hour later.
    fake_time.jump(timedelta(hours=-1))
    for _ in range(29):
        fake_time.advance(timedelta(seconds=1))
        assert await watcher.recover() == 0
    fake_time.advance(timedelta(seconds=1))
    assert await watcher.recover() == 1
    [run] = await store.list_scheduled_runs()
    assert (run.status, run.crashes) == ("Scheduled", 1)
    assert "lease" in (run.message or "")


@pytest.mark.reliability
@pytest.mark.anyio
async def test_c4_before_the_fix_a_forward_step_stole_the_lease(
    store: Store, fake_time: FakeTime
) -> None:
    """The bug the monotonic expiry fixes, kept as a regression test: one pass after a
    +1 h step, a watcher took over a live remote owner's run (its stored lease end was
    in the past by the watcher's wall clock)."""
    with Flow("ticking", schedule=IntervalSchedule(fake_time.now(), MINUTE)) as flow:
        noop()
    await register(store, flow, fake_time.timestamp())
    fake_time.advance(MINUTE)
    owner = Worker(store, fake_time, HoldingLauncher(ELSEWHERE), name="owner")
    watcher = Worker(store, fake_time, InProcessLauncher(store, fake_time),
                     name="watcher")  # fmt: skip
    await owner.run_once()
    assert await watcher.recover() == 0
    fake_time.jump(timedelta(hours=1))
    assert await watcher.recover() == 0  # was 1: "lease of 'owner' expired"
    [run] = await store.list_scheduled_runs()
    assert (run.status, run.claimed_by, run.crashes) == ("Running", "owner", 0)


C4_FLOW = """\
import os
import time
from datetime import timedelta
from pathlib import Path

import pendulum

import durable.timesource
from durable import Flow, context, task
from durable.schedules import IntervalSchedule

LOG = str(Path(__file__).with_name("executions.log"))


@task
def long_task():
    now = durable.timesource.SYSTEM_TIME.timestamp()  # the run process's clock
    line = f"{context.flow_run_id} {os.getpid()} {now:.6f}\\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    time.sleep(4)


every = IntervalSchedule(pendulum.datetime(2020, 1, 1, tz="UTC"), timedelta(seconds=3))
with Flow("long-runs", schedule=every) as flow:
    long_task()
"""

LEASE = 30.0


def clock_followed(db: Path, names: set[str], offset: float) -> bool:
    """Both workers have passed on the stepped clock: their heartbeats read it, and
    every held lease ends within one lease period of it (neither expired nor pushed
    out by the step)."""
    now = SYSTEM_TIME.timestamp() + offset
    beats = dict(query(db, "SELECT name, heartbeat_at FROM workers"))
    if any(abs(beats.get(name, 0.0) - now) > 1.0 for name in names):
        return False
    ends = query(
        db, "SELECT lease_expires_at FROM scheduled_runs WHERE status = 'Running'"
    )
    return all(now - 1.0 < end <= now + LEASE + 0.5 for (end,) in ends)


@pytest.mark.nightly  # the PR tier has the in-process C4 tests and C1's stepped clock
@pytest.mark.timeout(300)
@pytest.mark.parametrize("bumps", [50])
def test_c4_real_workers_through_clock_steps_keep_every_lease_and_tick_once(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch, bumps: int,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    born_after = SYSTEM_TIME.timestamp()  # children older are not ours
    seed = rel_seed("C4 processes")
    rng = random.Random(seed)
    source = tmp_path / "long.py"
    source.write_text(C4_FLOW)
    monkeypatch.setattr(sys, "path", list(sys.path))
    clock, offset = tmp_path / "clock.json", 0.0
    write_clock(clock, offset)
    registered = SYSTEM_TIME.timestamp()
    [flow] = register_file(db, source, registered_at=registered).values()
    log = tmp_path / "workers.log"
    names = {"a", "b"}
    args = ("--concurrency", "2", "--poll", "0.2", "--grace", "10")
    processes = [start_worker(db, tmp_path, n, *args, env=clock_env(clock))
                 for n in sorted(names)]  # fmt: skip
    steps = [-3600.0, 3600.0, *(rng.uniform(-288, 288) for _ in range(bumps))]
    held: dict[str, tuple[str, str]] = {}
    with keep_artifacts_on_failure("C4", seed, [db, log, clock]):
        try:
            wait_until(
                lambda: len(query(db, "SELECT id FROM scheduled_runs"
                                  " WHERE status = 'Running'")) >= 2,
                30, "two runs in flight",
            )  # fmt: skip
            for jump in steps:
                before = query(
                    db, "SELECT id, lease_token, claimed_by FROM scheduled_runs"
                    " WHERE status = 'Running'"
                )  # fmt: skip
                held.update({i: (token, owner) for i, token, owner in before})
                offset += jump
                write_clock(clock, offset)
                wait_until(lambda: clock_followed(db, names, offset), 15,  # noqa: B023
                           f"workers on the clock stepped by {jump:+.0f} s")  # fmt: skip
                for run_id, token, owner in query(
                    db, "SELECT id, lease_token, claimed_by FROM scheduled_runs"
                    " WHERE status = 'Running'"
                ):  # fmt: skip
                    if run_id in held:  # still running: still its first owner's
                        assert (token, owner) == held[run_id], (jump, run_id)
            # One hour ahead: the missed ticks follow the (skip) policy.
            cursor = query(db, "SELECT MAX(scheduled_for) FROM scheduled_runs")[0][0]
            offset += 3600
            write_clock(clock, offset)
            wait_until(lambda: clock_followed(db, names, offset), 15, "+1 h")
            final = SYSTEM_TIME.timestamp() + offset
            wait_until(
                lambda: query(db, "SELECT MAX(scheduled_for) FROM scheduled_runs")[0][0]
                >= final - 3, 15, "the ticks of the hour ahead",
            )  # fmt: skip
            took = terminate_and_time(processes)
            codes = [p.returncode for p in processes]
        finally:
            kill_groups(processes)
        text = log.read_text(errors="replace")
        assert codes == [0, 0], text[-3000:]
        assert max(took) <= 10 + 5, took  # a 4 s run may still be going: --grace 10

        runs = read(db, lambda s: s.list_scheduled_runs())
        started = executions(tmp_path / "executions.log")
        assert duplicate_ticks(db) == []
        assert all(r.crashes == 0 for r in runs)  # no lease was ever taken over
        newest = max(r.scheduled_for for r in runs)
        assert [r.scheduled_for for r in runs] == ticks_between(
            flow, registered, newest
        )  # every tick once: run, or Skipped by the (skip) policy
        ran = [r for r in runs if r.status == "Finished"]
        assert all(len(started[r.id]) == 1 for r in ran)  # each executed once
        assert set(started) == {r.id for r in ran}
        skipped = Counter(r.status for r in runs)["Skipped"]
        # The hour ahead: one run for the newest tick of the first pass after the
        # step (and the few ticks since), every older one Skipped.
        later = [r for r in runs if r.scheduled_for > cursor]
        assert len(later) >= (final - cursor) // 3 - 2 > 0
        assert sum(r.status == "Finished" for r in later) <= 3
        assert all(r.message == "missed tick skipped by catchup policy 'skip'"
                   for r in later[:-3])  # fmt: skip
        assert lock_errors(text) == []
        assert leaked_processes([p.pid for p in processes], born_after) == []
        with capsys.disabled():
            print(f"\nC4 seed {seed}: steps -1h, +1h, {bumps} bumps, +1h; "
                  f"{len(held)} leases held across steps, 0 taken over, "
                  f"{len(ran)} runs once each, {skipped} missed ticks Skipped")  # fmt: skip


# C5 ------------------------------------------------------------------------------------
DST_GROUPS = [
    ("Europe/Berlin", "2026-03-29 01:00", ["V1", "V2", "V3"]),
    ("Europe/Berlin", "2026-10-25 01:00", ["V4", "V5", "V10"]),
    ("America/New_York", "2026-03-08 07:00", ["V6", "V7"]),
    ("America/New_York", "2026-11-01 06:00", ["V8", "V9"]),
    ("Europe/Berlin", "2027-03-28 01:00", ["V11-V1"]),
    ("Europe/Berlin", "2027-10-31 01:00", ["V11-V4", "V11-V5"]),
    ("America/New_York", "2027-03-14 07:00", ["V11-V6", "V11-V7"]),
    ("America/New_York", "2027-11-07 06:00", ["V11-V8"]),
    ("Australia/Lord_Howe", "2026-10-03 15:30",
     ["LH-gap-fixed", "LH-gap-wall", "LH-after-gap"]),
    ("Australia/Lord_Howe", "2026-04-04 15:00", ["LH-overlap-fixed", "LH-overlap-wall"]),
    ("America/Santiago", "2026-09-06 04:00",
     ["SCL-midnight-gap", "SCL-hour-0-gone", "SCL-gap-wall"]),
    ("America/Santiago", "2026-04-05 03:00",
     ["SCL-overlap-fixed", "SCL-midnight-after-fallback", "SCL-overlap-wall"]),
]  # fmt: skip
"""Each transition (UTC) of the vectors, with the vectors around it."""

VECTORS = {row[0]: row[1:] for row in CRON_VECTORS}
V10_ANCHOR = pendulum.datetime(2026, 10, 24, 9, tz="Europe/Berlin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def gap_walls(walls: Sequence[datetime]) -> set[datetime]:
    """The wall minutes the clocks jumped over between consecutive minutes."""
    skipped = set()
    for before, after in itertools.pairwise(walls):
        moment = before + MINUTE
        while moment < after:
            skipped.add(moment)
            moment += MINUTE
    return skipped


def oracle(expr: str, zone: str, after: datetime, until: datetime) -> list[datetime]:
    """Brute force, minute by minute (independent of durable.schedules): wall-clock
    entries fire at every real minute whose wall time matches; fixed-time ones at
    the first real minute whose wall time reaches each matching wall time."""
    minute, hour, *days = expr.split()
    assert days == ["*", "*", "*"], expr  # the oracle matches minutes and hours only
    sim = CronSim(expr, datetime(2026, 1, 1))  # noqa: DTZ001 (its parsed fields only)
    fixed = not (minute.startswith("*") or hour.startswith("*"))
    scan = after - timedelta(hours=6)  # first occurrences before the window count
    count = int((until - scan) / MINUTE)
    instants = [scan + MINUTE * k for k in range(1, count + 1)]
    walls = [i.astimezone(ZoneInfo(zone)).replace(tzinfo=None) for i in instants]

    def matches(wall: datetime) -> bool:
        return wall.minute in sim.minutes and wall.hour in sim.hours

    if fixed:
        fires = set()
        for target in sorted(w for w in {*walls, *gap_walls(walls)} if matches(w)):
            fires.add(next(i for i, w in zip(instants, walls, strict=True)
                           if w >= target))  # fmt: skip
    else:
        fires = {i for i, w in zip(instants, walls, strict=True) if matches(w)}
    return sorted(f for f in fires if after < f <= until)


def dst_flow(vector: str) -> Flow:
    if vector == "V10":
        schedule = IntervalSchedule(V10_ANCHOR, timedelta(hours=24))
    else:
        zone, expr, _, _ = VECTORS[vector]
        schedule = CronSchedule(expr, timezone=zone)
    with Flow(vector, schedule=schedule, catchup="all") as flow:
        noop()
    return flow


@pytest.mark.reliability
def test_c5_the_groups_hold_every_vector() -> None:
    grouped = [v for _, _, vectors in DST_GROUPS for v in vectors]
    assert sorted(grouped) == sorted([*VECTORS, "V10"])


@pytest.mark.reliability
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("zone", "transition", "vectors"),
    [pytest.param(*group, id=f"{group[0]}-{group[1][:10]}") for group in DST_GROUPS],
)
async def test_c5_a_worker_stepped_minute_by_minute_creates_exactly_the_vector(
    db: Path, zone: str, transition: str, vectors: list[str]
) -> None:
    """1,440 one-minute steps through the 24 h around the transition, a scheduling
    pass after each: the runs created are the vector's fires and, over the whole
    window, exactly the brute-force oracle's, none missing, none extra."""
    start, end = (utc(transition) + timedelta(hours=h) for h in (-12, 12))
    time = FakeTime(pendulum.instance(start))
    store = await Store.open(db)
    try:
        for vector in vectors:
            await register(store, dst_flow(vector), time.timestamp())
        worker = Worker(store, time, InProcessLauncher(store, time), name="dst")
        for _ in range(24 * 60):
            time.advance(MINUTE)
            await worker.create_due_runs()
        rows = await store.list_scheduled_runs()
    finally:
        await store.close()
    assert time.now() == end
    assert {r.status for r in rows} <= {"Scheduled"}
    checked = 0
    for vector in vectors:
        created = [datetime.fromtimestamp(r.scheduled_for, UTC)
                   for r in rows if r.flow_name == vector]  # fmt: skip
        expected: list[datetime]
        if vector == "V10":
            fires = [V10_ANCHOR + timedelta(hours=24) * k for k in range(1, 4)]
            expected = [f for f in fires if start < f <= end]
            listed = [utc("2026-10-25 07:00")]
        else:
            vector_zone, expr, local_start, fires_text = VECTORS[vector]
            expected = oracle(expr, vector_zone, start, end)
            listed = [utc(text) for text in fires_text]
            first = datetime.fromisoformat(local_start).replace(
                tzinfo=ZoneInfo(vector_zone)
            )
            # The vector, exactly: between its start and its last listed fire, the
            # runs created in the window are the listed fires in the window.
            assert [c for c in created if first < c <= listed[-1]] == [
                f for f in listed if start < f <= end
            ], vector
        assert created == expected, vector
        checked += sum(start < f <= end for f in listed)
    assert checked  # (SCL-hour-0-gone lists none inside: its point is that hour 0
    # of 2026-09-06 does not exist, so nothing fires then; the oracle checks that)


# C6 ------------------------------------------------------------------------------------
@pytest.mark.reliability
@pytest.mark.anyio
async def test_c6_durable_allows_overlap_one_run_per_tick(
    store: Store, fake_time: FakeTime
) -> None:
    """No overlap policy is built: a tick starts its run even while earlier runs go
    on (RELIABILITY's ALLOW). A 1-min schedule whose runs last 150 s, 10 fake minutes:
    10 runs started, one per tick on time, up to 3 at once."""
    with Flow(
        "overlapping", schedule=IntervalSchedule(fake_time.now(), MINUTE)
    ) as flow:
        noop()
    await register(store, flow, fake_time.timestamp())
    launcher = HoldingLauncher()
    worker = Worker(store, fake_time, launcher, name="w", catchup="all")
    started: dict[str, float] = {}
    most = 0
    for _ in range(10):
        fake_time.advance(MINUTE)
        for run_id, handle in launcher.handles.items():
            if (
                handle.returncode is None
                and fake_time.timestamp() - started[run_id] >= 150
            ):  # its 150 s are up: it runs to its end now
                await run_scheduled(store, run_id, fake_time)
                handle.end(0)
        await worker.run_once()
        for run_id in launcher.handles:
            started.setdefault(run_id, fake_time.timestamp())
        most = max(most, sum(h.returncode is None for h in launcher.handles.values()))
    runs = await store.list_scheduled_runs()
    assert len(runs) == len(started) == 10
    assert all(started[r.id] == r.scheduled_for for r in runs)  # each on its tick
    assert most == 3
    assert {(r.status, r.crashes) for r in runs[:7]} == {("Finished", 0)}


# C7 ------------------------------------------------------------------------------------
@pytest.mark.reliability
@pytest.mark.anyio
async def test_c7_an_invalid_schedule_row_is_reported_once_and_others_tick_on_time(
    store: Store, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("good", "broken"):
        with Flow(name, schedule=IntervalSchedule(fake_time.now(), MINUTE)) as flow:
            noop()
        await register(store, flow, fake_time.timestamp())
    corrupt_schedule(store.path, "broken")
    worker = Worker(store, fake_time, InProcessLauncher(store, fake_time), name="w")
    caplog.set_level(logging.ERROR, logger="durable.worker.loop")
    for _ in range(10):
        fake_time.advance(MINUTE)
        await worker.run_once()
    runs = await store.list_scheduled_runs()
    assert [r.flow_name for r in runs] == ["good"] * 10
    assert all(r.claimed_at == r.scheduled_for for r in runs)  # on time, every one
    assert {(r.status, r.message) for r in runs} == {("Finished", "Success")}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "'broken' (version 1)" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert str(errors[0].exc_info[1]) == "Bad minute"  # cronsim's, on "61 * * * *"
    assert list(worker.broken) == [("broken", 1)]
