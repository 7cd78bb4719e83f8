"""Caching and targets: finish a task run with an earlier result instead of its body.

Two steps of the task runner, as in Prefect 1.4. `check_cached` runs before the trigger:
a task with a `target` whose file exists, or with `cache_for` and a stored entry its
`cache_validator` accepts, becomes `Cached` with that value and its body is not run.
`cache_result` runs when the body has returned: it writes the value to the target file
(atomically, fsynced before the Success that follows is committed) and, for `cache_for`,
stores a cache entry and turns the Success into `Cached` with its expiration, as Prefect 1
did on the run that writes the cache.

Cache entries live in the store (`cache` table), so they survive restarts and crashes;
their time comes from the runner's time source.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from durable import context, redaction
from durable.core.edge import Edge
from durable.engine.cache_validators import (
    duration_only,
    fingerprints,
    never_use,
    validating_at,
)
from durable.errors import SerializationError
from durable.states import Cached, Failed, State, Success
from durable.store.records import CacheEntryRecord, NewCacheEntry
from durable.store.results import (
    PendingFile,
    is_file_reference,
    stored_serializer_name,
)
from durable.store.serializers import SERIALIZERS, Serializer, resolve_serializer
from durable.timesource import from_timestamp

if TYPE_CHECKING:
    from durable.engine.task_runner import TaskRunner

logger = logging.getLogger(__name__)

CANDIDATES = 100
"""How many unexpired entries of a key a task run checks, newest first."""


# Steps --------------------------------------------------------------------------------
async def check_cached(
    runner: TaskRunner,
    state: State,
    upstream: Sequence[tuple[Edge, State]],
    constants: Mapping[str, Any],
) -> State:
    """Finish the task run from its target or its cache, when either holds its result.

    As in Prefect 1, a task with a target checks only the target. Runs before the
    trigger, once every upstream task has finished.
    """
    task = runner.task
    if not (task.target or task.cache_for is not None) or not state.is_pending():
        return state
    if not all(s.is_finished() for _, s in upstream):
        return state
    inputs = runner.gather_inputs(upstream, constants)
    if task.target:
        return await check_target(runner, state, inputs)
    return await check_cache(runner, state, inputs)


async def check_target(
    runner: TaskRunner, state: State, inputs: dict[str, Any]
) -> State:
    """Become Cached with the target file's value when the file exists."""
    path = target_path(runner, inputs)
    if isinstance(path, Failed):
        return runner.transition(state, path)
    if not await anyio.to_thread.run_sync(os.path.lexists, path):
        return state
    serializer = resolve_serializer(runner.task.serializer)
    try:
        value = await anyio.to_thread.run_sync(_read_file, path, serializer)
    except Exception as exc:  # noqa: BLE001 (the file, or the user's serializer, failed)
        return runner.transition(
            state,
            Failed(
                f"Task {runner.task.name!r}: cannot read its target {str(path)!r} with "
                f"the {serializer.name!r} serializer ({type(exc).__name__}: {exc}); "
                "delete or replace the file to run the task again",
                result=exc,
            ),
        )
    message = f"Result found at task target {str(path)!r}."
    return await runner.transition_with_result(
        state, Cached(message, result=value, context={"target": str(path)})
    )


async def check_cache(
    runner: TaskRunner, state: State, inputs: dict[str, Any]
) -> State:
    """Become Cached with the newest stored entry that the task's validator accepts."""
    task, env = runner.task, runner.env
    validator = task.cache_validator or duration_only
    if validator is never_use:
        return state
    # Read our own writes: an entry queued by this run (a task sharing the key) counts.
    await env.store.flush()
    key = cache_key(runner)
    entries = await env.store.find_cache_entries(
        key, runner.map_index, now=env.time.timestamp(), limit=CANDIDATES
    )
    parameters = dict(context.get("parameters") or {})
    with validating_at(env.time):
        for entry in entries:
            candidate = Cached(context=_entry_context(entry))
            try:
                valid = validator(candidate, dict(inputs), parameters)
            except Exception as exc:  # noqa: BLE001 (the user's validator failed)
                name = getattr(validator, "__qualname__", repr(validator))
                failed = Failed(
                    f"Task {task.name!r}: cache validator {name} raised "
                    f"{type(exc).__name__}: {exc}",
                    result=exc,
                )
                return runner.transition(state, failed)
            if not valid:
                continue
            found, value = await _load_entry(runner, entry)
            if found:
                return await runner.transition_with_result(state, _reused(entry, value))
    logger.debug("Task %r: no valid cached result under %r", runner.display_name, key)
    return state


async def cache_result(runner: TaskRunner, value: Any, inputs: dict[str, Any]) -> State:
    """Return the state a body's value finishes in, after writing its target and cache.

    The target file is on disk (fsynced) before this returns, so before the Success that
    follows is committed. The cache entry is queued just before the Cached state: it
    commits with it or before it, so a crash never loses a cached value that a finished
    task run reported.
    """
    task = runner.task
    success = Success("Task run succeeded.", result=value)
    if task.target and task.checkpoint is not False and value is not None:
        failed = await write_target(runner, value, inputs)
        if failed is not None:
            return failed
    if task.cache_for is None:
        return success
    serializer = resolve_serializer(task.serializer)
    env = runner.env
    try:  # an entry holds its own copy: in a file of its own when it is large
        blob = env.store.result_files.serialize(
            serializer, value, stem=f"cache-{runner.task_run_id}"
        )
        if redaction.ACTIVE and _holds_secret(blob, cache_key(runner)):
            if isinstance(blob, PendingFile):
                blob.discard()
            error = redaction.refused_result(task.name, value, serializer.name)
            return Failed(f"{error}; cache_for stores it even with checkpoint=False",
                          result=error)  # fmt: skip
        if isinstance(blob, PendingFile):  # durable before the entry is queued
            blob = await anyio.to_thread.run_sync(blob.persist)
    except Exception as exc:  # noqa: BLE001 (the user's value failed to serialize)
        error = SerializationError(
            task_name=task.name,
            type_name=type(value).__qualname__,
            serializer=serializer.name,
            reason=(
                f"{type(exc).__name__}: {exc}; "
                "cache_for stores it even with checkpoint=False"
            ),
        )
        return Failed(str(error), result=error)
    now = env.time.timestamp()
    entry = NewCacheEntry(
        cache_key=cache_key(runner),
        map_index=runner.map_index,
        flow_run_id=env.run_id,
        task_run_id=runner.task_run_id,
        serializer=blob[0],
        value=blob[1],
        hashed_inputs=fingerprints(inputs),
        hashed_parameters=fingerprints(context.get("parameters")),
        created_at=now,
        expires_at=now + task.cache_for.total_seconds(),
    )
    env.store.save_cache_entry(entry)
    until = from_timestamp(entry.expires_at).to_iso8601_string()
    return Cached(
        f"Task run succeeded; result cached until {until}.",
        result=value,
        context={
            "cache_key": entry.cache_key,
            "cached_result_expiration": entry.expires_at,
            "hashed_inputs": entry.hashed_inputs,
            "hashed_parameters": entry.hashed_parameters,
        },
    )


def _holds_secret(blob: tuple[str, bytes] | PendingFile, key: str) -> bool:
    if redaction.leaks(key):
        return True
    if isinstance(blob, PendingFile):
        return redaction.file_leaks(blob.temporary)
    return redaction.leaks(blob[1])


# Targets ------------------------------------------------------------------------------
def target_path(runner: TaskRunner, inputs: Mapping[str, Any]) -> Path | Failed:
    """Format the task's target and resolve it (relative: under the results directory).

    Template keys come from the flow's parameters, then the context, then the task's
    inputs, a later source winning (Prefect 1's order). A template that cannot be filled
    fails the task run, naming the template.
    """
    target = runner.task.target
    values = {**(context.get("parameters") or {}), **context.to_dict(), **inputs}
    try:
        if isinstance(target, str):
            location: object = target.format(**values)
        else:
            assert target is not None, "only a task with a target has a target path"
            location = target(**values)
    except Exception as exc:  # noqa: BLE001 (the template or the user's callable failed)
        return Failed(
            f"Task {runner.task.name!r}: cannot fill its target {target!r} "
            f"({type(exc).__name__}: {exc}); template keys are the flow's parameters, "
            "context values (flow_name, task_name, today, map_index, ...) and the "
            "task's inputs",
            result=exc,
        )
    if not isinstance(location, str | os.PathLike) or not str(location):
        return Failed(
            f"Task {runner.task.name!r}: its target gave {location!r}, not a file path"
        )
    path = Path(location).expanduser()
    return path if path.is_absolute() else runner.env.store.results_dir / path


async def write_target(
    runner: TaskRunner, value: Any, inputs: Mapping[str, Any]
) -> Failed | None:
    """Write a result to the task's target atomically; return a Failed if it cannot be."""
    path = target_path(runner, inputs)
    if isinstance(path, Failed):
        return path
    serializer = resolve_serializer(runner.task.serializer)
    try:
        data = serializer.dumps(value)
    except Exception as exc:  # noqa: BLE001 (the user's value failed to serialize)
        error = SerializationError(
            task_name=runner.task.name,
            type_name=type(value).__qualname__,
            serializer=serializer.name,
            reason=f"{type(exc).__name__}: {exc}",
        )
        return Failed(str(error), result=error)
    try:
        await anyio.to_thread.run_sync(write_atomically, path, data)
    except OSError as exc:
        return Failed(
            f"Task {runner.task.name!r}: cannot write its target {str(path)!r} "
            f"({exc.strerror or exc})",
            result=exc,
        )
    return None


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same directory, are fsynced, and replace the
    target in one rename; the directory is fsynced so the rename survives a power cut.
    """
    _make_directories(path.parent)
    fd, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _make_directories(directory: Path) -> None:
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        created.mkdir(mode=0o700, exist_ok=True)
        _fsync_directory(created.parent)  # the new entry survives a power cut


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_file(path: Path, serializer: Serializer) -> Any:
    return serializer.loads(path.read_bytes())


# Cache entries ------------------------------------------------------------------------
def cache_key(runner: TaskRunner) -> str:
    """Return the key a task's results are cached under.

    `cache_key` when the task has one (shared by every task and flow that names it),
    else the flow's name and the task's slug.
    """
    return runner.task.cache_key or f"{context.get('flow_name')}/{runner.slug}"


def _entry_context(entry: CacheEntryRecord) -> dict[str, Any]:
    return {
        "cache_key": entry.cache_key,
        "cached_result_expiration": entry.expires_at,
        "hashed_inputs": entry.hashed_inputs,
        "hashed_parameters": entry.hashed_parameters,
        "cached_at": entry.created_at,
        "cached_by": entry.task_run_id,
    }


def _reused(entry: CacheEntryRecord, value: Any) -> Cached:
    until = from_timestamp(entry.expires_at).to_iso8601_string()
    message = (
        f"Cached result reused from task run {entry.task_run_id!r} of flow run "
        f"{entry.flow_run_id!r} (valid until {until})."
    )
    return Cached(message, result=value, context=_entry_context(entry))


async def _load_entry(runner: TaskRunner, entry: CacheEntryRecord) -> tuple[bool, Any]:
    # An entry that cannot be read (gone, or its class has moved) is a miss, not a
    # failure: the cache only saves work, and running the body again is always correct.
    files = runner.env.store.result_files
    blob = await runner.env.store.load_cache_value(entry.id)
    own = resolve_serializer(runner.task.serializer)
    name = stored_serializer_name(entry.serializer)
    serializer = own if name == own.name else SERIALIZERS.get(name)
    if blob is None or serializer is None:
        return False, None
    try:
        if is_file_reference(blob[0]):  # a large value: read it off the event loop
            value = await anyio.to_thread.run_sync(
                partial(files.load, blob[0], blob[1], serializer=serializer)
            )
            return True, value
        return True, serializer.loads(blob[1])
    except Exception as exc:  # noqa: BLE001 (unpickling runs the user's code)
        logger.warning(
            "Task %r: cached result %d cannot be read (%s: %s); running the task",
            runner.display_name, entry.id, type(exc).__name__, exc,
        )  # fmt: skip
        return False, None
