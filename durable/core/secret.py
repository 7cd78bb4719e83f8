"""Secrets: root tasks whose values come from the environment and are never stored.

`Secret("API_TOKEN")` is Prefect 1's `PrefectSecret`/`EnvVarSecret`: a task without
upstream tasks that returns the value of `$DURABLE_SECRET_API_TOKEN` (or of the variable
named by `env=`). The database keeps only its name: the task is never checkpointed, and
every run, a resumed one included, fetches the value again, so a run checks that each of
its secrets is available before anything runs. Once fetched, the value is redacted from
logs, state messages and printed output (`durable.redaction`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from durable import redaction
from durable.core.task import Task
from durable.errors import ConfigurationError, ParameterError

ENV_PREFIX = "DURABLE_SECRET_"
"""Where a secret's value is looked up by default: this prefix and its name."""


class Secret(Task):
    """A value read when the run starts, used by tasks, never stored or logged.

    Args:
        name: The secret's name: the task's name, and (upper-cased, other characters
            than letters and digits as `_`) the end of its environment variable.
        env: The environment variable to read instead of `DURABLE_SECRET_<NAME>`.
        tags: The task's tags.

    Subclass it and override `fetch` to read a vault instead of the environment.
    """

    def __init__(
        self, name: str, env: str | None = None, tags: Iterable[str] | None = None
    ) -> None:
        if not name:
            raise ConfigurationError(f"A secret needs a non-empty name, not {name!r}")
        self.env: str = env or ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
        """The environment variable `fetch` reads."""
        # Never checkpointed: the result row would hold the value.
        super().__init__(name=name, slug=name, tags=tags, checkpoint=False)

    def __repr__(self) -> str:
        return f"<Secret: {self.name}>"

    def fetch(self) -> str | None:
        """Return the secret's value, or None when it is not available."""
        return os.environ.get(self.env)

    def run(self) -> Any:
        """Return the secret's value (and redact it from now on, in this process)."""
        value = self.fetch()
        if value is None:
            raise ParameterError(_missing_message(None, [self]))
        self.register(value)
        return value

    def register(self, value: str) -> None:
        """Redact `value` from now on, or refuse it (not a str, or too short to mask)."""
        try:
            redaction.register(value)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"Secret {self.name!r} ({self.env}): {exc}"
            ) from None


def check_secrets(flow_name: str, tasks: Iterable[Task]) -> None:
    """Fetch every secret of a flow, register its value for redaction, or refuse.

    Called before a run (new or resumed) records or runs anything: a secret that is not
    available fails the run at once, not the first task that needs it.

    Raises:
        ParameterError: Some secrets are not available; names them and their variables.
    """
    missing = []
    for task in tasks:
        if isinstance(task, Secret):
            value = task.fetch()
            if value is None:
                missing.append(task)
            else:
                task.register(value)
    if missing:
        raise ParameterError(_missing_message(flow_name, missing))


def _missing_message(flow_name: str | None, missing: list[Secret]) -> str:
    of = f"Flow {flow_name!r} needs" if flow_name else "Needs"
    names = ", ".join(repr(s.name) for s in missing)
    variables = ", ".join(s.env for s in missing)
    return (
        f"{of} secret(s) {names}, which are not set: set the environment variable(s) "
        f"{variables}. Secrets are never stored, so a resumed run (and each run a "
        "worker starts) needs them in its environment again"
    )
