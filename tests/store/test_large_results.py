"""Large results: files beside the database, durable before their commit, read lazily.

Results over `DURABLE_RESULT_FILE_THRESHOLD` (set to 1 KiB here) go to `<db>.results/`;
the row that names a file is the only source of truth, so a file whose commit never came
(a kill -9 between the fsync and the commit) is an orphan that a resume never reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from durable import Flow, task
from durable.errors import ConfigurationError, StoreError
from durable.store import NewTaskRun, Store, Transition, connection
from durable.store import results as results_module
from durable.store import writer as writer_module
from durable.store.records import NewCacheEntry
from durable.store.results import (
    THRESHOLD_ENV,
    PendingFile,
    Reference,
    ResultFiles,
    find_orphans,
    remove_orphans,
    results_directory,
    threshold_from_env,
)
from durable.store.serializers import JSON, PICKLE
from tests.engine.helpers import rows, run

pytestmark = pytest.mark.anyio

THRESHOLD = 1024
BIG = 10_000
MiB = 1 << 20


@pytest.fixture(autouse=True)
def _small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THRESHOLD_ENV, str(THRESHOLD))


def payload(size: int, seed: int = 0) -> bytes:
    """Bytes that differ from position to position (a truncation or swap shows)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 8
    return (block * (size // len(block) + 1))[:size]


def stored(db: Path) -> dict[str, tuple[str, bytes]]:
    """Each task slug's result row: (serializer, value)."""
    fetched = rows(
        db,
        "SELECT t.task_slug, r.serializer, r.value FROM results r"
        " JOIN task_runs t ON t.id = r.task_run_id",
    )
    return {slug: (serializer, bytes(value)) for slug, serializer, value in fetched}


def files(db: Path) -> set[str]:
    directory = results_directory(db)
    return set(os.listdir(directory)) if directory.exists() else set()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pipeline(calls: list[str], gate: anyio.Event | None = None) -> Flow:
    """big (over the threshold) and small (under it) feed consume; consume may wait."""

    @task
    def big() -> bytes:
        calls.append("big")
        return payload(BIG)

    @task
    def small() -> int:
        calls.append("small")
        return 5

    @task
    async def consume(value: bytes, n: int) -> int:
        calls.append("consume")
        if gate is not None:
            await gate.wait()
        return len(value) + n

    with Flow("large") as flow:
        consume(big(), small())
    return flow


def by_name(flow: Flow, name: str) -> Any:
    return next(t for t in flow.tasks if t.name == name)


# Spooling -----------------------------------------------------------------------------
class TestSerialize:
    def test_a_result_up_to_the_threshold_stays_inline(self, tmp_path: Path) -> None:
        result_files = ResultFiles(tmp_path / "r", threshold=100)
        value = b"x" * 60  # pickled: 60 bytes and a few of framing, under 100
        blob = result_files.serialize(PICKLE, value, stem="t1")
        assert blob == ("pickle", PICKLE.dumps(value))
        assert not (tmp_path / "r").exists()

    def test_a_larger_result_spills_to_a_private_file_renamed_when_persisted(
        self, tmp_path: Path
    ) -> None:
        directory = tmp_path / "r"
        pending = ResultFiles(directory, threshold=100).serialize(
            PICKLE, payload(5000), stem="t1"
        )
        assert isinstance(pending, PendingFile)
        assert os.listdir(directory) == [pending.temporary.name]  # not its final name
        assert pending.temporary.name.startswith(".t1-")
        assert mode(directory) == 0o700

        name, value = pending.persist()
        assert name == "file:pickle"
        reference = Reference.decode(value)
        assert os.listdir(directory) == [reference.file]
        path = directory / reference.file
        assert mode(path) == 0o600
        assert reference.size == path.stat().st_size
        assert reference.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert ResultFiles(directory).load(name, value) == payload(5000)

    def test_a_json_result_can_be_a_file_too(self, tmp_path: Path) -> None:
        result_files = ResultFiles(tmp_path / "r", threshold=100)
        pending = result_files.serialize(JSON, {"rows": list(range(100))}, stem="p")
        assert isinstance(pending, PendingFile)
        name, value = pending.persist()
        assert name == "file:json"
        assert result_files.load(name, value) == {"rows": list(range(100))}

    def test_a_value_that_fails_after_spilling_leaves_no_file(
        self, tmp_path: Path
    ) -> None:
        result_files = ResultFiles(tmp_path / "r", threshold=100)
        # The pickler writes a payload over 64 KiB at once: the spill comes first.
        value = [payload(200_000), threading.Lock()]
        with pytest.raises(TypeError, match="lock"):
            result_files.serialize(PICKLE, value, stem="t1")
        assert os.listdir(tmp_path / "r") == []

    def test_each_write_gets_a_file_of_its_own(self, tmp_path: Path) -> None:
        result_files = ResultFiles(tmp_path / "r", threshold=100)
        first = result_files.serialize(PICKLE, payload(5000), stem="t1")
        second = result_files.serialize(PICKLE, payload(5000), stem="t1")
        assert isinstance(first, PendingFile)
        assert isinstance(second, PendingFile)
        assert first.path != second.path  # a rerun never overwrites a named file
        first.discard()
        second.discard()
        assert os.listdir(tmp_path / "r") == []


class TestLoad:
    def persisted(self, tmp_path: Path) -> tuple[ResultFiles, tuple[str, bytes], Path]:
        result_files = ResultFiles(tmp_path / "r", threshold=100)
        pending = result_files.serialize(PICKLE, payload(5000), stem="t1")
        assert isinstance(pending, PendingFile)
        blob = pending.persist()
        return result_files, blob, pending.path

    def test_a_missing_file_is_a_clear_error(self, tmp_path: Path) -> None:
        result_files, blob, path = self.persisted(tmp_path)
        path.unlink()
        with pytest.raises(StoreError, match="is missing"):
            result_files.load(*blob)

    def test_a_truncated_file_is_refused(self, tmp_path: Path) -> None:
        result_files, blob, path = self.persisted(tmp_path)
        os.truncate(path, 100)
        with pytest.raises(StoreError, match="has 100 bytes, not the"):
            result_files.load(*blob)

    def test_an_altered_file_is_refused(self, tmp_path: Path) -> None:
        result_files, blob, path = self.persisted(tmp_path)
        data = bytearray(path.read_bytes())
        data[2000] ^= 0xFF  # inside the bytes payload: unpickling still works
        path.write_bytes(bytes(data))
        with pytest.raises(StoreError, match="does not match the checksum"):
            result_files.load(*blob)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, MiB),
        ("", MiB),
        ("0", 0),
        ("4096", 4096),
        ("512KiB", 512 * 1024),
        ("64MiB", 64 * MiB),
        ("64m", 64 * MiB),
        ("1GiB", 1 << 30),
    ],
)
def test_the_threshold_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, expected: int
) -> None:
    if setting is None:
        monkeypatch.delenv(THRESHOLD_ENV)
    else:
        monkeypatch.setenv(THRESHOLD_ENV, setting)
    assert threshold_from_env() == expected


@pytest.mark.parametrize("setting", ["big", "-1", "1.5MiB", "10 TB"])
def test_a_threshold_that_is_not_a_size_is_refused(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv(THRESHOLD_ENV, setting)
    with pytest.raises(ConfigurationError, match=THRESHOLD_ENV):
        threshold_from_env()


# The store ----------------------------------------------------------------------------
def transition(name: str, at: float, *, finished: bool = False) -> Transition:
    return Transition(name, None, at, None, finished)


async def one_task_run(store: Store) -> str:
    store.create_flow_run(
        run_id="run1", flow_name="f", fingerprint="fp", source_path=None,
        parameters=b"{}", parameters_serializer="json",
        transition=transition("Pending", 1.0),
        task_runs=[NewTaskRun("run1-t0", "slug-0", "t")],
    )  # fmt: skip
    await store.flush()
    return "run1-t0"


def persisted(store: Store, value: Any, stem: str) -> tuple[str, bytes]:
    pending = store.result_files.serialize(PICKLE, value, stem=stem)
    assert isinstance(pending, PendingFile)
    return pending.persist()


class TestStore:
    async def test_a_file_result_is_loaded_through_its_row(self, db: Path) -> None:
        store = await Store.open(db)
        task_run_id = await one_task_run(store)
        blob = persisted(store, payload(BIG), task_run_id)
        store.record_task_state(
            "run1", task_run_id, transition("Success", 2.0, finished=True),
            attempts=1, result=blob,
        )  # fmt: skip
        await store.close()
        assert store.load_result(task_run_id) == payload(BIG)  # after close, too

    async def test_a_replaced_file_result_is_removed_once_the_replacement_commits(
        self, db: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = await Store.open(db)
        task_run_id = await one_task_run(store)
        first = persisted(store, payload(BIG, seed=1), task_run_id)
        store.record_task_state(
            "run1", task_run_id, transition("Success", 2.0, finished=True),
            attempts=1, result=first,
        )  # fmt: skip
        await store.flush()
        named_at_removal: list[set[str]] = []
        real_remove = ResultFiles.remove

        def remove(self: ResultFiles, name: str) -> None:
            with sqlite3.connect(db) as conn:  # what the database names right now
                named_at_removal.append(results_module.referenced_files(conn))
            real_remove(self, name)

        monkeypatch.setattr(ResultFiles, "remove", remove)
        second = persisted(store, payload(BIG, seed=2), task_run_id)
        store.record_task_state(
            "run1", task_run_id, transition("Success", 3.0, finished=True),
            attempts=2, result=second,
        )  # fmt: skip
        await store.flush()  # after-commit removals have run when flush returns
        await store.close()
        new = Reference.decode(second[1]).file
        assert named_at_removal == [{new}]  # removed after the commit, never before
        assert files(db) == {new}
        assert store.load_result(task_run_id) == payload(BIG, seed=2)

    async def test_expired_cache_entries_take_their_files_with_them(
        self, db: Path
    ) -> None:
        store = await Store.open(db)

        def entry(at: float, blob: tuple[str, bytes]) -> NewCacheEntry:
            return NewCacheEntry(
                cache_key="k", map_index=-1, flow_run_id="run1",
                task_run_id=f"t@{at}", serializer=blob[0], value=blob[1],
                hashed_inputs={}, hashed_parameters={}, created_at=at,
                expires_at=at + 10.0,
            )  # fmt: skip

        first = persisted(store, payload(BIG, seed=1), "cache-1")
        store.save_cache_entry(entry(1.0, first))
        await store.flush()
        assert files(db) == {Reference.decode(first[1]).file}
        second = persisted(store, payload(BIG, seed=2), "cache-2")
        store.save_cache_entry(entry(20.0, second))  # the first has expired by now
        await store.close()
        assert files(db) == {Reference.decode(second[1]).file}


# The engine ---------------------------------------------------------------------------
class TestEngine:
    async def test_a_large_result_is_a_file_and_a_small_one_stays_inline(
        self, db: Path
    ) -> None:
        calls: list[str] = []
        flow = pipeline(calls)
        state = await run(flow, db, run_id="r1")
        assert state.is_successful()
        assert state.result[by_name(flow, "consume")].result == BIG + 5

        results = stored(db)
        assert results["small-1"] == ("pickle", PICKLE.dumps(5))
        assert results["consume-1"][0] == "pickle"
        serializer, value = results["big-1"]
        assert serializer == "file:pickle"
        reference = Reference.decode(value)
        assert files(db) == {reference.file}
        path = results_directory(db) / reference.file
        assert (path.stat().st_size, mode(path)) == (reference.size, 0o600)
        assert mode(results_directory(db)) == 0o700
        assert find_orphans(db, min_age=0) == []

    async def test_a_file_result_is_read_only_when_a_downstream_task_needs_it(
        self, db: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        reads: list[str] = []
        real_read = results_module.read_file

        def read_file(path: Path, reference: Reference, serializer: Any) -> Any:
            reads.append(path.name)
            return real_read(path, reference, serializer)

        monkeypatch.setattr(results_module, "read_file", read_file)
        calls: list[str] = []
        gate = anyio.Event()
        flow = pipeline(calls, gate)
        async with anyio.create_task_group() as group:  # stopped while consume runs
            group.start_soon(lambda: run(flow, db, run_id="r1"))
            with anyio.fail_after(10):
                while "consume" not in calls:
                    await anyio.lowlevel.checkpoint()
            group.cancel_scope.cancel()
        assert reads == []  # the run passed big's value in memory

        gate.set()
        calls.clear()
        state = await run(flow, db, run_id="r1")
        assert calls == ["consume"]  # big and small finished: not run again
        assert state.result[by_name(flow, "consume")].result == BIG + 5
        assert reads == [Reference.decode(stored(db)["big-1"][1]).file]

        reads.clear()
        state = await run(flow, db, run_id="r1")  # finished: nothing needs the value
        assert reads == []
        assert state.result[by_name(flow, "big")].result == payload(BIG)  # now read
        assert len(reads) == 1

    @pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
    async def test_the_file_and_its_directory_are_fsynced_before_the_commit(
        self, db: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        events: list[tuple[str, str]] = []
        real_fsync, real_transaction = os.fsync, connection.transaction

        def fsync(fd: int) -> None:
            real_fsync(fd)
            events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))

        def transaction(conn: sqlite3.Connection, work: Callable[..., Any]) -> Any:
            value = real_transaction(conn, work)
            for (ref,) in conn.execute(
                "SELECT value FROM results WHERE serializer LIKE 'file:%'"
            ):
                name = Reference.decode(ref).file
                # The file is whole under its final name when its row commits.
                data = (results_directory(db) / name).read_bytes()
                assert hashlib.sha256(data).hexdigest() == Reference.decode(ref).sha256
                events.append(("commit", name))
            return value

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(writer_module, "transaction", transaction)
        assert (await run(pipeline([]), db, run_id="r1")).is_successful()

        name = Reference.decode(stored(db)["big-1"][1]).file
        directory = str(results_directory(db))
        temporary = f"{directory}/.{name}.tmp"
        first_commit = events.index(("commit", name))
        assert events.index(("fsync", temporary)) < first_commit
        renamed = events.index(("fsync", temporary))
        assert ("fsync", directory) in events[renamed:first_commit]

    async def test_a_restart_replaces_the_file_and_removes_the_old_one(
        self, db: Path
    ) -> None:
        calls: list[str] = []
        flow = pipeline(calls)
        await run(flow, db, run_id="r1")
        old = Reference.decode(stored(db)["big-1"][1]).file

        calls.clear()
        state = await run(flow, db, run_id="r1", restart=["big-1"])
        assert state.is_successful()
        assert sorted(calls) == ["big", "consume"]
        new = Reference.decode(stored(db)["big-1"][1]).file
        assert new != old
        assert files(db) == {new}  # the old file is neither kept nor named twice
        assert find_orphans(db, min_age=0) == []

    async def test_a_result_file_that_cannot_be_synced_fails_the_task(
        self, db: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if stat.S_ISREG(os.fstat(fd).st_mode):  # the file fails, not its directory
                raise OSError(5, "Input/output error")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        flow = pipeline([])
        state = await run(flow, db, run_id="r1")
        big = state.result[by_name(flow, "big")]
        assert big.is_failed()
        assert "cannot write its result file" in big.message
        assert "Input/output error" in big.message
        assert files(db) == set()  # the temporary file is gone too

    async def test_a_large_cached_value_gets_a_file_of_its_own_and_is_reused(
        self, db: Path
    ) -> None:
        calls: list[str] = []

        @task(cache_for=timedelta(hours=1))
        def expensive() -> bytes:
            calls.append("expensive")
            return payload(BIG)

        with Flow("cached") as flow:
            expensive()
        await run(flow, db, run_id="r1")
        state = await run(flow, db, run_id="r2")
        assert calls == ["expensive"]
        reused = state.result[by_name(flow, "expensive")]
        assert reused.is_cached()
        assert reused.result == payload(BIG)
        [(serializer, value)] = rows(db, "SELECT serializer, value FROM cache")
        assert serializer == "file:pickle"
        cache_file = Reference.decode(value).file
        result_files = {
            Reference.decode(v).file for _, v in rows(
                db, "SELECT serializer, value FROM results"
            )
        }  # fmt: skip
        assert cache_file not in result_files  # lifetimes differ: separate copies
        assert files(db) == {cache_file} | result_files


# Orphans ------------------------------------------------------------------------------
async def test_orphans_are_the_unnamed_files_old_enough(db: Path) -> None:
    await run(pipeline([]), db, run_id="r1")
    named = Reference.decode(stored(db)["big-1"][1]).file
    directory = results_directory(db)
    stray, temporary = directory / "t9-0123456789abcdef", directory / ".t9-x.tmp"
    stray.write_bytes(b"a result whose commit never came")
    temporary.write_bytes(b"a write cut short")
    now = stray.stat().st_mtime

    assert find_orphans(db) == []  # fresh: their rows may still be on their way
    assert find_orphans(db, min_age=60, now=now + 61) == sorted([stray, temporary])
    os.utime(directory / named, (now - 7200, now - 7200))
    assert remove_orphans(db, min_age=60, now=now + 61) == sorted([stray, temporary])
    assert files(db) == {named}  # the named file stays, however old


async def test_a_database_without_result_files_has_no_orphans(db: Path) -> None:
    assert find_orphans(db, min_age=0) == []


# Crashes and memory, in real processes -----------------------------------------------
CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path

    from durable import Flow, task
    from durable.store import results

    mode, db, size = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    side = Path(str(db) + ".side")


    def mark(name):
        with open(side, "a") as file:
            file.write(name + "\\n")


    @task
    def big():
        mark("big")
        block = bytes(range(256))
        return block * (size // 256)  # every page written: all of it is resident


    @task
    def consume(value):
        mark("consume")
        if os.environ.get("FAIL_CONSUME"):
            raise ValueError("not yet")
        return len(value)


    with Flow("large") as flow:
        consume(big())


    def status(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise LookupError(field)


    def start_measuring():  # resident memory now, the high-water mark reset to it
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM
        except OSError:
            pass  # then the peak since start counts: an overestimate, never under
        return status("VmRSS")


    def peak():
        return max(status("VmHWM"), status("VmRSS"))


    if mode == "crash":  # die right after the file is durable, before its commit
        persist = results.PendingFile.persist

        def persist_then_die(self):
            persist(self)
            os.kill(os.getpid(), signal.SIGKILL)

        results.PendingFile.persist = persist_then_die

    @task
    def one():
        return 1


    with Flow("warm-up") as warm:  # imports, threads, SQLite: before the baseline
        one()
    warm.run(db=str(db) + ".warm")
    baseline = start_measuring()
    state = flow.run(run_id="r1", db=db, restart=mode == "restart")
    print(json.dumps({"state": type(state).__name__, "growth": peak() - baseline}))
    """
)


def run_child(
    tmp_path: Path, mode: str, db: Path, size: int, **env: str
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.run(
        [sys.executable, str(script), mode, str(db), str(size)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, **env},
    )  # fmt: skip


def side_lines(db: Path) -> list[str]:
    return Path(str(db) + ".side").read_text().split()


def test_a_kill_between_the_file_and_its_commit_leaves_an_orphan_never_read(
    tmp_path: Path, db: Path
) -> None:
    crashed = run_child(tmp_path, "crash", db, BIG)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert "big-1" not in stored(db)  # its commit never happened
    [orphan] = find_orphans(db, min_age=0)
    assert not orphan.name.startswith(".")  # renamed and synced, then the kill
    assert side_lines(db) == ["big"]

    resumed = run_child(tmp_path, "resume", db, BIG)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["state"] == "Success"
    assert side_lines(db) == ["big", "big", "consume"]  # the task ran again
    named = Reference.decode(stored(db)["big-1"][1]).file
    assert named != orphan.name
    assert find_orphans(db, min_age=0) == [orphan]  # still not a result
    assert remove_orphans(db, min_age=0) == [orphan]
    assert files(db) == {named}


def check_memory(tmp_path: Path, db: Path, size: int) -> dict[str, float]:
    """Write a `size` result, then load it in a fresh process; return growth / size."""
    written = run_child(tmp_path, "run", db, size, FAIL_CONSUME="1")
    assert written.returncode == 0, written.stderr
    assert json.loads(written.stdout)["state"] == "Failed"
    assert stored(db)["big-1"][0] == "file:pickle"
    read = run_child(tmp_path, "restart", db, size)  # consume runs again: reads big
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["state"] == "Success"
    assert side_lines(db) == ["big", "consume", "consume"]
    ratios = {
        "write": json.loads(written.stdout)["growth"] / size,
        "read": json.loads(read.stdout)["growth"] / size,
    }
    print(f"peak memory growth for a {size >> 20} MiB result: {ratios}")
    return ratios


def test_a_50_mb_result_round_trips_holding_one_copy(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(THRESHOLD_ENV)  # the default threshold, 1 MiB
    ratios = check_memory(tmp_path, db, 50 * MiB)
    # One copy is 1.0; serializing with dumps() and writing the bytes would be 2.0+.
    assert ratios["write"] < 1.4
    assert ratios["read"] < 1.4


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_500_mb_result_round_trips_holding_one_copy(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(THRESHOLD_ENV)
    ratios = check_memory(tmp_path, db, 500 * MiB)
    assert ratios["write"] < 1.2
    assert ratios["read"] < 1.2
