"""Every compat snippet runs on a database of its own (through DURABLE_DB)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The database every `flow.run()` of a snippet uses (through DURABLE_DB)."""
    path = tmp_path / "compat.db"
    monkeypatch.setenv("DURABLE_DB", str(path))
    return path
