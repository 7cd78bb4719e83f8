"""Fixtures for the worker: an open store with a registered scheduled flow, and a worker
on a fake clock that launches runs in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from durable.store import Store
from durable.store.packaging import package_flow
from durable.timesource import FakeTime
from durable.worker import InProcessLauncher, Worker
from tests.worker import flows, shared


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    shared.CALLS.clear()
    shared.BROKEN.clear()


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    opened = await Store.open(db)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def registered(store: Store, fake_time: FakeTime) -> str:
    """Register the one-minute flow now (fake time): its ticks count from here."""
    flow = flows.every_minute()
    await store.register_flow(
        package_flow(flow, file=None, registered_at=fake_time.timestamp())
    )
    return flow.name


WorkerFactory = Callable[..., Worker]


@pytest.fixture
def make_worker(store: Store, fake_time: FakeTime) -> WorkerFactory:
    def make(**options: object) -> Worker:
        launcher = options.pop("launcher", None) or InProcessLauncher(store, fake_time)
        return Worker(store, fake_time, launcher, **options)  # type: ignore[arg-type]

    return make
