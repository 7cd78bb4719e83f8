"""Every file in examples/ runs, as a user would run it, on a temporary database.

Each test starts the example in a process of its own (`python examples/NAME.py`, or
`durable run` where the example is meant for it), with DURABLE_HOME in a temporary
folder, and checks what it really did: the rows in the database, the files it wrote and
what it printed.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
COVERED = {
    "01_plain_etl.py",
    "02_etl_flow.py",
    "03_parameters.py",
    "04_retries.py",
    "05_schedule.py",
    "06_dask.py",
    "07_conditions.py",
    "08_mapping.py",
    "09_crash_and_resume.py",
    "10_pause_and_approve.py",
    "11_shell_and_sqlite.py",
    "12_caching.py",
    "demo.py",
    "demo_etl.py",
}
"""The example files the tests below run; a new example needs a test and a name here."""

TIMEOUT_SECONDS = 60

TOTALS_EUR = {
    "DE": 2912.3,
    "FR": 958.3,
    "GB": 301.82,
    "IT": 1925.0,
    "JP": 843.6,
    "US": 1480.81,
}
"""This week's total per country in euros, from examples/data (worked out by hand)."""


def example_env(home: Path, step_seconds: str = "0") -> dict[str, str]:
    """The environment of an example's process: its own DURABLE_HOME, quick steps."""
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DB"}
    env.update(DURABLE_HOME=str(home), ETL_STEP_SECONDS=step_seconds)
    return env


def run_example(home: Path, name: str) -> subprocess.CompletedProcess[str]:
    """Run `python examples/NAME` from `home`, on `home`'s database."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=home, env=example_env(home), capture_output=True, text=True,
        timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip


def durable(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `durable` command from the repository root, on `home`'s database."""
    return subprocess.run(
        [sys.executable, "-m", "durable", *args],
        cwd=ROOT, env=example_env(home), capture_output=True, text=True,
        timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip


def query(home: Path, sql: str, *values: object) -> list[tuple[Any, ...]]:
    """Read `home`'s database directly."""
    with closing(sqlite3.connect(home / "durable.db")) as conn:
        return conn.execute(sql, values).fetchall()


def task_states(home: Path) -> dict[str, list[str]]:
    """Each task slug's final states, over every run in the database, oldest run first."""
    found: dict[str, list[str]] = {}
    rows = query(
        home,
        "SELECT t.task_slug, t.state FROM task_runs t JOIN flow_runs f"
        " ON f.id = t.flow_run_id WHERE t.map_index = -1 ORDER BY f.created_at",
    )
    for slug, state in rows:
        found.setdefault(slug, []).append(state)
    return found


def out(home: Path, *parts: str) -> Path:
    """A file the examples write under $DURABLE_HOME/examples."""
    return home.joinpath("examples", *parts)


def test_every_example_file_is_run_by_a_test() -> None:
    present = {p.name for p in EXAMPLES.glob("*.py")}

    assert present == COVERED, "add a test for each new file in examples/"


@pytest.mark.parametrize("name", sorted(COVERED))
def test_every_example_says_what_it_teaches_and_how_to_run_it(name: str) -> None:
    docstring = ast.get_docstring(ast.parse((EXAMPLES / name).read_text())) or ""

    assert "Run it:" in docstring or name == "demo.py"  # demo.py is `make demo`
    assert len(docstring.splitlines()) >= 3


def test_the_plain_etl_writes_its_report_and_records_nothing(tmp_path: Path) -> None:
    done = run_example(tmp_path, "01_plain_etl.py")

    assert done.returncode == 0, done.stderr
    assert "Read 20 orders" in done.stdout
    assert json.loads(out(tmp_path, "plain_etl.json").read_text()) == TOTALS_EUR
    assert not (tmp_path / "durable.db").exists()  # no durable here yet


def test_the_etl_flow_records_each_task_and_computes_the_same_totals(
    tmp_path: Path,
) -> None:
    done = run_example(tmp_path, "02_etl_flow.py")

    assert done.returncode == 0, done.stderr
    assert json.loads(out(tmp_path, "etl_flow.json").read_text()) == TOTALS_EUR
    [(run_id, flow, state)] = query(
        tmp_path, "SELECT id, flow_name, state FROM flow_runs"
    )
    assert (flow, state) == ("etl-flow", "Success")
    assert f"durable show {run_id}" in done.stdout
    assert task_states(tmp_path) == {
        "extract-1": ["Success"],
        "fetch_rates-1": ["Success"],
        "transform-1": ["Success"],
        "load-1": ["Success"],
    }


def test_the_parameters_example_runs_twice_and_refuses_a_typo(tmp_path: Path) -> None:
    done = run_example(tmp_path, "03_parameters.py")

    assert done.returncode == 0, done.stderr
    assert query(tmp_path, "SELECT count(*), min(state) FROM flow_runs") == [
        (2, "Success")  # the run with a typo was refused before it was recorded
    ]
    assert "Refused, nothing was run or recorded" in done.stdout
    assert "'curency'" in done.stdout
    euros = json.loads(out(tmp_path, "parameters_EUR.json").read_text())
    dollars = json.loads(out(tmp_path, "parameters_USD.json").read_text())
    assert euros == {"currency": "EUR", "totals": TOTALS_EUR}
    assert dollars["currency"] == "USD"
    assert dollars["totals"]["DE"] == 3206.9  # orders of 100 USD or more only
    assert set(dollars["totals"]) == set(TOTALS_EUR)


def test_the_retries_example_succeeds_on_the_third_attempt(tmp_path: Path) -> None:
    done = run_example(tmp_path, "04_retries.py")

    assert done.returncode == 0, done.stderr
    attempts = dict(query(tmp_path, "SELECT task_slug, attempts FROM task_runs"))
    assert attempts == {
        "extract-1": 1,
        "fetch_rates-1": 3,
        "transform-1": 1,
        "load-1": 1,
    }
    history = [
        name
        for (name,) in query(
            tmp_path,
            "SELECT s.name FROM states s JOIN task_runs t ON t.id = s.task_run_id"
            " WHERE t.task_slug = 'fetch_rates-1' ORDER BY s.id",
        )
    ]
    assert history.count("Retrying") == 2
    assert history[-1] == "Success"
    assert "fetch_rates: Failed -> Retrying" in done.stdout  # its state handler
    assert json.loads(out(tmp_path, "retries.json").read_text()) == TOTALS_EUR


def test_the_schedule_example_runs_three_times_a_second_apart(tmp_path: Path) -> None:
    done = run_example(tmp_path, "05_schedule.py")

    assert done.returncode == 0, done.stderr
    runs = query(tmp_path, "SELECT flow_name, state FROM flow_runs")
    assert runs == [("etl-schedule", "Success")] * 3
    reports = sorted(out(tmp_path, "schedule").glob("etl-schedule-*.json"))
    seconds = [int(path.stem[-2:]) for path in reports]  # ...-HHmmss
    assert [(b - a) % 60 for a, b in itertools.pairwise(seconds)] == [1, 1]
    assert all(json.loads(path.read_text()) == TOTALS_EUR for path in reports)
    assert "The schedule has no more runs" in done.stdout


@pytest.mark.timeout(90)
def test_the_dask_example_runs_task_bodies_in_the_cluster_s_processes(
    tmp_path: Path,
) -> None:
    pytest.importorskip("distributed")

    done = run_example(tmp_path, "06_dask.py")

    assert done.returncode == 0, done.stderr
    children = query(
        tmp_path,
        "SELECT count(*), min(state), max(state) FROM task_runs"
        " WHERE task_slug = 'convert-1' AND map_index >= 0",
    )
    assert children == [(20, "Success", "Success")]
    own = re.search(r"This process \(pid (\d+)\)", done.stdout)
    bodies = re.search(r"ran in the worker processes \[([\d, ]+)\]", done.stdout)
    assert own is not None, done.stdout
    assert bodies is not None, done.stdout
    assert own[1] not in bodies[1].split(", ")
    assert "'DE': 2912.3" in done.stdout


def test_the_conditions_example_takes_one_branch_per_run(tmp_path: Path) -> None:
    done = run_example(tmp_path, "07_conditions.py")

    assert done.returncode == 0, done.stderr
    assert "review_limit=1000: sent to a reviewer: orders 1007, 1011, 1019" in (
        done.stdout
    )
    assert "review_limit=5000: approved automatically" in done.stdout
    states = task_states(tmp_path)
    assert states["send_to_reviewer-1"] == ["Success", "Skipped"]
    assert states["approve_automatically-1"] == ["Skipped", "Success"]
    assert states["report-1"] == ["Success", "Success"]


def test_the_mapping_example_runs_one_task_run_per_country(tmp_path: Path) -> None:
    done = run_example(tmp_path, "08_mapping.py")

    assert done.returncode == 0, done.stderr
    children = query(
        tmp_path,
        "SELECT map_index, state FROM task_runs WHERE task_slug = 'country_report-1'"
        " AND map_index >= 0 ORDER BY map_index",
    )
    assert children == [(i, "Success") for i in range(6)]
    index = json.loads(out(tmp_path, "mapping", "index.json").read_text())
    assert {r["country"]: r["euros"] for r in index} == TOTALS_EUR
    logged = [m for (m,) in query(tmp_path, "SELECT message FROM logs")]
    assert "DE: 4 orders, 2912.3 EUR" in logged


def test_the_crash_example_resumes_without_running_finished_tasks_again(
    tmp_path: Path,
) -> None:
    done = run_example(tmp_path, "09_crash_and_resume.py")

    assert done.returncode == 0, done.stderr
    assert "exit status -9" in done.stdout
    [(run_id, state)] = query(tmp_path, "SELECT id, state FROM flow_runs")
    assert state == "Success"
    calls = out(tmp_path, "crash_and_resume", f"{run_id}.txt").read_text().splitlines()
    assert calls == [
        "extract attempt 1",
        "transform attempt 1",
        "load attempt 1",  # killed here
        "load attempt 2",  # the resume: extract and transform are not run again
    ]
    attempts = dict(query(tmp_path, "SELECT task_slug, attempts FROM task_runs"))
    assert attempts == {"extract-1": 1, "transform-1": 1, "load-1": 2}
    assert "load ran 2 times" in done.stdout
    assert "extract ran once" in done.stdout


def test_the_approval_example_pauses_then_publishes_once_approved(
    tmp_path: Path,
) -> None:
    done = run_example(tmp_path, "10_pause_and_approve.py")

    assert done.returncode == 0, done.stderr
    [(run_id, state)] = query(tmp_path, "SELECT id, state FROM flow_runs")
    assert state == "Success"
    flow_history = [
        name
        for (name,) in query(
            tmp_path,
            "SELECT name FROM states WHERE task_run_id IS NULL ORDER BY id",
        )
    ]
    assert "Paused" in flow_history
    assert query(
        tmp_path, "SELECT task_slug, state, attempts FROM task_runs ORDER BY rowid"
    ) == [
        ("extract-1", "Success", 1),
        ("build_report-1", "Success", 1),
        ("publish-1", "Success", 1),
    ]
    published = out(tmp_path, f"published-{run_id}.json")
    assert json.loads(published.read_text()) == TOTALS_EUR


def test_the_approval_example_waits_for_durable_approve_when_run_by_hand(
    tmp_path: Path,
) -> None:
    paused = durable(
        tmp_path, "run", "examples/10_pause_and_approve.py", "--run-id", "w1"
    )
    state_while_paused = query(tmp_path, "SELECT state FROM flow_runs")
    approved = durable(tmp_path, "approve", "w1", "publish-1")

    assert paused.returncode == 0, paused.stderr
    assert state_while_paused == [("Paused",)]
    assert "durable approve w1 publish-1" in paused.stderr
    assert approved.returncode == 0, approved.stderr
    assert query(tmp_path, "SELECT state FROM flow_runs") == [("Success",)]


def test_the_shell_and_sqlite_pipeline_loads_each_order_once(tmp_path: Path) -> None:
    first = run_example(tmp_path, "11_shell_and_sqlite.py")
    again = run_example(tmp_path, "11_shell_and_sqlite.py")

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    with closing(sqlite3.connect(out(tmp_path, "warehouse.db"))) as warehouse:
        rows = warehouse.execute(
            "SELECT count(*), count(DISTINCT batch) FROM orders"
        ).fetchone()
        totals = dict(
            warehouse.execute(
                "SELECT country, round(sum(euros), 2) FROM orders GROUP BY country"
            ).fetchall()
        )
    assert rows == (20, 1)  # the second run replaced the batch's rows
    assert totals == {**TOTALS_EUR, "GB": 301.81}  # rounded per order here
    logged = [m for (m,) in query(tmp_path, "SELECT message FROM logs")]
    assert any(m.endswith("orders.csv") and m.startswith("21 ") for m in logged)
    assert "Loaded 20 orders as batch orders-" in first.stdout


def test_the_caching_example_reuses_its_results_for_the_same_parameters(
    tmp_path: Path,
) -> None:
    done = run_example(tmp_path, "12_caching.py")

    assert done.returncode == 0, done.stderr
    calls = query(
        tmp_path, "SELECT message FROM logs WHERE message LIKE 'Calling%' ORDER BY id"
    )
    assert calls == [
        ("Calling the rates service for EUR",),
        ("Calling the rates service for USD",),
    ]
    transform = query(
        tmp_path,
        "SELECT t.state_message FROM task_runs t JOIN flow_runs f ON f.id ="
        " t.flow_run_id WHERE t.task_slug = 'transform-1' ORDER BY f.created_at",
    )
    assert transform[1][0].startswith("Result found at task target")
    targets = sorted(p.name for p in tmp_path.glob("results/caching/*/*.json"))
    assert targets == ["EUR.json", "USD.json"]


def test_the_demo_flow_runs_through_the_cli(tmp_path: Path) -> None:
    done = durable(tmp_path, "run", "examples/demo_etl.py")

    assert done.returncode == 0, done.stderr
    output = json.loads((tmp_path / "etl-output.json").read_text())
    assert len(output["rows"]) == 20
    attempts = dict(query(tmp_path, "SELECT task_slug, attempts FROM task_runs"))
    assert attempts["fetch_rates-1"] == 2  # the rates service fails every first attempt


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`make demo`'s driver, run once: run, SIGKILL during transform, resume, summary."""
    home = tmp_path_factory.mktemp("demo-home")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")],
        cwd=ROOT, env=example_env(home, "0.2"), capture_output=True, text=True,
        timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    return home, done


def summary_line(output: str, start: str) -> str:
    """The demo's summary line that starts with `start`."""
    return next(line.strip() for line in output.splitlines() if start in line)


def test_the_demo_resumes_the_killed_run_and_says_what_it_skipped(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    home, done = demo

    assert done.returncode == 0, done.stdout + done.stderr
    skipped = summary_line(done.stdout, "skipped (finished before the crash")
    assert "extract-1" in skipped.split(": ", 1)[1].split(", ")
    ran = summary_line(done.stdout, "ran after the resume: transform-1 -> Success")
    [(attempts,)] = query(
        home, "SELECT attempts FROM task_runs WHERE task_slug = 'transform-1'"
    )
    assert ran.endswith(f"(attempt {attempts})")  # the summary tells the truth


def test_the_demo_shows_transform_rerun_as_its_second_attempt(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, done = demo

    assert "ran after the resume: transform-1 -> Success (attempt 2)" in done.stdout
