"""TUI read-model benchmark: how fast the terminal UI's queries are on a big database
(issue 5).

Generates a durable database (schema from durable's own migrations, rows by direct SQL
inserts in big transactions, not through the engine): 100,000 flow runs of 50 flows
(one a minute, the latest still running), 10 task runs each with their state history
(1,000,000 task runs), 50 log lines per run (5,000,000), scheduled runs for the
worker-run 60% of them, a few waiting ticks and three workers. Then, in a fresh child
process (so that its peak RSS is the TUI's, not the generator's), times what each screen
asks `durable.store.browse.ReadModel`: once cold (the file's pages dropped from the OS cache with
posix_fadvise, no root needed) and warm (median of 5). Prints a table with the targets
(each screen query < 200 ms, idle poll < 5 ms, memory < 200 MB) and PASS/MISS; never
fails on a miss.

    python bench/tui_db.py /tmp/tui.db               # generate (a few minutes), time
    python bench/tui_db.py /tmp/tui.db --scale 0.01  # 1,000 runs: a quick version
    python bench/tui_db.py /tmp/tui.db --reuse       # time an existing database again
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from report import filesystem_of, print_table, verdict  # bench/report.py

from durable.store.connection import connect_writer, migrate

RUNS, FLOWS, TASKS, LOGS_PER_TASK = 100_000, 50, 10, 5
"""At scale 1: flow runs, flows, task runs per run, log lines per task run."""
TARGET_QUERY_MS, TARGET_POLL_MS, TARGET_RSS_MB = 200.0, 5.0, 200.0
CHUNK = 2_000
"""Runs per transaction while generating."""

TASK_NAMES = ("extract", "extract", "validate", "transform", "enrich", "load", "audit",
              "index", "report", "notify")  # fmt: skip
SLUGS = ("extract-1", "extract-2", "validate-1", "transform-1", "enrich-1", "load-1",
         "audit-1", "index-1", "report-1", "notify-1")  # fmt: skip
"""The ten tasks of every flow, in dependency order."""
EDGES = ((0, 2), (1, 2), (2, 3), (3, 4), (4, 5), (3, 6), (5, 7), (5, 8), (6, 8), (8, 9))
"""(upstream, downstream) task indexes."""
FAILING = 5
"""The task that fails (after three attempts) in a failed run: load-1."""
DOWNSTREAM_OF_FAILING = (7, 8, 9)


def graph_json() -> str:
    """The flows' graph, as durable.core.identity.shape writes it."""
    tasks = [[slug, name, False] for slug, name in zip(SLUGS, TASK_NAMES, strict=True)]
    edges = [[SLUGS[u], SLUGS[d], None, False, False] for u, d in EDGES]
    return json.dumps({"tasks": tasks, "edges": edges}, separators=(",", ":"))


# Generation ------------------------------------------------------------------------------
class Generator:
    """Writes one run at a time into row lists; `flush` inserts them in one go."""

    def __init__(self, conn: sqlite3.Connection, runs: int, now: float) -> None:
        self.conn, self.runs, self.now = conn, runs, now
        self.rng = random.Random(42)
        self.base = now - runs * 60.0
        self.flow_runs: list[tuple[Any, ...]] = []
        self.scheduled: list[tuple[Any, ...]] = []
        self.task_runs: list[tuple[Any, ...]] = []
        self.states: list[tuple[Any, ...]] = []
        self.logs: list[tuple[Any, ...]] = []

    def flows(self) -> None:
        graph = graph_json()
        rows = []
        for i in range(FLOWS):
            registered = self.base - 3_600 if i % 2 == 0 else None
            schedule = "every hour from 2026-01-01 00:00 UTC" if registered else None
            rows.append((i + 1, f"flow_{i:02d}", 1, f"fp{i}", f"/flows/flow_{i:02d}.py",
                         self.base - 3_600, registered, b"" if registered else None,
                         "h" if registered else None, schedule, graph))  # fmt: skip
        self.conn.executemany(
            "INSERT INTO flows (id, name, version, fingerprint, source_path, created_at,"
            " registered_at, flow_blob, flow_hash, schedule_text, graph)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.conn.executemany(
            "INSERT INTO flow_settings (name, paused_at) VALUES (?, ?)",
            [(f"flow_{i:02d}", self.base) for i in (0, 2)],
        )
        workers = [(f"host:{100 + i}", 100 + i, self.base, self.now - i * 5,
                    None if i < 2 else self.now - 10) for i in range(3)]  # fmt: skip
        self.conn.executemany(
            "INSERT INTO workers (name, pid, pid_started, concurrency, started_at,"
            " heartbeat_at, stopped_at) VALUES (?, ?, 'token', 4, ?, ?, ?)",
            workers,
        )

    def run(self, index: int) -> None:
        rng = self.rng
        flow = rng.randrange(FLOWS)
        created = self.base + index * 60.0 + rng.random() * 30
        run_id = f"{rng.getrandbits(48):012x}"
        running = index >= self.runs - 20
        roll = rng.random()
        state = ("Running" if running else "Failed" if roll < 0.05
                 else "Cancelled" if roll < 0.06 else "Success")  # fmt: skip
        t = created + 1.0
        for offset in range(TASKS):
            t = self.task(run_id, offset, state, t)
        ended = None if running else t + 0.5
        if rng.random() < 0.9:
            params, serializer = f'{{"day": {index % 365}, "limit": 1000}}', "json"
        else:
            params, serializer = rng.randbytes(180), "pickle"
        self.flow_runs.append((run_id, flow + 1, f"flow_{flow:02d}", f"fp{flow}",
                               f"/flows/flow_{flow:02d}.py", state, None, params,
                               serializer, created, created + 1.0, ended,
                               ended or t))  # fmt: skip
        self.states.append((run_id, None, "Pending", "Flow run created.", created))
        self.states.append((run_id, None, "Running", "Running flow.", created + 1.0))
        if ended is not None:
            self.states.append((run_id, None, state, None, ended))
        if rng.random() < 0.6:  # a worker ran it
            kind = rng.choices(("schedule", "manual", "backfill"), (90, 7, 3))[0]
            status, worker = ("Running", "host:100") if running else ("Finished", None)
            self.scheduled.append((run_id, f"flow_{flow:02d}", 1, created, run_id,
                                   b"", status, None if running else state, created,
                                   worker, kind, ended))  # fmt: skip

    def task(self, run_id: str, offset: int, run_state: str, t: float) -> float:
        """Add one task run, its states and its logs; return when it ended."""
        task_id = f"{self.rng.getrandbits(128):032x}"
        slug, name = SLUGS[offset], TASK_NAMES[offset]
        if run_state == "Running" and offset > 4:
            state, attempts, history = ("Running", 1, ["Running"]) if offset == 5 else (
                "Pending", 0, [])  # fmt: skip
        elif run_state == "Failed" and offset == FAILING:
            state, attempts = "Failed", 3
            history = ["Running", "Failed", "Retrying"] * 2 + ["Running", "Failed"]
        elif run_state == "Failed" and offset in DOWNSTREAM_OF_FAILING:
            state, attempts, history = "TriggerFailed", 0, ["TriggerFailed"]
        elif run_state == "Cancelled" and offset > 3:
            state, attempts, history = "Cancelled", 0, ["Cancelled"]
        else:
            state, attempts, history = "Success", 1, ["Running", "Success"]
        started = t if attempts else None
        for name_ in history:
            self.states.append((run_id, task_id, name_, None, t))
            t += 2.0 + self.rng.random() * 10 if name_ == "Running" else 0.1
        finished = state not in ("Running", "Pending")
        self.task_runs.append((task_id, run_id, slug, name, state, attempts, started,
                               t if finished else None, t))  # fmt: skip
        level = 40 if state == "Failed" else 20
        for line in range(LOGS_PER_TASK):
            message = (f"Task {name!r}: processed {line * 1000 + offset} rows from "
                       f"s3://bucket/{run_id}/part-{line:05d}.parquet")  # fmt: skip
            self.logs.append((run_id, task_id, t, level if line == 4 else 20,
                              "durable.TaskRunner", message))  # fmt: skip
        return t

    def flush(self) -> None:
        c = self.conn
        c.execute("BEGIN")
        c.executemany(
            "INSERT INTO flow_runs (id, flow_id, flow_name, fingerprint, source_path,"
            " state, state_message, parameters, parameters_serializer, created_at,"
            " started_at, ended_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            self.flow_runs,
        )
        c.executemany(
            "INSERT INTO task_runs (id, flow_run_id, task_slug, task_name, state,"
            " attempts, started_at, ended_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
            self.task_runs,
        )
        c.executemany(
            "INSERT INTO states (flow_run_id, task_run_id, name, message, timestamp)"
            " VALUES (?,?,?,?,?)",
            self.states,
        )
        c.executemany(
            "INSERT INTO logs (flow_run_id, task_run_id, timestamp, level, logger,"
            " message) VALUES (?,?,?,?,?,?)",
            self.logs,
        )
        c.executemany(
            "INSERT INTO scheduled_runs (id, flow_name, flow_version, scheduled_for,"
            " parameters_hash, parameters, status, message, created_at, claimed_by,"
            " kind, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            self.scheduled,
        )
        c.execute("COMMIT")
        for rows in (self.flow_runs, self.task_runs, self.states, self.logs,
                     self.scheduled):  # fmt: skip
            rows.clear()

    def waiting_ticks(self) -> None:
        """Ticks waiting to run: one per registered flow, a few of them Late."""
        rows = [(f"tick{i:04d}", f"flow_{i:02d}", 1, self.now + (i - 3) * 60.0,
                 f"tick{i}", b"", "Late" if i < 3 else "Scheduled", self.now - 3_600)
                for i in range(0, FLOWS, 2)]  # fmt: skip
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO scheduled_runs (id, flow_name, flow_version, scheduled_for,"
            " parameters_hash, parameters, status, created_at) VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )
        self.conn.execute("COMMIT")


def generate(path: Path, scale: float) -> dict[str, int]:
    """Write the database; return how many rows each big table got."""
    conn = connect_writer(path, "normal")
    migrate(conn, path)  # durable's real schema and indexes, at the current version
    # Bulk load: no journal, no fsync, a big page cache for the random-key indexes.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    runs = max(1, round(RUNS * scale))
    gen = Generator(conn, runs, time.time())
    conn.execute("BEGIN")
    gen.flows()
    conn.execute("COMMIT")
    began = time.monotonic()
    for index in range(runs):
        gen.run(index)
        if (index + 1) % CHUNK == 0 or index + 1 == runs:
            gen.flush()
            done = (index + 1) / runs
            elapsed = time.monotonic() - began
            print(f"\r  {index + 1:,} runs ({done:.0%}), {elapsed:.0f} s", end="",
                  flush=True)  # fmt: skip
    print()
    gen.waiting_ticks()
    # As durable leaves it: WAL, and no ANALYZE statistics (durable never gathers any,
    # so the query planner works from the schema alone, as here).
    conn.execute("PRAGMA journal_mode=WAL")
    counts = {
        table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("flow_runs", "task_runs", "states", "logs", "scheduled_runs")
    }
    conn.close()
    return counts


# Measurement (in a child process) --------------------------------------------------------
def drop_from_page_cache(path: Path) -> None:
    """Evict the database's pages from the OS page cache (cold reads, no root)."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            fd = os.open(name, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return (time.perf_counter() - began) * 1000


def measure(path: Path) -> dict[str, Any]:
    """Time the read model's screen queries, cold then warm; return ms and RSS."""
    from durable.store.browse import ReadModel, parse_filter

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as probe:
        total = probe.execute("SELECT COUNT(*) FROM flow_runs").fetchone()[0]
        (middle,) = probe.execute(
            "SELECT id FROM flow_runs ORDER BY created_at LIMIT 1 OFFSET ?",
            (total // 2,),
        ).fetchone()
        probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    now = time.time()
    failed_flow = parse_filter("state:failed flow:flow_07", now=now)
    nomatch = parse_filter("nomatch", now=now)
    broad = parse_filter("low_1", now=now)  # flow_10 .. flow_19: a fifth of the runs
    recent = parse_filter("since:1h", now=now)
    model: list[ReadModel] = []

    def open_and_list() -> object:
        model.append(ReadModel(path))
        return model[0].runs()

    cases: list[tuple[str, Callable[[], object]]] = [
        ("open + runs() (first page, 500)", open_and_list),
        ("runs(state:failed flow:flow_07)", lambda: model[0].runs(failed_flow)),
        ("runs(since:1h)", lambda: model[0].runs(recent)),
        ("runs(text 'nomatch')", lambda: model[0].runs(nomatch)),
        ("runs(text 'low_1': 10 of 50 flows)", lambda: model[0].runs(broad)),
        ("run(id) of the middle run", lambda: model[0].run(middle)),
        ("logs(id) of the middle run", lambda: model[0].logs(middle)),
        ("flows()", lambda: model[0].flows()),
        ("scheduled()", lambda: model[0].scheduled()),
        ("workers()", lambda: model[0].workers()),
    ]  # fmt: skip
    results: dict[str, Any] = {"queries": {}}
    for label, call in cases:
        drop_from_page_cache(path)
        results["queries"][label] = {"cold": timed(call)}
    for label, call in cases[1:]:
        warm = [timed(call) for _ in range(5)]
        results["queries"][label]["warm"] = statistics.median(warm)

    def reopen() -> object:
        with ReadModel(path) as fresh:
            return fresh.runs()

    reopens = [timed(reopen) for _ in range(5)]
    results["queries"][cases[0][0]]["warm"] = statistics.median(reopens)
    polls = []
    model[0].changed()
    for _ in range(1_000):
        polls.append(timed(model[0].changed))
    polls.sort()
    results["poll"] = {"median": polls[500], "p99": polls[990], "max": polls[-1]}
    results["rows"] = {
        "runs": len(model[0].runs()),
        "tasks of the middle run": len(detail.tasks)
        if (detail := model[0].run(middle))
        else 0,
        "logs of the middle run": len(model[0].logs(middle)),
    }
    model[0].close()
    results["rss_mb"] = peak_rss_mb()
    return results


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    exec, so a child would report its parent's peak (the generator's 1 GB cache)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(results: dict[str, Any]) -> None:
    rows = []
    for label, times in results["queries"].items():
        ok = max(times["cold"], times["warm"]) < TARGET_QUERY_MS
        rows.append([label, f"{times['cold']:.1f}", f"{times['warm']:.1f}",
                     f"< {TARGET_QUERY_MS:.0f}", verdict(ok)])  # fmt: skip
    poll = results["poll"]
    rows.append(["idle poll: changed() (median; p99 in warm)", f"{poll['median']:.3f}",
                 f"{poll['p99']:.3f}", f"< {TARGET_POLL_MS:.0f}",
                 verdict(poll["p99"] < TARGET_POLL_MS)])  # fmt: skip
    rss = results["rss_mb"]
    rows.append(["peak RSS of the reading process (MB)", f"{rss:.0f}", "",
                 f"< {TARGET_RSS_MB:.0f}", verdict(rss < TARGET_RSS_MB)])  # fmt: skip
    print_table(
        "TUI read model (ms; cold: the file dropped from the OS page cache before "
        "each call; warm: median of 5)",
        ["query", "cold", "warm", "target", ""],
        rows,
        align="lrrrl",
    )
    print(
        "  rows returned: "
        + ", ".join(f"{k} {v:,}" for k, v in results["rows"].items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path, help="the database to generate and time")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the full size (0.01: 1,000 runs)")  # fmt: skip
    parser.add_argument("--reuse", action="store_true",
                        help="time an existing database instead of generating one")  # fmt: skip
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path: Path = args.db
    if args.measure:  # the child: print the figures as JSON
        print(json.dumps(measure(path)))
        return
    print(f"durable TUI read-model benchmark: Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
          f"database on {filesystem_of(path.parent)}")  # fmt: skip
    if not args.reuse:
        if path.exists():
            sys.exit(f"{path} exists; pass --reuse to time it, or remove it first")
        began = time.monotonic()
        counts = generate(path, args.scale)
        took = time.monotonic() - began
        size = path.stat().st_size / 2**20
        print(f"generated in {took:.0f} s, {size:,.0f} MB: "
              + ", ".join(f"{n:,} {t}" for t, n in counts.items()))  # fmt: skip
    elif not path.exists():
        sys.exit(f"{path} does not exist; run without --reuse to generate it")
    child = subprocess.run(
        [sys.executable, __file__, str(path), "--measure"],
        check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )  # fmt: skip
    report(json.loads(child.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
