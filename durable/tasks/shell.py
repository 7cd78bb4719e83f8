"""Run commands in a child process, as Prefect 1's `prefect.tasks.shell.ShellTask`.

A command is an argv list run without a shell unless `shell=` asks for one, so arguments
taken from parameters or upstream results cannot inject shell code. Output is streamed to
the task run's log line by line while the command runs, and a timeout or a cancelled run
kills the command's whole process group.
"""

from __future__ import annotations

import codecs
import logging
import os
import shlex
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Unpack

import anyio
from anyio.abc import ByteReceiveStream, Process

from durable import context, signals
from durable.core.task import Task, TaskOptions

__all__ = ["ShellTask"]

logger = logging.getLogger(__name__)

STDERR_TAIL = 10
"""How many of the last stderr lines a failure message quotes."""

Command = str | Sequence[str]


class ShellTask(Task):
    """Run a command and return the last line of its stdout.

    The command runs without a shell by default: a list is the argv as is, and a string
    is split with `shlex.split` (so quotes group words, but `;`, `|`, `$VAR` and globs are
    plain text). `shell=True` runs a string through `/bin/sh -c` (a list is quoted back
    into one string with `shlex.join`), and `shell="bash"` names the shell to use. The
    command's stdin is empty (`/dev/null`), so it cannot wait for input.

    While the command runs, each stdout line is logged to the task run's logger and each
    stderr line to its `.stderr` child logger, both at INFO (`stream_output` may name
    another level, or False to stay quiet). stderr is not logged at WARNING because many
    tools write progress there; the logger name tells the two streams apart. A non-zero
    exit code fails the task run (a `FAIL` signal) with a message that names the command,
    the code and the last stderr lines; `log_stderr=True` also logs the whole of stderr
    at ERROR then, as in Prefect 1.

    As in Prefect 1, the values given here are defaults that `run()` arguments override;
    `env` given to `run()` is merged over the one given here, over `os.environ`.

    A timeout (`timeout=`) or a cancelled run kills the command's process group, so its
    children die with it. Under `ProcessExecutor`, a timeout kills the worker running
    the task before this task can react, and the command may outlive it.

    ```python
    with Flow("shell") as flow:
        today = ShellTask(["date", "+%F"])()
    ```

    Args:
        command: The command: an argv list, or a string (see above).
        env: Environment variables set for the command, over `os.environ`.
        helper_script: Shell code run before the command, in the same shell (say, to
            `cd` or `source` something). It always runs through the shell; an argv
            command is then quoted with `shlex.join`, so its arguments stay inert.
        shell: False (no shell), True (`/bin/sh`) or the path or name of a shell.
        return_all: Return every stdout line as a list instead of the last one.
        log_stderr: On failure, log the command's whole stderr at ERROR.
        stream_output: Log output lines as they come: True (at INFO), a level
            (`logging.DEBUG` or `"DEBUG"`), or False.
        cwd: The directory to run the command in (default: the current one).
        **task_kwargs: Task options (`name`, `max_retries`, `timeout`, ...).
    """

    def __init__(
        self,
        command: Command | None = None,
        *,
        env: Mapping[str, str] | None = None,
        helper_script: str | None = None,
        shell: bool | str = False,
        return_all: bool = False,
        log_stderr: bool = False,
        stream_output: bool | int | str = True,
        cwd: str | os.PathLike[str] | None = None,
        **task_kwargs: Unpack[TaskOptions],
    ) -> None:
        self.command = command
        """The default command."""
        self.env = dict(env or {})
        """Environment variables set over `os.environ`."""
        self.helper_script = helper_script
        """Shell code run before the command."""
        self.shell = shell
        """False, True (`/bin/sh`) or the shell to run string commands with."""
        self.return_all = return_all
        """Return every stdout line, not only the last."""
        self.log_stderr = log_stderr
        """Log the whole stderr at ERROR when the command fails."""
        self.stream_level = _stream_level(stream_output)
        """The level output lines are logged at, or None to not log them."""
        self.cwd = cwd
        """The directory the command runs in (None: the current one)."""
        super().__init__(**task_kwargs)

    async def run(
        self,
        command: Command | None = None,
        env: Mapping[str, str] | None = None,
        helper_script: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Any:
        """Run the command; return its last stdout line (None if it printed nothing).

        With `return_all=True`, return the list of every stdout line instead.

        Raises:
            FAIL: The command exited with a non-zero code.
            ValueError: There is no command.
        """
        argv, shown = self._argv(
            self.command if command is None else command,
            self.helper_script if helper_script is None else helper_script,
        )
        run_logger: logging.Logger = context.get("logger") or logger
        output = _Output(self.return_all, self.log_stderr)
        code = await _run_process(
            argv,
            env={**os.environ, **self.env, **(env or {})},
            cwd=self.cwd if cwd is None else cwd,
            on_stdout=self._emitter(run_logger, output.stdout),
            on_stderr=self._emitter(run_logger.getChild("stderr"), output.stderr),
        )
        if code != 0:
            self._fail(shown, code, output, run_logger)
        return output.lines if self.return_all else output.last

    def _argv(
        self, command: Command | None, helper_script: str | None
    ) -> tuple[list[str], str]:
        """Return the argv that runs `command`, and the command as a message shows it."""
        if command is None or not command:
            raise ValueError(
                f"ShellTask {self.name!r} has no command to run; pass one to "
                "ShellTask(...) or when calling the task"
            )
        if not self.shell and not helper_script:
            argv = shlex.split(command) if isinstance(command, str) else list(command)
            return self._refuse_nul(argv), shlex.join(argv)
        if isinstance(command, str):
            script = command if self.shell else shlex.join(shlex.split(command))
        else:
            script = shlex.join(command)
        if helper_script:
            script = f"{helper_script}\n{script}"
        shell = self.shell if isinstance(self.shell, str) else "/bin/sh"
        return self._refuse_nul([shell, "-c", script]), script

    def _refuse_nul(self, argv: list[str]) -> list[str]:
        """Refuse an argument with a NUL byte: a program's argv strings end at NUL, so
        it would get another argument than the one given (subprocess refuses it too)."""
        for arg in argv:
            if "\0" in str(arg):
                raise ValueError(
                    f"ShellTask {self.name!r}: argument {arg!r} holds a NUL byte, which "
                    "no command can receive; remove it from the argument"
                )
        return argv

    def _emitter(
        self, log: logging.Logger, keep: Callable[[str], None]
    ) -> Callable[[str], None]:
        level = self.stream_level
        if level is None:
            return keep

        def emit(line: str) -> None:
            keep(line)
            log.log(level, "%s", line)

        return emit

    def _fail(
        self, shown: str, code: int, output: _Output, run_logger: logging.Logger
    ) -> None:
        if self.log_stderr and output.all_stderr:
            run_logger.error("Command stderr:\n%s", "\n".join(output.all_stderr))
        tail = "\n".join(output.stderr_tail)
        raise signals.FAIL(
            f"Command `{shown}` failed with exit code {code}"
            + (f"; last stderr lines:\n{tail}" if tail else " (no stderr output)")
        )


def _stream_level(stream_output: bool | int | str) -> int | None:
    if stream_output is True:
        return logging.INFO
    if stream_output is False:
        return None
    if isinstance(stream_output, str):
        level = logging.getLevelName(stream_output.upper())
        if not isinstance(level, int):
            raise ValueError(  # noqa: TRY004 (a bad value, not a bad type)
                f"stream_output={stream_output!r} is not a logging level; "
                "use True, False, or a level such as 'DEBUG'"
            )
        return level
    return stream_output


class _Output:
    """What a run keeps of the command's output."""

    def __init__(self, keep_all: bool, keep_all_stderr: bool) -> None:
        self.lines: list[str] = []
        self.last: str | None = None
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self.all_stderr: list[str] = []
        self._keep_all, self._keep_all_stderr = keep_all, keep_all_stderr

    def stdout(self, line: str) -> None:
        self.last = line
        if self._keep_all:
            self.lines.append(line)

    def stderr(self, line: str) -> None:
        self.stderr_tail.append(line)
        if self._keep_all_stderr:
            self.all_stderr.append(line)


async def _run_process(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None,
    on_stdout: Callable[[str], None],
    on_stderr: Callable[[str], None],
) -> int:
    """Run `argv` to its end, passing each output line on; return its exit code.

    The child leads a process group of its own: if this coroutine is cancelled (a
    timeout, a cancelled run), the whole group is killed before it returns.
    """
    # Shielded: a cancel while the child starts up would leave it running unowned.
    with anyio.CancelScope(shield=True):
        process = await anyio.open_process(
            argv,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=Path(cwd) if cwd is not None else None,
            start_new_session=sys.platform != "win32",
        )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        async with anyio.create_task_group() as group:
            group.start_soon(_read_lines, process.stdout, on_stdout)
            group.start_soon(_read_lines, process.stderr, on_stderr)
        return await process.wait()
    finally:
        if process.returncode is None:
            _kill_group(process)
        with anyio.CancelScope(shield=True):
            await process.aclose()


def _kill_group(process: Process) -> None:
    if sys.platform == "win32":
        process.kill()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended (and was reaped) meanwhile
        pass


async def _read_lines(
    stream: ByteReceiveStream, on_line: Callable[[str], None]
) -> None:
    """Pass each line of `stream` on as it arrives, without its line ending."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    rest = ""
    async for chunk in stream:
        *lines, rest = (rest + decoder.decode(chunk)).split("\n")
        for line in lines:
            on_line(line.removesuffix("\r"))
    rest += decoder.decode(b"", final=True)
    if rest:
        on_line(rest.removesuffix("\r"))
