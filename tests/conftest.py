"""Shared fixtures: the asyncio backend, a fake clock, a database file per test."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

from durable.timesource import FakeTime


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """aiosqlite and Textual run on asyncio only."""
    return "asyncio"


@pytest.fixture
def fake_time() -> FakeTime:
    """A clock that moves only when the test says so."""
    return FakeTime(pendulum.datetime(2026, 1, 1, tz="UTC"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database path of the test's own (the file is created on first use)."""
    return tmp_path / "durable.db"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's ~/.durable."""
    monkeypatch.setenv("DURABLE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DURABLE_DB", raising=False)
