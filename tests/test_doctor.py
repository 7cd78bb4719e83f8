"""`durable doctor` (issue 7, RELIABILITY E4, E5, H1): it reports what is wrong, says what
to do, exits 0/1/3, and never changes a damaged file."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from durable import Flow, task
from durable.doctor import Level, examine, exit_code, is_wal_reset_fixed
from durable.liveness import process_token
from durable.store.results import results_directory
from durable.store.schema import SCHEMA_VERSION
from tests.cli.test_cli import durable


@task
def one() -> int:
    return 1


@pytest.fixture
def healthy(tmp_path: Path) -> Path:
    db = tmp_path / "ok.db"
    with Flow("tiny") as flow:
        one()
    assert flow.run(db=db, run_id="r1").is_successful()
    return db


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("version", "fixed"),
    [
        ((3, 40, 1), False),
        ((3, 44, 5), False),
        ((3, 44, 6), True),
        ((3, 45, 0), False),
        ((3, 50, 6), False),
        ((3, 50, 7), True),
        ((3, 51, 2), False),
        ((3, 51, 3), True),
        ((3, 53, 0), True),
    ],
)
def test_the_wal_reset_truth_table(version: tuple[int, int, int], fixed: bool) -> None:
    assert is_wal_reset_fixed(version) is fixed


def test_a_healthy_database_passes_every_check(healthy: Path) -> None:
    result = durable("--db", healthy, "doctor")

    assert result.exit_code == 0, result.output
    for check in ("schema", "integrity", "wal", "runs", "results"):
        assert f"ok       {check}" in result.output
    assert f"Schema version {SCHEMA_VERSION} (current)" in result.output


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "garbage header": lambda data: os.urandom(100) + data[100:],
    "zero length": lambda data: b"",
    "truncated to half": lambda data: data[: len(data) // 2],
    "a jpeg": lambda data: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(4000),
}


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_a_damaged_file_is_reported_unusable_and_left_as_it_was(
    healthy: Path, damage: str
) -> None:
    with closing(sqlite3.connect(healthy)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    healthy.write_bytes(CORRUPTIONS[damage](healthy.read_bytes()))
    before = sha(healthy)

    result = durable("--db", healthy, "doctor")

    assert result.exit_code == 3, result.output
    assert "PROBLEM" in result.output
    assert "backup" in result.output
    assert sha(healthy) == before


def test_garbage_in_a_page_is_found_by_integrity_check(tmp_path: Path) -> None:
    db = tmp_path / "pages.db"
    with Flow("wide") as flow:
        for _ in range(200):
            one()
    flow.run(db=db)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    for start in range(
        page, len(data), page
    ):  # every page's b-tree header but page 1's
        data[start : start + 12] = os.urandom(12)
    db.write_bytes(bytes(data))

    report = examine(db)

    integrity = next(f for f in report.findings if f.check == "integrity")
    assert integrity.level is Level.PROBLEM
    assert exit_code(report) == 3


def test_a_database_from_a_newer_durable_is_refused(healthy: Path) -> None:
    with closing(sqlite3.connect(healthy)) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    result = durable("--db", healthy, "doctor")
    assert result.exit_code == 3
    assert "newer than this durable's" in result.output
    assert "upgrade durable" in result.output


def test_a_run_whose_process_died_is_reported_with_how_to_resume(healthy: Path) -> None:
    with closing(sqlite3.connect(healthy)) as conn, conn:
        conn.execute(
            "UPDATE flow_runs SET state = 'Running', pid = ?, pid_started = ?"
            " WHERE id = 'r1'",
            (999_999_999, process_token(999_999_999)),  # this host, no such process
        )

    report = examine(healthy)

    runs = next(f for f in report.findings if f.check == "runs")
    assert runs.level is Level.WARNING
    assert "r1" in runs.message
    assert runs.advice.endswith("durable resume r1")
    assert exit_code(report) == 0  # a warning: the run is resumable


def test_orphaned_result_files_are_listed_and_removed_only_when_asked(
    healthy: Path,
) -> None:
    directory = results_directory(healthy)
    directory.mkdir(exist_ok=True)
    orphan = directory / "deadbeef-0000000000000000"
    orphan.write_bytes(b"x" * 2048)
    os.utime(orphan, (0, 0))  # old enough not to be a commit on its way

    first = durable("--db", healthy, "doctor")
    assert first.exit_code == 0
    assert "1 orphaned result file(s)" in first.output
    assert "durable doctor --remove-orphans" in first.output
    assert orphan.exists()

    second = durable("--db", healthy, "doctor", "--remove-orphans")
    assert "removed" in second.output
    assert not orphan.exists()


def test_a_missing_database_is_unusable(tmp_path: Path) -> None:
    result = durable("--db", tmp_path / "none.db", "doctor")
    assert result.exit_code == 3
    assert "No database at" in result.output
    assert not (tmp_path / "none.db").exists()
