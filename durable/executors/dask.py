"""DaskExecutor: task bodies on a Dask `distributed` cluster; checkpoints stay here.

A run starts a temporary `LocalCluster` (or `cluster_class(**cluster_kwargs)`) and closes
it when the run ends, or connects to the scheduler at `address`. Each body goes out as one
packed call (`body.pack_call`, cloudpickle bytes) submitted with `pure=False`, and comes
back as one packed outcome with the log records it emitted, which are then replayed here.
Workers never see the database; they need `durable` installed and whatever the task bodies
import. `distributed` is imported when a run starts (`pip install durable[dask]`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio

from durable import context
from durable.errors import ConfigurationError
from durable.executors import body
from durable.executors.base import WorkerCrashedError

logger = logging.getLogger("durable.executors")

CLOSE_SECONDS = 30.0
"""How long closing a client or cluster (or cancelling a body) may take."""

RESOURCE_TAG = "dask-resource:"
"""Task tags `dask-resource:NAME=AMOUNT` ask for worker resources, as in Prefect 1."""


MISSING = "DaskExecutor needs the `distributed` package: pip install 'durable[dask]'"


def import_distributed() -> Any:
    """Import `distributed`, or say how to install it."""
    try:
        return importlib.import_module("distributed")
    except ImportError as exc:
        raise ConfigurationError(MISSING) from exc


def run_packed(data: bytes) -> bytes:
    """Run one packed body call on a Dask worker; its log lines ride in the outcome."""
    lines: list[body.LogLine] = []
    outcome = body.execute(data, lines.append)
    return body.pack_with_lines(outcome, lines)


class DaskExecutor:
    """Task bodies on a Dask cluster: a temporary LocalCluster per run, or `address`.

    Args:
        address: A running scheduler (`tcp://host:8786`); None starts a cluster per run.
        cluster_class: The cluster to start (a class or factory called with
            `asynchronous=True` and `cluster_kwargs`, or its dotted name); default
            `distributed.LocalCluster`.
        cluster_kwargs: Keyword arguments for `cluster_class`.
        client_kwargs: Keyword arguments for `distributed.Client`.
        max_workers: How many bodies the flow runner keeps submitted at once; None
            means four per cluster thread when the run starts (at least 8): a few
            queued bodies per thread hide the scheduler's round trip.
    """

    def __init__(
        self,
        address: str | None = None,
        cluster_class: Callable[..., Any] | str | None = None,
        cluster_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        max_workers: int | None = None,
    ) -> None:
        if importlib.util.find_spec("distributed") is None:  # say so now, not mid-run
            raise ConfigurationError(MISSING)
        if address is not None and cluster_class is not None:
            raise ConfigurationError(
                "DaskExecutor takes an address or a cluster_class, not both"
            )
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self._max_workers = max_workers
        self.max_workers = max_workers or 8
        """Bodies in flight at once (see `max_workers` above)."""
        self._client: Any = None

    @asynccontextmanager
    async def start(self) -> AsyncIterator[None]:
        """Connect to the cluster (starting one if needed) for one run; then close."""
        if self._client is not None:  # held already: share it
            yield
            return
        distributed = import_distributed()
        cluster: Any = None
        client: Any = None
        try:
            if self.address is None:
                cluster = await self._cluster_class(distributed)(
                    asynchronous=True, **self.cluster_kwargs
                )
            client = await distributed.Client(
                self.address or cluster, asynchronous=True, **self.client_kwargs
            )
            if self._max_workers is None:
                threads = sum((await client.nthreads()).values())
                self.max_workers = max(4 * threads, 8)
            self._client = client
            yield
        finally:
            self._client = None
            # Shielded, so a cancelled run still closes its cluster; bounded, so a
            # cluster that does not answer cannot hold the run's end forever.
            with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                if client is not None:
                    await client.close()
                if cluster is not None:
                    await cluster.close()

    def _cluster_class(self, distributed: Any) -> Any:
        spec = self.cluster_class
        if spec is None:
            return distributed.LocalCluster
        if isinstance(spec, str):
            module, _, name = spec.rpartition(".")
            return getattr(importlib.import_module(module), name)
        return spec

    async def call(
        self, fn: Callable[..., Any], kwargs: dict[str, Any], *, is_async: bool,
        abandonable: bool,
    ) -> Any:  # fmt: skip
        client = self._client
        if client is None:
            raise RuntimeError(
                "DaskExecutor.call() outside its start() block: run flows through "
                "flow.run() or the FlowRunner, which start the executor"
            )
        data = body.pack_call(fn, kwargs, is_async)
        label = body.task_label()
        future = client.submit(
            run_packed, data, pure=False, key=f"{label}-{uuid.uuid4().hex[:12]}",
            resources=worker_resources(context.get("task_tags") or ()),
        )  # fmt: skip
        finished = False
        try:
            packed = await future
            finished = True
        except import_distributed().KilledWorker as exc:
            finished = True
            raise WorkerCrashedError(
                task=label,
                task_run_id=context.get("task_run_id"),
                detail=f"every Dask worker that ran it died ({exc})",
            ) from exc
        finally:
            if not finished:  # a timeout or a cancelled run: Dask cannot stop a body
                await _forget(client, future)
        outcome, lines = body.unpack_with_lines(packed)
        for line in lines:
            body.replay(line)
        return body.unpack_outcome(outcome)

    def __repr__(self) -> str:
        if self.address is not None:
            return f"DaskExecutor(address={self.address!r})"
        spec = self.cluster_class or "LocalCluster"
        name = spec if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))
        return f"DaskExecutor(cluster_class={name!r})"


async def _forget(client: Any, future: Any) -> None:
    """Cancel a submitted body that nobody waits for any more (best effort)."""
    with anyio.move_on_after(CLOSE_SECONDS, shield=True):
        try:
            await client.cancel([future])
        except Exception:  # a closing client may fail in any way
            logger.debug("Could not cancel Dask future %s", future.key, exc_info=True)


def worker_resources(tags: Any) -> dict[str, float] | None:
    """Read `dask-resource:NAME=AMOUNT` task tags into Dask's `resources` argument."""
    found = {}
    for tag in tags:
        if isinstance(tag, str) and tag.startswith(RESOURCE_TAG):
            name, _, amount = tag[len(RESOURCE_TAG) :].partition("=")
            found[name] = float(amount or 1)
    return found or None
