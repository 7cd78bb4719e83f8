"""The public names of `durable` and `tui` are exactly their sorted `__all__`."""

from __future__ import annotations

import types

import pytest

import durable
import tui


@pytest.mark.parametrize("package", [durable, tui])
def test_public_names_equal_sorted_all(package: types.ModuleType) -> None:
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not (isinstance(value, types.ModuleType) and name not in package.__all__)
        and name != "annotations"
    }
    assert public == set(package.__all__)
    assert list(package.__all__) == sorted(package.__all__)


def test_prefect_names_are_importable() -> None:
    from durable import Flow, Parameter, Task, signals, states, task, triggers

    assert all([Flow, Parameter, Task, signals, states, task, triggers])
