"""Every file in examples/ runs, as a user would run it, on a temporary database."""

from __future__ import annotations

import json
import os
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
    "approval.py",
    "caching.py",
    "conditionals.py",
    "demo.py",
    "etl.py",
    "mapping.py",
}
"""The example files the tests below run; a new example needs a test and a name here."""

TIMEOUT_SECONDS = 60


def example_env(home: Path, step_seconds: str) -> dict[str, str]:
    """The environment of an example's process: its own DURABLE_HOME, quick steps."""
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DB"}
    env.update(DURABLE_HOME=str(home), ETL_STEP_SECONDS=step_seconds)
    return env


def durable(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `durable` command from the repository root, on `home`'s database."""
    return subprocess.run(
        [sys.executable, "-m", "durable", "--db", str(home / "durable.db"), *args],
        cwd=ROOT, env=example_env(home, "0"), capture_output=True, text=True,
        timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip


def query(home: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read `home`'s database directly."""
    with closing(sqlite3.connect(home / "durable.db")) as conn:
        return conn.execute(sql).fetchall()


def test_every_example_file_is_run_by_a_test() -> None:
    present = {p.name for p in EXAMPLES.iterdir() if p.is_file()}

    assert present == COVERED, "add a test for each new file in examples/"


def test_the_etl_example_runs_through_the_cli(tmp_path: Path) -> None:
    done = durable(tmp_path, "run", "examples/etl.py")

    assert done.returncode == 0, done.stderr
    output = json.loads((tmp_path / "etl-output.json").read_text())
    assert len(output["rows"]) == 100
    attempts = dict(query(tmp_path, "SELECT task_slug, attempts FROM task_runs"))
    assert attempts["fetch_rates-1"] == 2  # the rates service fails every first attempt


def test_the_conditionals_example_takes_the_review_branch_for_a_large_amount(
    tmp_path: Path,
) -> None:
    done = durable(tmp_path, "run", "examples/conditionals.py", "-p", "amount=5000")

    assert done.returncode == 0, done.stderr
    states = dict(query(tmp_path, "SELECT task_slug, state FROM task_runs"))
    assert states["approve-1"] == "Skipped"
    assert states["send_to_reviewer-1"] == "Success"
    logged = [m for (m,) in query(tmp_path, "SELECT message FROM logs")]
    assert "Order decision: 5000.00 sent to a reviewer" in logged


def test_the_conditionals_example_runs_as_a_script(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "examples/conditionals.py"],
        cwd=ROOT, env=example_env(tmp_path, "0"), capture_output=True, text=True,
        timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "Order decision: 120.00 approved automatically" in done.stderr
    assert (tmp_path / "durable.db").exists()


def test_the_approval_example_pauses_and_publishes_once_approved(
    tmp_path: Path,
) -> None:
    paused = durable(tmp_path, "run", "examples/approval.py", "--run-id", "r1")
    state_while_paused = query(tmp_path, "SELECT state FROM flow_runs")
    approved = durable(tmp_path, "approve", "r1", "publish-1")

    assert paused.returncode == 0, paused.stderr
    assert state_while_paused == [("Paused",)]
    assert "durable approve r1 publish-1" in paused.stderr
    assert approved.returncode == 0, approved.stderr
    assert query(tmp_path, "SELECT task_slug, state, attempts FROM task_runs") == [
        ("prepare-1", "Success", 1),
        ("publish-1", "Success", 1),
    ]


def test_the_mapping_example_runs_one_task_run_per_page(tmp_path: Path) -> None:
    done = durable(tmp_path, "run", "examples/mapping.py", "--param", "n_pages=5")

    assert done.returncode == 0, done.stderr
    children = query(
        tmp_path,
        "SELECT task_slug, COUNT(*) FROM task_runs WHERE map_index >= 0"
        " GROUP BY task_slug ORDER BY task_slug",
    )
    assert children == [("fetch-1", 5), ("word_count-1", 5)]
    logged = [m for (m,) in query(tmp_path, "SELECT message FROM logs")]
    assert "5 pages, 10 words" in logged


def test_the_caching_example_reuses_its_results_on_a_second_run(
    tmp_path: Path,
) -> None:
    first = durable(tmp_path, "run", "examples/caching.py", "-p", "city=Oslo")
    second = durable(tmp_path, "run", "examples/caching.py", "-p", "city=Oslo")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    second_run = dict(
        query(
            tmp_path,
            "SELECT task_slug, state FROM task_runs WHERE flow_run_id ="
            " (SELECT id FROM flow_runs ORDER BY created_at DESC LIMIT 1)",
        )
    )
    assert second_run["fetch_forecast-1"] == "Cached"
    assert second_run["summarize-1"] == "Cached"
    calls = query(tmp_path, "SELECT message FROM logs WHERE message LIKE 'Calling%'")
    assert calls == [("Calling the weather service for Oslo",)]
    assert list(tmp_path.glob("results/forecast/*/Oslo.json"))


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
