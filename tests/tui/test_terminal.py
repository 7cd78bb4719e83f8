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
        pane = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                              check=False, capture_output=True, text=True).stdout  # fmt: skip
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
        wait_for_pane(
            session,
            lambda p: all(f"run{i}" in p for i in range(4)) and "✗ Failed" in p,
            "the run list with its four runs, one failed",
        )
        tmux("send-keys", "-t", session, "j", "Enter")  # run2: the failed one
        wait_for_pane(
            session,
            lambda p: all(s in p for s in ("run run2", "extract-1", "broken-1")),
            "run2's header and its two task runs",
        )
        tmux("send-keys", "-t", session, "q", "q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False,
                       capture_output=True)  # fmt: skip
