"""ShellTask: real child processes, run directly and inside flows."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable import Flow, Parameter, signals, task
from durable.store.repository import Store
from durable.tasks.shell import ShellTask

PYTHON = sys.executable


def python(code: str) -> list[str]:
    """The argv that runs `code` with this interpreter."""
    return [PYTHON, "-c", code]


async def run(shell_task: ShellTask, **kwargs: Any) -> Any:
    return await shell_task.run(**kwargs)


def is_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie left for a non-reaping init counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: ask the kernel instead
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_until_dead(pid: int) -> None:
    """Return once `pid` is dead; SIGKILL lands at once, but not synchronously."""
    with anyio.fail_after(2):
        while is_alive(pid):
            await anyio.lowlevel.checkpoint()


def read_text(path: Path) -> str:
    """The file's text, or "" while it does not exist."""
    return path.read_text() if path.exists() else ""


def entries(path: Path) -> list[str]:
    """The names in directory `path`."""
    return sorted(item.name for item in path.iterdir())


def same_directory(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


async def read_pid(path: Path) -> int:
    """Wait for a shell to write a pid into `path`, and return it."""
    with anyio.fail_after(5):
        while not (text := read_text(path)).endswith("\n"):
            await anyio.lowlevel.checkpoint()
    return int(text)


class TestCommands:
    async def test_an_argv_list_returns_the_last_stdout_line(self) -> None:
        assert await run(ShellTask(python("print('a'); print('b')"))) == "b"

    async def test_return_all_returns_every_stdout_line(self) -> None:
        task = ShellTask(python("print('a'); print('b')"), return_all=True)
        assert await run(task) == ["a", "b"]

    async def test_a_command_that_prints_nothing_returns_none(self) -> None:
        assert await run(ShellTask(python("pass"))) is None

    async def test_shell_true_runs_a_string_through_the_shell(self) -> None:
        task = ShellTask("echo one && echo two | tr a-z A-Z", shell=True)
        assert await run(task) == "TWO"

    async def test_a_string_without_shell_is_split_not_interpreted(self) -> None:
        assert await run(ShellTask("echo 'a b' ; echo c")) == "a b ; echo c"

    async def test_an_injected_argument_in_an_argv_list_is_inert(
        self, tmp_path: Path
    ) -> None:
        task = ShellTask(
            ["echo", "hello; touch pwned", "$(touch pwned2)"], cwd=tmp_path
        )
        assert await run(task) == "hello; touch pwned $(touch pwned2)"
        assert entries(tmp_path) == []

    async def test_a_helper_script_runs_first_and_keeps_argv_arguments_inert(
        self, tmp_path: Path
    ) -> None:
        task = ShellTask(
            ["echo", "$GREETING; touch pwned"],
            helper_script="GREETING=hi; echo from-helper",
            cwd=tmp_path,
            return_all=True,
        )
        assert await run(task) == ["from-helper", "$GREETING; touch pwned"]
        assert entries(tmp_path) == []

    async def test_env_is_merged_over_os_environ_and_run_env_over_init_env(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DURABLE_TEST_OUTER", "outer")
        code = "import os; print(*(os.environ[k] for k in ('DURABLE_TEST_OUTER', 'A', 'B')))"
        task = ShellTask(python(code), env={"A": "init", "B": "init"})
        assert await run(task, env={"B": "run"}) == "outer init run"

    async def test_cwd_sets_the_working_directory(self, tmp_path: Path) -> None:
        task = ShellTask(python("import os; print(os.getcwd())"), cwd=tmp_path)
        assert same_directory(await run(task), tmp_path)

    async def test_run_arguments_override_init_values(self) -> None:
        task = ShellTask(python("print('init')"))
        assert await run(task, command=python("print('run')")) == "run"

    async def test_no_command_is_an_error_naming_the_task(self) -> None:
        with pytest.raises(ValueError, match="'ShellTask' has no command"):
            await run(ShellTask())


class TestFailures:
    async def test_a_non_zero_exit_fails_naming_command_code_and_stderr(self) -> None:
        code = "import sys; sys.stderr.write('first\\nboom\\n'); sys.exit(3)"
        with pytest.raises(signals.FAIL) as caught:
            await run(ShellTask(python(code)))
        message = str(caught.value)
        assert "exit code 3" in message
        assert PYTHON in message
        assert message.endswith("first\nboom")

    async def test_log_stderr_logs_the_whole_stderr_at_error_on_failure(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        code = "import sys; sys.stderr.write('why it broke\\n'); sys.exit(1)"
        task = ShellTask(python(code), log_stderr=True, stream_output=False)
        with caplog.at_level(logging.INFO), pytest.raises(signals.FAIL):
            await run(task)
        assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
            (logging.ERROR, "Command stderr:\nwhy it broke")
        ]

    async def test_cancelling_kills_the_whole_process_group(
        self, tmp_path: Path
    ) -> None:
        pid_file = tmp_path / "pid"
        # The shell starts a grandchild and waits on it: both must die.
        task = ShellTask(f"sleep 30 & echo $! > {pid_file}; wait", shell=True)
        async with anyio.create_task_group() as group:
            group.start_soon(run, task)
            grandchild = await read_pid(pid_file)
            assert is_alive(grandchild)
            group.cancel_scope.cancel()
        await wait_until_dead(grandchild)


class TestInFlows:
    def test_streamed_lines_land_in_the_run_logs(self, db: Path) -> None:
        code = "import sys; print('to stdout'); sys.stderr.write('to stderr\\n')"
        with Flow("shell") as flow:
            ShellTask(python(code), name="say")()
        state = flow.run(db=db, run_id="r1")
        assert state.is_successful()

        async def logs() -> list[tuple[str, int, str]]:
            store = await Store.open(db)
            try:
                return [
                    (r.logger, r.level, r.message) for r in await store.list_logs("r1")
                ]
            finally:
                await store.close()

        found = anyio.run(logs)
        assert ("durable.task.say", logging.INFO, "to stdout") in found
        assert ("durable.task.say.stderr", logging.INFO, "to stderr") in found

    def test_a_parameter_feeds_the_command_and_the_result_flows_on(
        self, db: Path
    ) -> None:
        @task
        def echo_argv(word: str) -> list[str]:
            return ["echo", word]

        with Flow("shell") as flow:
            echoed = ShellTask(return_all=True)(command=echo_argv(Parameter("word")))
        state = flow.run(db=db, word="; touch pwned")
        assert state.result[echoed].result == ["; touch pwned"]

    def test_a_timeout_kills_the_child_within_the_timeout(
        self, db: Path, tmp_path: Path
    ) -> None:
        pid_file = tmp_path / "pid"
        with Flow("slow") as flow:
            slow = ShellTask(f"echo $$ > {pid_file}; exec sleep 30", shell=True,
                             timeout=0.5)()  # fmt: skip
        started = time.monotonic()
        state = flow.run(db=db)
        assert time.monotonic() - started < 0.5 + 2
        assert state.result[slow].is_failed()
        anyio.run(wait_until_dead, int(pid_file.read_text()))
