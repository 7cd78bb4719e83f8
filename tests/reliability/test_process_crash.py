"""RELIABILITY.md 5.1, group A: process crashes with a real kill -9.

- A1 `test_a1_random_kills`: the 500-task flow (`flows/campaign.py:many`, 4 bodies at a
  time) killed with SIGKILL of its process group at U(0, 1.5) s after each (re)start,
  25 kills (PR) / 200 (nightly), resumed with `durable resume`. Mapping: a 500-task run
  takes ~2.5 s, so it finishes after a few kills; the kills then go on over the next
  run of a sequence (ids `a1-<seed>-<k>`), each run checked against every criterion.
- A2 `test_a2_*`: the named crash points (DURABLE_CRASH_AT) that a flow run or a worker
  reaches, n = 1 (PR) and 10, 100 (nightly), with exact re-execution counts:
  `before_result_commit` (the dead batch's tasks run exactly once more, nothing else),
  `after_result_commit_before_ack` (0 re-executions of committed results, ACKed or not),
  `mid_migration` (user_version and tables unchanged, the rerun migrates and keeps the
  old rows; nightly: each step of a new database's 7), `after_claim_commit` (the claimed
  run is recovered as a crash and runs exactly once: durable claims whole runs, so
  RELIABILITY's "exactly 1 extra execution" of a claimed task is 0 executions lost
  here), `in_finally_of_worker_shutdown` (nothing lost or run twice). Not here:
  `after_tick_insert_before_cursor` and `after_checkpoint_start` (groups C/D).
- A3 `test_a3_zombie_run_is_fenced`: five run processes frozen past their lease, taken
  over, then thawed: their writes are refused (see a3_round for the mapping).
- A4 `test_a4_poison_pill`: a task that SIGKILLs / segfaults its run process, under
  `durable worker`: Crashed after the crash cap.
- A5 `test_a5_graceful_stop`: SIGTERM / SIGINT (once, twice) to a worker mid-task.
- A6 `test_a6_big_result_commit_killed`: kill -9 while a 50 MB result commits (inline in
  its row; nightly also as a result file).

Already proved elsewhere, not repeated here: the kill -9 prefix property on a 50-task chain
(tests/test_crash_resume.py), crash-cap arithmetic with an in-process launcher
(tests/worker/test_claims.py), reclaiming a dead owner's runs after a worker restart
(tests/worker/test_restart_resume.py), the fence refusing a stale writer in-process
(tests/worker/test_operations.py).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from durable.liveness import Liveness, liveness
from durable.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from durable.timesource import SYSTEM_TIME
from tests.reliability.harness import (
    MANY_SLUGS,
    Campaign,
    Execution,
    expected_many,
    flow_run_state,
    freeze,
    group_pids,
    kill9,
    pause,
    query,
    read_acks,
    read_results,
    register,
    scheduled_run,
    start_worker,
    thaw,
    trigger,
    wait_until,
)
from tests.reliability.invariants import check_invariants

KILL_DELAY = (0.0, 1.5)
"""Seconds after a (re)start at which the kill lands: U(0, 1.5)."""
FIRST_PROGRESS_P95 = 2.0
"""Seconds from a restart to its first task body, 95th percentile."""
IN_FLIGHT_BOUND = 4
"""RELIABILITY A1: total re-executions <= kills x 4 (4 task bodies at once)."""


@dataclass
class Kills:
    """What the kills of one flow run lost, and what restarts took to make progress."""

    kills: int = 0
    lost: list[int] = field(default_factory=list)
    """Per kill: task bodies started by the killed process with no result committed."""
    first_progress: list[float] = field(default_factory=list)
    """Seconds from a start to its first task body (starts that got that far)."""


def starts_by(executions: list[Execution], pid: int) -> set[str]:
    return {e.slug for e in executions if e.pid == pid and e.event == "start"}


def committed(db: Path, run_id: str) -> set[str]:
    """Slugs whose result has committed (none if the schema has not committed yet)."""
    if not query(db, "SELECT 1 FROM sqlite_master WHERE name = 'results'"):
        return set()
    return {
        slug
        for (slug,) in query(
            db,
            "SELECT t.task_slug FROM task_runs t JOIN results r ON r.task_run_id = t.id"
            " WHERE t.flow_run_id = ?",
            run_id,
        )
    }


def first_start_after(campaign: Campaign, pid: int, offset: int) -> bool:
    """Whether process `pid` has logged a task body start past byte `offset`."""
    if not campaign.side_log.exists():
        return False
    with campaign.side_log.open("rb") as f:
        f.seek(offset)
        return any(
            line.startswith(b"start ") and line.split()[-1] == str(pid).encode()
            for line in f.read().splitlines()
        )


def side_offset(campaign: Campaign) -> int:
    return campaign.side_log.stat().st_size if campaign.side_log.exists() else 0


def run_once_killed(
    campaign: Campaign, delay: float, record: Kills
) -> subprocess.Popen[bytes] | None:
    """Start (or resume) the run, kill it after `delay` s; None if it finished first."""
    offset = side_offset(campaign)
    started = time.monotonic()
    process = campaign.start()
    progressed = False
    while time.monotonic() - started < delay and process.poll() is None:
        if not progressed and first_start_after(campaign, process.pid, offset):
            record.first_progress.append(time.monotonic() - started)
            progressed = True
        pause(0.01)
    if process.poll() is not None:
        assert process.returncode == 0, (
            f"run exited {process.returncode}\n{campaign.tail()}"
        )
        return None
    kill9(process)
    record.kills += 1
    problems = check_invariants(campaign.db)
    assert not problems, f"after kill {record.kills}: {problems}\n{campaign.tail()}"
    lost = starts_by(campaign.executions(), process.pid) - committed(
        campaign.db, campaign.run_id
    )
    record.lost.append(len(lost))
    return process


def finish(campaign: Campaign, record: Kills) -> None:
    """Resume the run to its end (exit 0), timing its first progress."""
    offset, started = side_offset(campaign), time.monotonic()
    process = campaign.start()
    while process.poll() is None:
        if first_start_after(campaign, process.pid, offset):
            record.first_progress.append(time.monotonic() - started)
            break
        pause(0.01)
    assert process.wait(timeout=120) == 0, f"final resume failed\n{campaign.tail()}"


def check_finished_run(campaign: Campaign, record: Kills) -> None:
    """Every A1 pass criterion on one flow run that ended after `record.kills` kills."""
    db, run_id, where = campaign.db, campaign.run_id, campaign.tail()
    assert flow_run_state(db, run_id) == "Success", where
    assert read_results(db, run_id) == expected_many(), f"wrong results\n{where}"
    problems = check_invariants(db, settled=True)
    assert not problems, f"{problems}\n{where}"
    successes = Counter(
        slug
        for (slug,) in query(
            db,
            "SELECT t.task_slug FROM states s JOIN task_runs t ON t.id = s.task_run_id"
            " WHERE s.flow_run_id = ? AND s.name = 'Success'",
            run_id,
        )
    )
    assert set(successes) == set(MANY_SLUGS), where
    assert max(successes.values()) == 1, f"a result recorded twice: {where}"
    ids = dict(query(db, "SELECT id, task_slug FROM task_runs WHERE flow_run_id = ?",
                     run_id))  # fmt: skip
    acked = {a.id for a in read_acks(campaign.acks) if a.kind == "result"} & set(ids)
    states = dict(query(db, "SELECT id, state FROM task_runs WHERE flow_run_id = ?",
                        run_id))  # fmt: skip
    lost_acks = [i for i in acked if states.get(i) != "Success"]
    assert not lost_acks, f"ACKed results lost: {lost_acks[:5]}\n{where}"
    executions = [e for e in campaign.executions() if e.run == run_id]
    per_process = Counter((e.slug, e.pid) for e in executions if e.event == "start")
    assert max(per_process.values()) == 1, f"a body ran twice in one process\n{where}"
    starts = Counter(e.slug for e in executions if e.event == "start")
    assert set(starts) == set(MANY_SLUGS), where
    extra = sum(starts.values()) - len(MANY_SLUGS)
    # Each re-execution is a body that a killed process had started and not committed.
    assert extra == sum(record.lost), (extra, record.lost)


def random_kills(tmp_path: Path, seed: int, kills: int) -> None:
    rng = random.Random(seed)
    total = Kills()
    sequence = 0
    while total.kills < kills:
        campaign = Campaign(tmp_path / f"run{sequence}", f"a1-{seed}-{sequence}")
        record = Kills()
        while total.kills + record.kills < kills:
            if run_once_killed(campaign, rng.uniform(*KILL_DELAY), record) is None:
                break
        else:
            finish(campaign, record)
        check_finished_run(campaign, record)
        total.kills += record.kills
        total.lost += record.lost
        total.first_progress += record.first_progress
        sequence += 1
    # RELIABILITY's bound is on the total: one kill may lose more than the 4 bodies it
    # was running (those that ended in the last 50 ms have their checkpoints in flight:
    # group commit, docs/durability.md G5), most lose fewer.
    assert sum(total.lost) <= total.kills * IN_FLIGHT_BOUND, (
        f"{sum(total.lost)} re-executions after {total.kills} kills: {total.lost}"
    )
    samples = sorted(total.first_progress)
    assert samples, "no restart got as far as a task body"
    p95 = samples[max(0, math.ceil(0.95 * len(samples)) - 1)]  # nearest rank
    print(
        f"A1 seed={seed}: {total.kills} kills over {sequence} runs; re-executions "
        f"{sum(total.lost)} (bound {total.kills * IN_FLIGHT_BOUND}); lost per kill "
        f"max {max(total.lost)} mean {statistics.mean(total.lost):.2f}; restart to "
        f"first progress p50 {statistics.median(total.first_progress):.2f} s p95 "
        f"{p95:.2f} s over {len(total.first_progress)} restarts"
    )
    assert p95 <= FIRST_PROGRESS_P95, total.first_progress


@pytest.mark.reliability
@pytest.mark.timeout(240)
def test_a1_random_kills(tmp_path: Path, rel_seed: int) -> None:
    random_kills(tmp_path, rel_seed, kills=25)


@pytest.mark.nightly
@pytest.mark.timeout(900)
def test_a1_random_kills_nightly(tmp_path: Path, rel_seed: int) -> None:
    random_kills(tmp_path, rel_seed, kills=200)


# A2: named crash points --------------------------------------------------------------
A2_SCALE = {"REL_TASK_SCALE": "0.3"}
"""A2 counts executions exactly, whatever the timing: shorter bodies keep it quick."""


def crash_then_resume(
    campaign: Campaign, point: str, version: int = SCHEMA_VERSION
) -> int:
    """Run until the crash point kills the run; return the killed process's pid."""
    process = campaign.start(crash_at=point)
    code = process.wait(timeout=120)
    assert code == -9, f"{point}: exit {code}, expected SIGKILL\n{campaign.tail()}"
    problems = check_invariants(campaign.db, expected_version=version)
    assert not problems, f"after {point}: {problems}\n{campaign.tail()}"
    return process.pid


def finish_and_check(campaign: Campaign) -> Counter[str]:
    """Resume to the end, check the run; return the starts per slug."""
    process = campaign.start()
    assert process.wait(timeout=120) == 0, campaign.tail()
    assert flow_run_state(campaign.db, campaign.run_id) == "Success"
    assert read_results(campaign.db, campaign.run_id) == expected_many()
    problems = check_invariants(campaign.db, settled=True)
    assert not problems, f"{problems}\n{campaign.tail()}"
    return Counter(e.slug for e in campaign.executions() if e.event == "start")


def result_acks(campaign: Campaign) -> set[str]:
    return {a.id for a in read_acks(campaign.acks) if a.kind == "result"}


def slugs_of(campaign: Campaign, ids: set[str]) -> set[str]:
    rows = query(campaign.db, "SELECT id, task_slug FROM task_runs")
    return {slug for task_run_id, slug in rows if task_run_id in ids}


def a2_before_result_commit(tmp_path: Path, n: int) -> None:
    campaign = Campaign(tmp_path, f"a2-brc-{n}", env=A2_SCALE)
    killed = crash_then_resume(campaign, f"before_result_commit:{n}")
    done = committed(campaign.db, campaign.run_id)
    ended = {e.slug for e in campaign.executions() if e.event == "end"}
    # The batch that died in its transaction: bodies that ended, results not committed.
    batch = ended - done
    assert batch, "the crashed batch held no result"
    assert slugs_of(campaign, result_acks(campaign)) <= done, "an ACKed result is gone"
    started = starts_by(campaign.executions(), killed)
    starts = finish_and_check(campaign)
    for slug in MANY_SLUGS:
        expected = 2 if slug in started - done else 1
        assert starts[slug] == expected, (slug, starts[slug], expected)
    print(f"A2 before_result_commit:{n}: batch of {len(batch)} lost, each run once "
          f"more; {len(started - done)} re-executions in all")  # fmt: skip


def a2_after_result_commit_before_ack(tmp_path: Path, n: int) -> None:
    campaign = Campaign(tmp_path, f"a2-arc-{n}", env=A2_SCALE)
    killed = crash_then_resume(campaign, f"after_result_commit_before_ack:{n}")
    done = committed(campaign.db, campaign.run_id)
    acked = slugs_of(campaign, result_acks(campaign))
    unacked = done - acked
    assert acked <= done
    assert unacked, "the crashed batch was acknowledged, or committed nothing"
    started = starts_by(campaign.executions(), killed)
    starts = finish_and_check(campaign)
    for slug in done:  # committed (ACKed or not): never run again
        assert starts[slug] == 1, (slug, starts[slug])
    for slug in set(MANY_SLUGS) - done:
        assert starts[slug] == (2 if slug in started else 1), slug
    print(f"A2 after_result_commit_before_ack:{n}: {len(unacked)} committed unACKed "
          "results, 0 re-executed")  # fmt: skip


@pytest.mark.reliability
def test_a2_before_result_commit(tmp_path: Path) -> None:
    a2_before_result_commit(tmp_path, 1)


@pytest.mark.reliability
def test_a2_after_result_commit_before_ack(tmp_path: Path) -> None:
    a2_after_result_commit_before_ack(tmp_path, 1)


@pytest.mark.nightly
@pytest.mark.parametrize("n", [10, 100])
def test_a2_result_commit_points_nightly(tmp_path: Path, n: int) -> None:
    a2_before_result_commit(tmp_path / "before", n)
    a2_after_result_commit_before_ack(tmp_path / "after", n)


def old_database(db: Path, version: int) -> None:
    """Create `db` at schema `version` (migrations 1..version) with one finished run."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN")
        for migration in MIGRATIONS[:version]:
            for statement in migration.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(
            "INSERT INTO flows (id, name, version, fingerprint, created_at)"
            " VALUES (1, 'old', 1, 'f', 0)"
        )
        conn.execute(
            "INSERT INTO flow_runs (id, flow_id, flow_name, fingerprint, state,"
            " parameters_serializer, created_at, updated_at)"
            " VALUES ('old-run', 1, 'old', 'f', 'Success', 'json', 0, 0)"
        )
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={version}")
        conn.execute("COMMIT")


def schema_of(db: Path) -> tuple[int, set[str]]:
    tables = {name for (name,) in query(db, "SELECT name FROM sqlite_master")}
    (version,) = query(db, "PRAGMA user_version")[0]
    return int(version), tables


def a2_mid_migration(tmp_path: Path, start_version: int, n: int) -> None:
    """Crash at the n-th migration step of a database at `start_version`; the crash
    leaves the old schema untouched and the rerun migrates it, keeping its rows."""
    campaign = Campaign(tmp_path, f"a2-mig-{start_version}-{n}", env=A2_SCALE)
    if start_version:
        old_database(campaign.db, start_version)
    before = schema_of(campaign.db) if start_version else (0, set())
    crash_then_resume(campaign, f"mid_migration:{n}", version=start_version)
    assert schema_of(campaign.db) == before, "a crashed migration changed the schema"
    assert not campaign.executions(), "a task ran on a half-migrated database"
    starts = finish_and_check(campaign)
    assert set(starts.values()) == {1}, "a task ran more than once"
    assert schema_of(campaign.db)[0] == SCHEMA_VERSION
    if start_version:
        assert query(
            campaign.db, "SELECT state FROM flow_runs WHERE id = 'old-run'"
        ) == [("Success",)], "the migration lost the old run"


@pytest.mark.reliability
def test_a2_mid_migration(tmp_path: Path) -> None:
    """Schema V(n-1) -> V(n): the one step's transaction dies; nothing changed."""
    a2_mid_migration(tmp_path, SCHEMA_VERSION - 1, 1)


@pytest.mark.nightly
@pytest.mark.parametrize("n", range(1, SCHEMA_VERSION + 1))
def test_a2_mid_migration_fresh_nightly(tmp_path: Path, n: int) -> None:
    """A new database: a crash at each of the migration steps leaves it empty."""
    a2_mid_migration(tmp_path, 0, n)


@pytest.mark.nightly
def test_a2_mid_migration_from_v1_nightly(tmp_path: Path) -> None:
    """The longest upgrade (V1 -> latest), killed at its last step."""
    a2_mid_migration(tmp_path, 1, SCHEMA_VERSION - 1)


# A2 through `durable worker` -----------------------------------------------------------
def worker_campaign(tmp_path: Path) -> Campaign:
    campaign = Campaign(tmp_path, "", env=A2_SCALE)
    register(campaign.db)
    return campaign


def worker(
    campaign: Campaign, *args: str, crash_at: str | None = None
) -> subprocess.Popen[bytes]:
    return start_worker(
        campaign.db, *args, log=campaign.log, env=campaign.env,
        side_log=campaign.side_log, ack=campaign.acks, crash_at=crash_at,
    )  # fmt: skip


def check_runs_once(
    campaign: Campaign, run_ids: list[str], slugs: tuple[str, ...]
) -> None:
    """Each run Finished with Success, each of its task bodies run exactly once."""
    problems = check_invariants(campaign.db, settled=True)
    assert not problems, f"{problems}\n{campaign.tail()}"
    starts = Counter(
        (e.run, e.slug) for e in campaign.executions() if e.event == "start"
    )
    for run_id in run_ids:
        row = scheduled_run(campaign.db, run_id)
        assert row["status"] == "Finished", (row, campaign.tail())
        assert flow_run_state(campaign.db, run_id) == "Success"
        counts = [starts[run_id, slug] for slug in slugs]
        assert counts == [1] * len(slugs), (run_id, Counter(counts))


def a2_after_claim_commit(tmp_path: Path, n: int) -> None:
    """The worker dies right after its n-th claim commits: the claimed run is not lost
    (the next worker sees the claim's owner dead, counts a crash and runs it) and
    runs exactly once; the runs claimed before it ran once too."""
    campaign = worker_campaign(tmp_path)
    flow, slugs = ("many", MANY_SLUGS) if n == 1 else ("slow", ("s1", "s2", "s3"))
    params = {} if n == 1 else {"seconds": 0.0}
    run_ids = [trigger(campaign.db, flow, params) for _ in range(n)]
    # Concurrency 1: runs 1..n-1 have ended (and are settled) when claim n happens.
    first = worker(campaign, "--burst", "--concurrency", "1",
                   crash_at=f"after_claim_commit:{n}")  # fmt: skip
    assert first.wait(timeout=300) == -9, campaign.tail()
    claims = [a.id for a in read_acks(campaign.acks) if a.kind == "claim"]
    assert claims[-1:] != [run_ids[n - 1]], "the fatal claim was acknowledged"
    claimed = scheduled_run(campaign.db, run_ids[n - 1])
    assert claimed["status"] == "Running", claimed
    assert claimed["launches"] == 0, claimed
    problems = check_invariants(campaign.db)
    assert not problems, problems
    second = worker(campaign, "--burst")
    assert second.wait(timeout=300) == 0, campaign.tail()
    check_runs_once(campaign, run_ids, slugs)
    final = scheduled_run(campaign.db, run_ids[n - 1])
    assert (final["crashes"], final["launches"]) == (1, 1), final


@pytest.mark.reliability
def test_a2_after_claim_commit(tmp_path: Path) -> None:
    a2_after_claim_commit(tmp_path, 1)


@pytest.mark.nightly
@pytest.mark.timeout(300)
@pytest.mark.parametrize("n", [10, 100])
def test_a2_after_claim_commit_nightly(tmp_path: Path, n: int) -> None:
    a2_after_claim_commit(tmp_path, n)


@pytest.mark.reliability
def test_a2_in_finally_of_worker_shutdown(tmp_path: Path) -> None:
    """SIGTERM mid-run with a long grace: the worker lets the run finish, settles it,
    then dies before recording that it stopped. Nothing is lost or run twice; the
    worker's row still says it runs (`durable workers` tells it apart by its pid)."""
    campaign = worker_campaign(tmp_path)
    run_id = trigger(campaign.db, "many")
    process = worker(campaign, "--grace", "60",
                     crash_at="in_finally_of_worker_shutdown:1")  # fmt: skip
    wait_until(lambda: len(campaign.executions()) >= 20, 60, "the run to start")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == -9, campaign.tail()
    check_runs_once(campaign, [run_id], MANY_SLUGS)
    (stopped,) = query(campaign.db, "SELECT stopped_at FROM workers")[0]
    assert stopped is None, "the worker recorded its stop before the crash point"
    again = worker(campaign, "--burst")
    assert again.wait(timeout=60) == 0, campaign.tail()
    check_runs_once(campaign, [run_id], MANY_SLUGS)


# A3: fencing a zombie ------------------------------------------------------------------
A3_LEASE = 1.0
"""Seconds: the workers' lease in A3 (`durable worker --lease-seconds`)."""
A3_TASK = 0.4
"""Seconds each task of the `slow` flow lingers."""
FOREIGN_HOST = "elsewhere.invalid"
FENCED = "checkpoint write failed: lease lost"
"""What a run process logs when the fence refuses its write (durable.store.writer)."""
ADOPTION_REFUSED = "(lease lost); not running it"
"""What a just-launched run process says when its claim is gone before it starts."""


def a3_round(tmp_path: Path, rng: random.Random, runs: int) -> None:
    """Freeze worker A (and its `runs` run processes) mid-task; check that worker B
    leaves a live frozen owner alone past its lease, then takes the runs over once
    their owner cannot be checked from here; thaw A: its writes are refused.

    Mapping: durable takes a run from a live owner on this machine never (pid and
    start time prove it runs: a frozen process is alive), so a SIGSTOPped local
    process is not a zombie to durable. An owner whose liveness cannot be checked (on
    another host) loses its run once its lease expires: the test makes A's run
    processes such owners by rewriting the claim's start token to another host while
    A is frozen, which is the state a claim of a worker on another machine is in.
    """
    campaign = Campaign(tmp_path, "")
    register(campaign.db)
    run_ids = [trigger(campaign.db, "slow", {"seconds": A3_TASK}) for _ in range(runs)]
    lease = ["--lease-seconds", str(A3_LEASE)]
    a = worker(campaign, "--concurrency", str(runs), "--name", "A", *lease)
    wait_until(lambda: len({e.run for e in campaign.executions()}) == runs, 60,
               "every run to start a task")  # fmt: skip
    pause(rng.uniform(0.0, 2 * A3_TASK))
    # Not inside a write transaction: that would stall B's every write, lease or not.
    freeze(a, unlocked=campaign.db)
    frozen_at = SYSTEM_TIME.timestamp()
    frozen = {run_id: scheduled_run(campaign.db, run_id) for run_id in run_ids}
    # Zombies-to-be: claimed by A, owned by a live (frozen) process, with work left.
    zombies = [
        r for r in run_ids
        if frozen[r]["status"] == "Running"
        and liveness(frozen[r]["pid"], frozen[r]["pid_started"]) is Liveness.ALIVE
        and flow_run_state(campaign.db, r) not in ("Success", "Failed")
    ]  # fmt: skip
    b = worker(campaign, "--concurrency", str(runs), "--name", "B", *lease)

    def heartbeat_of_b() -> float:
        rows = query(campaign.db, "SELECT heartbeat_at FROM workers WHERE name = 'B'")
        return float(rows[0][0]) if rows else 0.0

    # B's passes (each heartbeats, then looks at every claim) went on past A's lease.
    wait_until(lambda: heartbeat_of_b() >= frozen_at + A3_LEASE + 0.5, 30,
               "worker B to look at the runs after their leases ran out")  # fmt: skip
    for run_id in zombies:
        row = scheduled_run(campaign.db, run_id)
        assert row["lease_token"] == frozen[run_id]["lease_token"], (
            f"B took {run_id} from a live (frozen) owner on this machine"
        )
    with closing(sqlite3.connect(campaign.db, timeout=30)) as conn:
        conn.execute(
            "UPDATE scheduled_runs SET pid_started = ? || substr(pid_started,"
            " instr(pid_started, '|')) WHERE claimed_by = 'A' AND status = 'Running'",
            (FOREIGN_HOST,),
        )
        conn.commit()
    wait_until(
        lambda: all(
            scheduled_run(campaign.db, r)["status"] == "Finished" for r in run_ids
        ),
        60, "B to take every run over and finish it",
    )  # fmt: skip
    thawed_at = SYSTEM_TIME.timestamp()
    thaw(a)
    # A, stopping, waits for its run processes: each zombie goes on, has its next
    # write refused by the fence, and exits.
    for process in (a, b):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, campaign.tail()
    log = campaign.log.read_text()
    fenced = log.count(FENCED) + log.count(ADOPTION_REFUSED)
    assert fenced >= len(zombies), f"{fenced} of {len(zombies)} zombies fenced\n{log}"
    check_zombie_outcome(campaign, run_ids, thawed_at)
    for run_id in zombies:  # taken over once each: one crash counted, by B
        assert scheduled_run(campaign.db, run_id)["crashes"] == 1, run_id
    print(f"A3: {len(zombies)} zombie run processes fenced ({fenced} refusals logged)")


def check_zombie_outcome(
    campaign: Campaign, run_ids: list[str], thawed_at: float
) -> None:
    """One Success and one result per task run; nothing written after the thaw."""
    db, where = campaign.db, campaign.tail()
    problems = check_invariants(db, settled=True)
    assert not problems, f"{problems}\n{where}"
    for run_id in run_ids:
        assert flow_run_state(db, run_id) == "Success", where
        assert scheduled_run(db, run_id)["claimed_by"] is None
        assert sorted(read_results(db, run_id)) == ["s1", "s2", "s3", "seconds"], where
        successes = query(db, "SELECT t.task_slug, COUNT(*) FROM states s JOIN task_runs"
                          " t ON t.id = s.task_run_id WHERE s.flow_run_id = ? AND"
                          " s.name = 'Success' GROUP BY 1", run_id)  # fmt: skip
        assert sorted(successes) == [("s1", 1), ("s2", 1), ("s3", 1), ("seconds", 1)]
        late = query(db, "SELECT COUNT(*) FROM states WHERE flow_run_id = ? AND"
                     " timestamp >= ?", run_id, thawed_at)  # fmt: skip
        assert late == [(0,)], f"the zombie of {run_id} wrote after the thaw\n{where}"


@pytest.mark.reliability
@pytest.mark.timeout(120)
def test_a3_zombie_run_is_fenced(tmp_path: Path, rel_seed: int) -> None:
    """Five zombie run processes at once (one frozen worker running five runs)."""
    a3_round(tmp_path, random.Random(rel_seed), runs=5)


@pytest.mark.nightly
@pytest.mark.timeout(600)
def test_a3_zombie_run_is_fenced_nightly(tmp_path: Path, rel_seed: int) -> None:
    """Twenty zombies: four rounds of five, each frozen at its own random moment."""
    rng = random.Random(rel_seed)
    for number in range(4):
        a3_round(tmp_path / f"round{number}", rng, runs=5)


# A4: poison pill -----------------------------------------------------------------------
MAX_CRASHES = 3
"""durable worker's crash cap (Worker.max_crashes): the 3rd crash marks a run Crashed."""


@pytest.mark.reliability
@pytest.mark.timeout(90)
def test_a4_poison_pill(tmp_path: Path) -> None:
    """A task that kills its own run process every time (SIGKILL, and in a second
    worker at the same time a segfault): the run is launched 3 times (each launch is
    one execution of the pill), then Crashed with its flow run Failed; the 99 other
    tasks succeeded; `durable worker --burst` ends (no endless relaunching) within
    60 s.

    Mapping: RELIABILITY's "max_crash_retries=3, exactly 4 executions" counts retries
    after the first; durable's cap counts crashes, the first included (3 in all).
    """
    started = time.monotonic()
    runs = []
    for how in ("kill", "segv"):
        campaign = Campaign(tmp_path / how, "")
        register(campaign.db)
        run_id = trigger(campaign.db, "poison", {"how": how})
        runs.append((campaign, run_id, worker(campaign, "--burst"), how))
    for campaign, run_id, process, how in runs:
        assert process.wait(timeout=60) == 0, campaign.tail()
        check_poisoned(campaign, run_id, how, time.monotonic() - started)


def check_poisoned(campaign: Campaign, run_id: str, how: str, elapsed: float) -> None:
    """The poison run's outcome (see test_a4_poison_pill)."""
    assert elapsed <= 60
    row = scheduled_run(campaign.db, run_id)
    assert row["status"] == "Crashed", row
    assert (row["crashes"], row["launches"]) == (MAX_CRASHES, MAX_CRASHES), row
    assert flow_run_state(campaign.db, run_id) == "Failed"
    executions = campaign.executions()
    starts = Counter(e.slug for e in executions if e.event == "start")
    assert starts.pop("p099") == MAX_CRASHES
    # The others ran once, or twice: the first launch loses the checkpoints still in
    # flight when the pill kills it (group commit); a relaunch commits each task run
    # before the next starts (CheckpointWriter.commit_eagerly), so it loses none.
    assert set(starts) == {f"q{i:03d}" for i in range(99)}
    assert max(starts.values()) <= 2
    launches = list(dict.fromkeys(e.pid for e in executions))
    assert len(launches) == MAX_CRASHES
    slug_of = dict(query(campaign.db, "SELECT id, task_slug FROM task_runs"))
    acked: list[set[str]] = []  # per launch: the results it acknowledged
    for ack in read_acks(campaign.acks):
        if ack.kind == "claim":
            acked.append(set())
        elif ack.kind == "result" and acked:
            acked[-1].add(slug_of[ack.id])
    for number, pid in enumerate(launches):
        earlier = set().union(*acked[:number])
        again = earlier & {e.slug for e in executions if e.pid == pid}
        assert not again, f"launch {number + 1} re-ran acknowledged {sorted(again)}"
    states = dict(query(campaign.db, "SELECT task_slug, state FROM task_runs WHERE"
                        " flow_run_id = ?", run_id))  # fmt: skip
    assert [slug for slug, state in states.items() if state != "Success"] == ["p099"]
    # Pending when its Running never committed before the kill; else Failed with the
    # run (a crashed-for-good run leaves no task run Running).
    assert states["p099"] in ("Pending", "Failed"), states["p099"]
    problems = check_invariants(campaign.db, settled=True)
    assert not problems, f"{problems}\n{campaign.tail()}"
    print(
        f"A4 {how}: Crashed after {row['launches']} launches in {elapsed:.1f} s; "
        f"{sum(starts.values()) - 99} re-executions of the 99 other tasks"
    )


# A5: graceful stop -----------------------------------------------------------------------
A5_GRACE = 2.0
A5_TASK = 10.0


def a5_worker(root: Path) -> tuple[Campaign, str, subprocess.Popen[bytes]]:
    """A worker starting a `slow` run (three 10 s tasks)."""
    campaign = Campaign(root, "")
    register(campaign.db)
    run_id = trigger(campaign.db, "slow", {"seconds": A5_TASK})
    return campaign, run_id, worker(campaign, "--grace", str(A5_GRACE))


def exit_times(processes: dict[str, subprocess.Popen[bytes]]) -> dict[str, float]:
    """Wait for every process to exit; when each did (monotonic)."""
    ended: dict[str, float] = {}

    def all_ended() -> bool:
        for name, process in processes.items():
            if name not in ended and process.poll() is not None:
                ended[name] = time.monotonic()
        return len(ended) == len(processes)

    wait_until(all_ended, 30, "the workers to stop")
    return ended


@pytest.mark.reliability
@pytest.mark.timeout(90)
def test_a5_graceful_stop(tmp_path: Path) -> None:
    """Three workers, each 1 s into a 10 s task, grace 2 s, stopped at the same time:
    SIGTERM to the worker (a service manager), SIGINT to its whole group (Ctrl-C in a
    terminal), and SIGTERM twice.

    Once: within grace + 1 s the worker has stopped the run it could not finish,
    given it back (scheduled run Scheduled, unclaimed, not counted as a crash; the
    task's attempt recorded; no process left) and exited 0. Twice: the worker exits at
    once (exit 0, no hang), leaving its run claimed: its process may go on, and when
    it ends any worker settles the run (here: killed, then recovered as a crash).

    Mapping: RELIABILITY's "task released to PENDING" is the scheduled run (durable's
    unit of claim) back to Scheduled; its flow run and task run keep the Running state
    the stopped process last committed, as after any crash: the next worker resumes
    the run (tests/worker/test_restart_resume.py) and the task runs again.
    """
    names = ("SIGTERM", "SIGINT", "SIGTERM-twice")
    scenarios = {name: a5_worker(tmp_path / name) for name in names}
    for campaign, _, _ in scenarios.values():
        wait_until(campaign.executions, 60, "a first task to start")
    pause(1.0)
    sent = {}
    for name, (_, _, process) in scenarios.items():
        sent[name] = time.monotonic()
        if name == "SIGINT":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
    twice = scenarios["SIGTERM-twice"]
    wait_until(lambda: "Stopping:" in twice[0].log.read_text(), 10,
               "the first SIGTERM to be handled")  # fmt: skip
    twice[2].send_signal(signal.SIGTERM)
    ended = exit_times({name: process for name, (_, _, process) in scenarios.items()})
    took = {name: round(ended[name] - sent[name], 2) for name in names}
    print(
        f"A5: seconds from the signal to the worker's exit (grace {A5_GRACE}): {took}"
    )
    for name, (campaign, run_id, process) in scenarios.items():
        assert process.returncode == 0, f"{name}: exit {process.returncode}"
        problems = check_invariants(campaign.db)
        assert not problems, f"{name}: {problems}"
        if name != "SIGTERM-twice":
            assert took[name] <= A5_GRACE + 1.0, f"{name}: stopped after {took[name]} s"
            check_given_back(campaign, run_id, process)
    assert took["SIGTERM-twice"] <= A5_GRACE, "a second SIGTERM did not stop at once"
    campaign, run_id, process = twice
    assert scheduled_run(campaign.db, run_id)["status"] == "Running"  # still claimed
    kill9(process)  # its orphaned run process (in its group): now a crash
    again = worker(campaign, "--burst")
    wait_until(lambda: scheduled_run(campaign.db, run_id)["crashes"] == 1, 30,
               "the next worker to recover the run")  # fmt: skip
    kill9(again)


def check_given_back(
    campaign: Campaign, run_id: str, process: subprocess.Popen[bytes]
) -> None:
    row = scheduled_run(campaign.db, run_id)
    assert row["status"] == "Scheduled", row
    assert row["claimed_by"] is None, row
    assert row["lease_token"] is None, row
    assert row["crashes"] == 0, "a graceful stop was counted as a crash"
    (attempts,) = query(campaign.db, "SELECT attempts FROM task_runs WHERE"
                        " flow_run_id = ? AND task_slug = 's1'", run_id)[0]  # fmt: skip
    assert attempts == 1
    assert flow_run_state(campaign.db, run_id) == "Running"  # resumable, not finished
    (stopped,) = query(campaign.db, "SELECT stopped_at FROM workers")[0]
    assert stopped is not None
    assert not group_pids(process.pid), "the stopped run's process outlived its worker"


# A6: a big write interrupted --------------------------------------------------------------
A6_WINDOW = {"inline": 1.0, "file": 0.5}
"""Seconds from the body's end to its result's ACK, measured ~0.8 s (a 50 MB row in the
WAL) and ~0.35 s (a result file, fsynced and renamed, then its row): the kill lands at
U(0, window) after the body ended."""
THRESHOLDS = {"inline": "64MiB", "file": ""}
"""DURABLE_RESULT_FILE_THRESHOLD: 50 MB inline in its row, or in a result file."""


def big_value_digest() -> str:
    chunk = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(32768))
    return hashlib.sha256(chunk * (50 * 1024 * 1024 // len(chunk))).hexdigest()


def a6_once(root: Path, where: str, rng: random.Random, digest: str) -> bool:
    """Kill `durable run big` while its 50 MB result commits; resume; check. Return
    whether the kill landed before the commit was acknowledged."""
    campaign = Campaign(
        root, "a6", flow="big", env={"DURABLE_RESULT_FILE_THRESHOLD": THRESHOLDS[where]}
    )
    process = campaign.start()
    wait_until(lambda: any(e.event == "end" for e in campaign.executions()) or
               process.poll() is not None, 60, "the 50 MB body to end")  # fmt: skip
    pause(rng.uniform(0.0, A6_WINDOW[where]))
    before_ack = not [a for a in read_acks(campaign.acks) if a.kind == "result"]
    kill9(process)
    problems = check_invariants(campaign.db)
    assert not problems, f"{problems}\n{campaign.tail()}"
    seen = read_results(campaign.db, campaign.run_id)  # a file's size and hash checked
    if "blob" in seen:  # committed whole, or not at all
        assert hashlib.sha256(seen["blob"]).hexdigest() == digest
    resumed = campaign.start()
    assert resumed.wait(timeout=120) == 0, campaign.tail()
    assert flow_run_state(campaign.db, campaign.run_id) == "Success"
    rows = query(campaign.db, "SELECT COUNT(*) FROM results")
    assert rows == [(1,)], rows
    final = read_results(campaign.db, campaign.run_id)
    assert hashlib.sha256(final["blob"]).hexdigest() == digest
    problems = check_invariants(campaign.db, settled=True)
    assert not problems, problems
    starts = [e for e in campaign.executions() if e.event == "start"]
    assert len(starts) == (1 if "blob" in seen else 2), starts
    return before_ack


@pytest.mark.reliability
def test_a6_big_result_commit_killed(tmp_path: Path, rel_seed: int) -> None:
    """One kill -9 while a 50 MB result commits inline (the PR instance)."""
    a6_once(tmp_path, "inline", random.Random(rel_seed), big_value_digest())


@pytest.mark.nightly
@pytest.mark.timeout(600)
def test_a6_big_result_commit_killed_nightly(tmp_path: Path, rel_seed: int) -> None:
    """Twenty kills: ten while the result commits inline, ten as a result file."""
    rng, digest, landed = random.Random(rel_seed), big_value_digest(), 0
    for number in range(20):
        where = "inline" if number % 2 == 0 else "file"
        landed += a6_once(tmp_path / str(number), where, rng, digest)
    print(f"A6: {landed}/20 kills landed before the result's ACK")
    assert landed >= 5, "too few kills landed inside the commit to mean anything"
