"""Parameters: root tasks whose values are given when a flow run starts.

A parameter's slug is its name, and its value is checkpointed as JSON, so a run's
inputs stay readable in the database.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any, Final

import pendulum

from durable import context, signals
from durable.core.task import Task
from durable.errors import ParameterError


class _NoDefault:
    """The type of `no_default`."""

    def __repr__(self) -> str:
        return "no_default"

    def __reduce__(self) -> str:
        return "no_default"


no_default: Final = _NoDefault()
"""Marks a parameter declared without a default (distinct from a default of None)."""


class Parameter(Task):
    """A value given when a flow run starts: `Parameter("x", default=1)`.

    `required` defaults to "no default was given". A parameter cannot have upstream
    tasks, and a flow holds at most one parameter of each name.
    """

    def __init__(
        self,
        name: str,
        default: Any = no_default,
        required: bool | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        if not name:
            raise ParameterError(f"A parameter needs a non-empty name, not {name!r}")
        self.required: bool = default is no_default if required is None else required
        """Whether a flow run must be given a value for this parameter."""
        self.default: Any = None if default is no_default else default
        """The value used when none is given (None when declared without one)."""
        super().__init__(
            name=name, slug=name, tags=tags, checkpoint=True, serializer="json"
        )

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"

    def check(self, value: Any) -> None:
        """Refuse a value this parameter cannot take (ParameterError), before the run
        exists. Parameters are untyped, as in Prefect 1: any value passes here."""

    def run(self) -> Any:
        """Return the run's value for this parameter, or its default."""
        given = context.get("parameters") or {}
        if self.name in given:
            return given[self.name]
        if self.required:
            raise signals.FAIL(f"Parameter {self.name!r} was required but not provided")
        return self.default


class DateTimeParameter(Parameter):
    """A parameter whose value is a datetime; strings are parsed with pendulum.

    Its value is checkpointed with pickle, because JSON has no datetime.
    """

    def __init__(
        self,
        name: str,
        required: bool = True,
        tags: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name, default=None, required=required, tags=tags)
        self.serializer = "pickle"

    def run(self) -> Any:
        """Return the run's value as a datetime (None when optional and not given)."""
        value = super().run()
        if value is None or isinstance(value, datetime.datetime):
            return value
        return pendulum.parse(value)

    def check(self, value: Any) -> None:
        """Refuse a value that is neither a datetime, None nor a string that parses
        as one: the run would only fail later, at this parameter's task."""
        if value is None or isinstance(value, datetime.datetime):
            return
        try:
            if not isinstance(value, str):
                raise TypeError(f"a {type(value).__name__}")
            parsed = pendulum.parse(value)
            if not isinstance(parsed, datetime.datetime):
                raise TypeError(f"a {type(parsed).__name__}")
        except (ValueError, TypeError, OverflowError) as exc:
            raise ParameterError(
                f"Parameter {self.name!r} takes a date and time, not {value!r} ({exc}); "
                "write e.g. 2026-01-31T09:00:00+01:00"
            ) from exc


def check_parameters(
    flow_name: str, declared: Iterable[Parameter], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Return every parameter's value for a run, refusing unknown and missing ones.

    Optional parameters that are not given get their defaults.

    Raises:
        ParameterError: A name is not a parameter of the flow, or a required one is
            missing; the message names them and the flow's parameters.
    """
    parameters = {p.name: p for p in declared}
    unknown = sorted(set(given) - set(parameters))
    if unknown:
        known = ", ".join(sorted(parameters)) or "(none)"
        raise ParameterError(
            f"Flow {flow_name!r} has no parameter(s) {_quoted(unknown)}; "
            f"its parameters are: {known}"
        )
    missing = sorted(n for n, p in parameters.items() if p.required and n not in given)
    if missing:
        raise ParameterError(
            f"Flow {flow_name!r} is missing required parameter(s) {_quoted(missing)}; "
            "pass them in parameters={...} or as keyword arguments of flow.run()"
        )
    for name, value in given.items():
        parameters[name].check(value)
    values = {n: p.default for n, p in parameters.items() if not p.required}
    values.update(given)
    return values


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)
