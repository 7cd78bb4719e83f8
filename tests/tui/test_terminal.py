"""`durable tui` in a real terminal: tmux runs it on a seeded database, keys are sent, and
the captured pane shows the run list, then a run's tasks (TUI acceptance smoke test)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from durable.timesource import SYSTEM_TIME
from tests.tui.test_app import seed
from tests.worker.processes import pause

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def tmux(*args: str) -> str:
    done = subprocess.run(["tmux", *args], check=True, capture_output=True, text=True)
    return done.stdout


def wait_for_pane(session: str, shows: Callable[[str], bool], what: str) -> str:
    deadline = SYSTEM_TIME.timestamp() + 20
    while True:
        pane = tmux("capture-pane", "-p", "-t", session)
        if shows(pane):
            return pane
        assert SYSTEM_TIME.timestamp() < deadline, f"never showed {what}:\n{pane}"
        pause(0.1)


@pytest.mark.timeout(60)
def test_the_tui_shows_runs_then_a_runs_tasks_in_tmux(tmp_path: Path) -> None:
    db = tmp_path / "tui.db"
    anyio.run(seed, db)
    session = f"durable-{uuid.uuid4().hex[:8]}"
    command = f"{sys.executable} -m durable --db {db} tui --read-only"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", command)
    try:
        pane = wait_for_pane(session, lambda p: "run3" in p, "the run list")
        assert all(f"run{i}" in pane for i in range(4))
        assert "✗ Failed" in pane
        tmux("send-keys", "-t", session, "j", "Enter")  # run2: the failed one
        pane = wait_for_pane(session, lambda p: "broken-1" in p, "the run's tasks")
        assert "extract-1" in pane
        assert "run run2" in pane
        tmux("send-keys", "-t", session, "q", "q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False,
                       capture_output=True)  # fmt: skip
