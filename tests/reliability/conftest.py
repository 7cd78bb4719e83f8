"""Fixtures of the reliability campaign: the seed (REL_SEED, printed), artifacts kept on
failure ($REL_ARTIFACTS/<test>/<seed>/), and process hygiene (every group the harness
spawned is killed after the test, and no child process may outlive it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import harness

_SEEDS = pytest.StashKey[int]()
_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    """Keep the call phase's report: teardown fixtures look at it."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" or (report.when == "setup" and report.failed):
        item.stash[_REPORT] = report


@pytest.fixture(scope="session", autouse=True)
def _bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One bytecode cache for every process the harness spawns in this session."""
    harness.set_pycache(tmp_path_factory.mktemp("pycache"))


@pytest.fixture
def rel_seed(request: pytest.FixtureRequest) -> int:
    """The test's seed: $REL_SEED, else random (printed, and kept with artifacts)."""
    value = harness.seed()
    request.node.stash[_SEEDS] = value
    return value


@pytest.fixture(autouse=True)
def _hygiene_and_artifacts(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[None]:
    """Kill what the test spawned, fail on leaked processes, keep files on failure."""
    baseline = frozenset(harness.children())
    yield
    leaks = harness.reap_all(baseline)
    report = request.node.stash.get(_REPORT, None)
    if report is not None and report.failed:
        harness.keep_artifacts(
            request.node.name, request.node.stash.get(_SEEDS, 0), tmp_path
        )
    assert not leaks, f"processes leaked by the test (now killed): {leaks}"
