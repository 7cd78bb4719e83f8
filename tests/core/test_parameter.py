"""Parameters: defaults and `required`, reading the run's values, DateTimeParameter."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime

import pendulum
import pytest

from durable import context, signals
from durable.core.flow import Flow
from durable.core.parameter import (
    DateTimeParameter,
    Parameter,
    check_parameters,
    no_default,
)
from durable.core.task import task
from durable.errors import ConfigurationError, ParameterError


@task
def double(x: int) -> int:
    return 2 * x


class TestDeclaration:
    def test_a_parameter_without_default_is_required(self) -> None:
        p = Parameter("x")
        assert p.required is True
        assert p.default is None

    def test_a_parameter_with_a_default_is_optional(self) -> None:
        p = Parameter("x", default=0)
        assert (p.required, p.default) == (False, 0)

    def test_required_can_be_given_explicitly(self) -> None:
        assert Parameter("x", required=False).required is False
        assert Parameter("x", default=1, required=True).required is True

    def test_its_slug_is_its_name_and_its_value_is_checkpointed_as_json(self) -> None:
        p = Parameter("x", tags=["input"])
        assert (p.name, p.slug, p.checkpoint, p.serializer) == ("x", "x", True, "json")
        assert p.tags == {"input"}
        assert repr(p) == "<Parameter: x>"

    def test_a_parameter_needs_a_name(self) -> None:
        with pytest.raises(ConfigurationError, match="non-empty name"):
            Parameter("")

    def test_no_default_survives_copying_and_pickling(self) -> None:
        assert repr(no_default) == "no_default"
        assert pickle.loads(pickle.dumps(no_default)) is no_default
        assert copy.deepcopy(no_default) is no_default


class TestRun:
    def test_returns_the_runs_value(self) -> None:
        with context.flow_context({"parameters": {"x": 5}}):
            assert Parameter("x").run() == 5

    def test_falls_back_to_the_default(self) -> None:
        with context.flow_context({"parameters": {}}):
            assert Parameter("x", default=3).run() == 3
        assert Parameter("x", default=3).run() == 3

    def test_a_missing_required_value_fails_the_task(self) -> None:
        with pytest.raises(signals.FAIL, match="'x' was required"):
            Parameter("x").run()


class TestInFlows:
    def test_a_parameter_is_a_root_task_with_its_name_as_slug(self) -> None:
        with Flow("f") as flow:
            x = Parameter("x")
            result = double(x)
        assert flow.slugs[x] == "x"
        assert flow.parameters() == {x}
        assert flow.root_tasks() == {x}
        assert flow.upstream_tasks(result) == {x}

    def test_the_same_parameter_object_can_be_used_twice(self) -> None:
        with Flow("f") as flow:
            x = Parameter("x")
            double(x)
            double(x)
        assert flow.parameters() == {x}

    def test_two_parameters_with_one_name_are_refused(self) -> None:
        with Flow("f"):
            double(Parameter("x"))
            with pytest.raises(ConfigurationError, match="already has a parameter"):
                double(Parameter("x"))

    def test_parameters_cannot_have_upstream_tasks(self) -> None:
        p = Parameter("x")
        with Flow("f"), pytest.raises(ConfigurationError, match="cannot depend"):
            p.set_upstream(double(1))


class TestDateTimeParameter:
    def test_is_required_by_default_and_checkpointed_with_pickle(self) -> None:
        p = DateTimeParameter("when")
        assert p.required is True
        assert p.serializer == "pickle"

    def test_parses_strings_with_pendulum(self) -> None:
        with context.flow_context({"parameters": {"when": "2026-03-01T12:00:00Z"}}):
            value = DateTimeParameter("when").run()
        assert value == pendulum.datetime(2026, 3, 1, 12, tz="UTC")

    def test_passes_datetimes_through(self) -> None:
        moment = datetime(2026, 1, 2, tzinfo=UTC)
        with context.flow_context({"parameters": {"when": moment}}):
            assert DateTimeParameter("when").run() is moment

    def test_none_is_allowed_when_not_required(self) -> None:
        assert DateTimeParameter("when", required=False).run() is None
        with context.flow_context({"parameters": {"when": None}}):
            assert DateTimeParameter("when", required=False).run() is None


class TestCheckParameters:
    def test_a_flow_without_parameters_says_so(self) -> None:
        with pytest.raises(ParameterError, match=r"its parameters are: \(none\)"):
            check_parameters("f", [], {"x": 1})

    def test_every_missing_name_is_listed(self) -> None:
        with pytest.raises(ParameterError, match="'a', 'b'"):
            check_parameters("f", [Parameter("b"), Parameter("a")], {})

    def test_optional_parameters_without_default_get_none(self) -> None:
        assert check_parameters("f", [Parameter("a", required=False)], {}) == {
            "a": None
        }
