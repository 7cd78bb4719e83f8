"""Benchmark cases, each timed in a fresh child process so its peak RSS is its own.

A bench script calls `run_case(Case(...), directory)`; that starts
`python bench/cases.py CASE_JSON DIRECTORY`, which builds the flow, warms up (a 10-task
chain on a database of its own, so lazy imports and the first thread hop are paid
outside the timing), times one run from `Store.open` to `Store.close` (what `flow.run`
does) and prints one JSON line: seconds, peak RSS of the process (VmHWM) and of its
largest finished child process (the process executor's workers, Dask's worker
processes), and what the case adds (the resume's time to its last task, the Dask
cluster's start).

The knobs that only benchmarks turn: `commit_each` sets the checkpoint writer's
`commit_each` (one transaction per queued operation instead of group commit), and
`pipelined=False` opens the store with `max_pending=0`, so the engine waits for each
task run's checkpoints to commit before it starts the next task run.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from durable import Flow, Task, task

KILL_ENV = "DURABLE_BENCH_KILL"
"""When set, the last task of a `crash` chain kills its own process (SIGKILL)."""


@dataclass(frozen=True)
class Case:
    """One measured run: what flow, how big, and how it is checkpointed and executed."""

    kind: str
    """chain | map | diamond | crash (a chain that dies in its last task) | resume"""
    size: int
    """Tasks in a chain, children of a map, or the width of a diamond."""
    durability: str = "full"
    executor: str = "local"
    """local | concurrent | process | dask (a LocalCluster of 2 worker processes)"""
    log_level: str = "WARNING"
    """Console log level; console output goes to /dev/null."""
    commit_each: bool = False
    pipelined: bool = True
    run_id: str = "bench"

    @property
    def label(self) -> str:
        return f"{self.kind}-{self.size}-{self.durability}-{self.executor}"


@dataclass
class Measured:
    """What a child reports about its case."""

    seconds: float
    """Wall time of the timed run (Store.open to Store.close)."""
    peak_mb: float
    """Peak RSS of the child process that ran the flow."""
    workers_peak_mb: float = 0.0
    """Peak RSS of its largest child process (process or Dask workers), if any."""
    extra: dict[str, float] = field(default_factory=dict)


def run_case(case: Case, directory: Path) -> Measured:
    """Run `case` in a fresh interpreter, on fresh databases under `directory`.

    A `resume` case resumes the database its `crash` case left (same size). Console
    output is discarded; a failing child raises RuntimeError with its last lines.
    """
    env = {**os.environ, "DURABLE_LOG_LEVEL": case.log_level}
    if case.kind == "crash":
        env[KILL_ENV] = "1"
    if case.kind in ("crash", "resume"):
        workdir = directory / f"resume-{case.size}"
        workdir.mkdir(exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix=f"{case.label}-", dir=directory))
    try:
        child = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), json.dumps(asdict(case)),
             str(workdir)],
            env=env, capture_output=True, text=True, check=False, cwd=workdir,
        )  # fmt: skip
    finally:
        if case.kind != "crash":
            shutil.rmtree(workdir, ignore_errors=True)
    if case.kind == "crash":
        if child.returncode != -signal.SIGKILL:
            raise RuntimeError(f"the crash child was not killed ({child.returncode})")
        return Measured(0.0, 0.0)
    if child.returncode != 0:
        tail = "\n".join(child.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"case {case.label} failed ({child.returncode}):\n{tail}")
    return Measured(**json.loads(child.stdout.strip().splitlines()[-1]))


def floor_micros(directory: Path, synchronous: str, commits: int = 2_000) -> float:
    """Return µs per `BEGIN IMMEDIATE; INSERT; COMMIT` on a bare sqlite3 WAL connection.

    The physical floor of one checkpoint per task: what the benchmarks compare to.
    """
    import sqlite3

    path = directory / f"floor-{synchronous.lower()}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        conn.execute("CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, value BLOB)")
        payload = b"x" * 64
        start = time.perf_counter()
        for i in range(commits):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO checkpoints VALUES (?, ?)", (i, payload))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return elapsed / commits * 1e6


# --- the child ---------------------------------------------------------------------------


def process_cpu() -> float:
    """CPU seconds this process has used, all its threads (engine and writer) together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


reached: list[float] = []
"""perf_counter() readings taken as a chain's last task body starts."""


@task
def inc(x: int) -> int:
    return x + 1


@task
def last(x: int) -> int:
    """End a chain: the crash case dies here; a resume records when it gets here."""
    if os.environ.get(KILL_ENV):
        os.kill(os.getpid(), signal.SIGKILL)
    reached.append(time.perf_counter())
    return x + 1


@task
def items(n: int) -> list[int]:
    return list(range(n))


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def done() -> str:
    return "done"


def build(case: Case) -> tuple[Flow, Task, Any]:
    """Return (flow, the task whose result to check, the result it must have)."""
    n = case.size
    shape = "chain" if case.kind in ("crash", "resume") else case.kind
    with Flow(f"bench-{shape}-{n}") as flow:  # a resume needs the crashed flow's name
        if shape == "chain":
            tail = inc(0)
            for _ in range(n - 2):
                tail = inc(tail)
            return flow, last(tail), n
        if shape == "map":
            return flow, total(inc.map(items(n))), n * (n + 1) // 2
        if shape == "diamond":  # 1 -> n -> 1
            root = inc(0)
            middle = [inc(root) for _ in range(n)]
            return flow, done(upstream_tasks=middle), "done"
    raise ValueError(f"unknown case kind {case.kind!r}")


@contextmanager
def executor_for(case: Case, extra: dict[str, float]) -> Iterator[Any]:
    """Yield the case's executor; a Dask cluster is started (and timed) up front."""
    from durable.executors import ConcurrentExecutor, DaskExecutor, ProcessExecutor

    if case.executor == "local":
        yield None
    elif case.executor == "concurrent":
        yield ConcurrentExecutor(max_workers=4)
    elif case.executor == "process":
        yield ProcessExecutor(max_workers=2)
    elif case.executor == "dask":
        import distributed

        start = time.perf_counter()
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            dashboard_address=None, memory_limit=None,
        )  # fmt: skip
        extra["cluster_start"] = time.perf_counter() - start
        try:
            yield DaskExecutor(address=cluster.scheduler_address)
            extra["dask_round_trip"] = dask_round_trip(cluster.scheduler_address)
        finally:
            cluster.close()
    else:
        raise ValueError(f"unknown executor {case.executor!r}")


def plus_one(x: int) -> int:
    return x + 1


def dask_round_trip(address: str, calls: int = 200) -> float:
    """Seconds per bare `client.submit` + await of a trivial function, one at a time.

    Dask's own latency on this cluster, without durable: the Dask row's floor.
    """
    import anyio
    import distributed

    async def go() -> float:
        async with distributed.Client(address, asynchronous=True) as client:
            x = 0
            for _ in range(20):  # warm up
                x = await client.submit(plus_one, x, pure=False)
            start = time.perf_counter()
            for _ in range(calls):
                x = await client.submit(plus_one, x, pure=False)
            return (time.perf_counter() - start) / calls

    return anyio.run(go)


def timed_run(
    case: Case, flow: Any, executor: Any, db: Path, run_id: str
) -> tuple[float, Any]:
    """Run (or resume) `flow` with the case's knobs; return (seconds, final state).

    The seconds run from `Store.open` to `Store.close`, the span `flow.run` covers.
    """
    import anyio

    from durable.engine.flow_runner import run_flow_async
    from durable.store import Store

    async def go() -> tuple[float, Any]:
        start = time.perf_counter()
        store = await Store.open(
            db, durability=case.durability,  # type: ignore[arg-type]
            max_pending=256 if case.pipelined else 0,
        )  # fmt: skip
        store.writer.commit_each = case.commit_each
        try:
            state = await run_flow_async(
                flow, store=store, run_id=run_id, executor=executor
            )
        finally:
            await store.close()
        return time.perf_counter() - start, state

    return anyio.run(go)


def child_main(case: Case, directory: Path) -> None:
    extra: dict[str, float] = {}
    flow, tail, expected = build(case)
    db = directory / "bench.db"
    with executor_for(case, extra) as executor:
        if case.kind != "crash":
            warm_flow, _, _ = build(Case("chain", 10))
            warm_db = directory / "warm-up.db"
            timed_run(case, warm_flow, executor, warm_db, "warm-up")
        reached.clear()
        start, cpu = time.perf_counter(), process_cpu()
        seconds, state = timed_run(case, flow, executor, db, case.run_id)
        extra["cpu_seconds"] = process_cpu() - cpu
    if not state.is_successful() or state.result[tail].result != expected:
        raise RuntimeError(f"{case.label} did not succeed: {state!r}")
    if case.kind == "resume":
        if len(reached) != 1:
            raise RuntimeError(f"the last task ran {len(reached)} times on resume")
        extra["to_last_task"] = reached[0] - start
    print(json.dumps(asdict(Measured(
        seconds, peak_mb(), peak_mb(resource.RUSAGE_CHILDREN), extra
    ))))  # fmt: skip


if __name__ == "__main__":
    child_main(Case(**json.loads(sys.argv[1])), Path(sys.argv[2]))
