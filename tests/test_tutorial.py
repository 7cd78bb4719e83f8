"""docs/tutorial.md works as written: every `$ ` command of its console blocks runs, in
order, in a fresh copy of the repository with a DURABLE_HOME of its own.

Each command runs in a new `bash -c`, with its output (stdout and stderr together, as a
terminal shows them) kept for the commands after it. What is not run literally, and why:

- `git clone <repository-url> DIR` copies this repository's examples, Makefile and
  pyproject.toml into DIR, with `.venv` linked to the virtual environment running the
  tests (the tests must not clone over the network or install anything).
- `make demo` runs the Makefile's `demo` recipe, `.venv/bin/python examples/demo.py`,
  without its install prerequisite; the test checks that the recipe is still that.
- `cd DIR` changes the folder the next commands run in (each runs in a new shell).
- `source .venv/bin/activate` runs as written; since the next commands run in new
  shells, they get its effect (the environment's `bin` first on PATH) from the test.
- `durable tui` runs in a headless tmux terminal, where the test presses the keys the
  tutorial describes and quits with `q` (with `durable tui --help` instead if tmux is
  missing).

Placeholders: a word in angle brackets (`<demo-run-id>`) stands for something an earlier
command printed, as the tutorial says; PLACEHOLDERS maps each one to a pattern, and the
test substitutes the newest earlier output that matches it. A command must exit 0 unless
EXPECTED_EXIT says otherwise, and print what CLAIMS says (what the tutorial's prose says
it shows). ETL_STEP_SECONDS=0.2 makes the demo's steps shorter than its 0.6 s default.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
VENV = Path(sys.executable).parent.parent
CONSOLE = re.compile(r"```console\n(.*?)```", re.DOTALL)
PLACEHOLDER = re.compile(r"<[a-z][a-z-]*>")

PLACEHOLDERS = {"<demo-run-id>": re.compile(r"\b(demo-[0-9a-f]{6})\b")}
"""Each placeholder of the tutorial, and where an earlier output shows its value."""

EXPECTED_EXIT = {
    # The example kills its own process with SIGKILL: bash reports 137 (128 + 9).
    "durable run examples/09_crash_and_resume.py --run-id crash-1": {137, -9},
}
"""Commands that must end with another exit status than 0."""

CLAIMS = {
    "make demo": [r"ran after the resume: transform-1 -> Success \(attempt 2\)"],
    "durable show <demo-run-id> --no-history": [r"transform-1\s+Success\s+2\s"],
    "python examples/01_plain_etl.py": [r"DE\s+2912\.30"],
    "durable show my-first-run": [r"load-1\s+Success\s+1\s", "State history"],
    "durable show usd-report --no-history": [
        r'Parameters \{"currency": "USD", "min_amount": 100\}'
    ],
    "durable show flaky": [r"fetch_rates-1\s+Success\s+3\s", "Retrying"],
    "python examples/05_schedule.py": [
        r"(?s)(wrote etl-schedule-.*){3}The schedule has no more runs"
    ],
    "python examples/06_dask.py": [r"ran in the worker processes \[\d+, \d+\]"],
    "python examples/07_conditions.py": [
        "review_limit=1000: sent to a reviewer: orders 1007, 1011, 1019",
        "review_limit=5000: approved automatically",
    ],
    "python examples/08_mapping.py": ["country_report ran as 6 task runs"],
    "durable approve weekly publish-1": ["Published published-weekly.json"],
    "durable logs warehouse": [r"count_lines-1 .* 21 \S+orders\.csv"],
    "python examples/12_caching.py": [r"(?s)Run 2 \(EUR\):\n  fetch_rates  Cached"],
    "timeout --preserve-status --signal=INT 6 durable worker": [
        r"(?s)(wrote etl-schedule-.*){3}"
    ],
    "durable schedule runs etl-schedule": [r"(?s)(Finished.*){3}"],
    "durable worker --burst": ["wrote etl-schedule-"],
    "durable show crash-1 --no-history": [r"load-1\s+Running\s+1\s"],
    "durable resume crash-1": [
        "2 task runs had finished and were not run again; 1 ran now"
    ],
    "durable show crash-1": [r"extract-1\s+Success\s+1\s", r"load-1\s+Success\s+2\s"],
}
"""What a command must print: regular expressions, from what the tutorial says."""

COMMAND_SECONDS = 60


def commands(text: str) -> list[str]:
    """The `$ ` commands of the console blocks of `text`, in order."""
    return [
        line.removeprefix("$ ").split("  #")[0].strip()
        for block in CONSOLE.findall(text)
        for line in block.splitlines()
        if line.startswith("$ ")
    ]


@dataclass
class Session:
    """A newcomer's terminal: a folder, an environment and what was printed so far."""

    cwd: Path
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)

    def substitute(self, command: str) -> str:
        """Replace each placeholder with the value the newest matching output shows."""
        for placeholder in PLACEHOLDER.findall(command):
            assert placeholder in PLACEHOLDERS, f"unknown placeholder {placeholder}"
            pattern = PLACEHOLDERS[placeholder]
            found = next(
                (m for out in reversed(self.outputs) if (m := pattern.search(out))),
                None,
            )
            assert found is not None, f"no earlier output shows {placeholder}"
            command = command.replace(placeholder, found[1])
        return command

    def shell(self, command: str) -> tuple[int, str]:
        """Run `command` in a new bash, as typed at the prompt."""
        done = subprocess.run(
            ["bash", "-c", command], cwd=self.cwd, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=COMMAND_SECONDS, check=False,
        )  # fmt: skip
        return done.returncode, done.stdout


def clone(session: Session, folder: str) -> tuple[int, str]:
    """`git clone`, from this repository: the files the tutorial uses, and the venv."""
    target = session.cwd / folder
    shutil.copytree(
        ROOT / "examples",
        target / "examples",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    (target / ".venv").symlink_to(VENV, target_is_directory=True)
    return 0, f"Cloning into '{folder}'...\n"


def make_demo(session: Session) -> tuple[int, str]:
    """`make demo` without its install step: the recipe's own command."""
    makefile = (session.cwd / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert recipe is not None, "the Makefile has no demo target"
    assert recipe[1] == "$(BIN)/python examples/demo.py", recipe[1]
    return session.shell(".venv/bin/python examples/demo.py")


def tmux(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, check=False
    )


def wait_for_pane(socket: str, shows: Callable[[str], bool], what: str) -> str:
    """Poll the tmux pane until it `shows` what is expected (20 s at most)."""
    deadline = time.monotonic() + 20
    while True:
        pane = tmux(socket, "capture-pane", "-p", "-t", "tui").stdout
        if shows(pane):
            return pane
        assert time.monotonic() < deadline, f"the TUI never showed {what}:\n{pane}"
        threading.Event().wait(0.1)


def terminal_ui(session: Session) -> tuple[int, str]:
    """`durable tui` in tmux: open the demo's run, go back and quit with `q`."""
    if shutil.which("tmux") is None:
        return session.shell("durable tui --help")
    demo_run = session.substitute("<demo-run-id>")
    socket = f"durable-tutorial-{uuid.uuid4().hex[:8]}"
    env = " ".join(
        f"{name}={shlex.quote(session.env[name])}" for name in ("DURABLE_HOME", "PATH")
    )
    tmux(socket, "new-session", "-d", "-s", "tui", "-x", "120", "-y", "40",
         "-c", str(session.cwd), f"env {env} durable tui")  # fmt: skip
    try:
        runs = wait_for_pane(socket, lambda p: demo_run in p, "the demo's run")
        tmux(socket, "send-keys", "-t", "tui", "Enter")
        tasks = wait_for_pane(
            socket, lambda p: "transform-1" in p and "Tries" in p, "the run's tasks"
        )
        for tried_twice in ("fetch_rates-1", "transform-1"):  # as the tutorial says
            assert re.search(rf"{tried_twice}\s+2\s", tasks), tasks
        tmux(socket, "send-keys", "-t", "tui", "q")
        wait_for_pane(socket, lambda p: "Runs ·" in p, "the Runs screen again")
        tmux(socket, "send-keys", "-t", "tui", "q")
        wait_for_pane(
            socket,
            lambda _: tmux(socket, "has-session", "-t", "tui").returncode != 0,
            "the end of the TUI after q",
        )
    finally:
        tmux(socket, "kill-server")
    return 0, f"{runs}\n{tasks}"


def run(session: Session, typed: str) -> tuple[int, str]:
    """Run one command of the tutorial as a newcomer would."""
    if cloned := re.fullmatch(r"git clone \S+ (\S+)", typed):
        return clone(session, cloned[1])  # <repository-url>: this repository
    command = session.substitute(typed)
    if moved := re.fullmatch(r"cd (\S+)", command):
        session.cwd = session.cwd / moved[1]
        return (0, "") if session.cwd.is_dir() else (1, f"no folder {session.cwd}")
    if command == "make demo":
        return make_demo(session)
    if command == "durable tui":
        return terminal_ui(session)
    code, output = session.shell(command)
    if command == "source .venv/bin/activate" and code == 0:
        session.env["PATH"] = f"{session.cwd / '.venv' / 'bin'}:{session.env['PATH']}"
        session.env["VIRTUAL_ENV"] = str(session.cwd / ".venv")
    return code, output


def test_the_claims_and_exceptions_name_commands_of_the_tutorial() -> None:
    typed = commands(TUTORIAL.read_text())

    assert set(CLAIMS) <= set(typed), set(CLAIMS) - set(typed)
    assert set(EXPECTED_EXIT) <= set(typed), set(EXPECTED_EXIT) - set(typed)


def test_the_tutorial_walks_through_every_numbered_example() -> None:
    text = TUTORIAL.read_text()
    numbered = sorted(p.name for p in (ROOT / "examples").glob("[0-9]*.py"))

    assert numbered
    assert [name for name in numbered if f"examples/{name}" not in text] == []


@pytest.mark.timeout(180)
def test_every_command_of_the_tutorial_runs_in_order(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DURABLE_DB", "VIRTUAL_ENV")
    }
    # A newcomer's ~/.durable does not exist yet: durable creates it.
    env.update(DURABLE_HOME=str(tmp_path / "home" / ".durable"), ETL_STEP_SECONDS="0.2")
    session = Session(cwd=tmp_path, env=env)
    typed = commands(TUTORIAL.read_text())
    assert len(typed) > 30, "the tutorial lost its commands"

    for command in typed:
        code, output = run(session, command)
        session.outputs.append(output)

        expected = EXPECTED_EXIT.get(command, {0})
        assert code in expected, f"$ {command}\nexited {code}:\n{output}"
        for claim in CLAIMS.get(command, []):
            assert re.search(claim, output), (
                f"$ {command}\ndoes not show {claim!r}:\n{output}"
            )
