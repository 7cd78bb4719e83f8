"""Targets: templated result files that stand in for a task run; the caching docs run."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from durable import Flow, Parameter, task
from durable.engine import caching
from durable.states import Cached, Failed, Success
from durable.timesource import FakeTime
from tests.engine.helpers import history, run

pytestmark = pytest.mark.anyio


def results(db: Path) -> Path:
    """Where relative targets of the test database go."""
    return db.parent / "results"


def leftovers(directory: Path) -> list[str]:
    """Temporary files an interrupted or finished write left behind."""
    return sorted(p.name for p in directory.rglob("*.tmp"))


def targeted_flow(calls: list[Any], target: Any, **options: Any) -> tuple[Flow, Any]:
    @task(target=target, **options)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    with Flow("t") as flow:
        squared = square(Parameter("n", default=4))
    return flow, squared


class TestTemplates:
    async def test_keys_come_from_parameters_context_and_inputs(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        flow, _ = targeted_flow(
            calls, "{flow_name}/{task_name}/{today}/{parameters[n]}-{x}.pkl"
        )
        await run(flow, db, time=fake_time)
        assert (results(db) / "t/square/2026-01-01/4-4.pkl").is_file()

    async def test_an_input_wins_over_a_parameter_of_the_same_name(
        self, db: Path
    ) -> None:
        @task(target="{n}.pkl")
        def echo(n: int) -> int:
            return n

        with Flow("t") as flow:
            n = Parameter("n", default=1)
            echo(10, upstream_tasks=[n])
        await run(flow, db)
        assert sorted(p.name for p in results(db).iterdir()) == ["10.pkl"]

    async def test_a_callable_target_gets_the_same_keys(self, db: Path) -> None:
        calls: list[int] = []

        def location(**values: Any) -> str:
            return f"by-callable/{values['flow_name']}-{values['x']}.pkl"

        flow, _ = targeted_flow(calls, location)
        await run(flow, db)
        assert (results(db) / "by-callable/t-4.pkl").is_file()

    async def test_an_absolute_target_is_used_as_is(
        self, db: Path, tmp_path: Path
    ) -> None:
        calls: list[int] = []
        target = tmp_path / "elsewhere" / "{x}.pkl"
        flow, _ = targeted_flow(calls, str(target))
        await run(flow, db)
        assert pickle.loads((tmp_path / "elsewhere" / "4.pkl").read_bytes()) == 16

    async def test_a_template_that_cannot_be_filled_fails_naming_it(
        self, db: Path
    ) -> None:
        calls: list[int] = []
        flow, squared = targeted_flow(calls, "{no_such_key}.pkl")
        state = await run(flow, db)
        failed = state.result[squared]
        assert isinstance(failed, Failed)
        assert "{no_such_key}.pkl" in (failed.message or "")
        assert calls == []


class TestCheckTarget:
    async def test_an_existing_target_skips_the_body(self, db: Path) -> None:
        calls: list[int] = []
        flow, squared = targeted_flow(calls, "{task_name}/{x}.pkl")
        path = results(db) / "square" / "4.pkl"
        path.parent.mkdir(parents=True)
        path.write_bytes(pickle.dumps("from the file"))
        state = await run(flow, db, run_id="r1")
        found = state.result[squared]
        assert isinstance(found, Cached)
        assert found.result == "from the file"
        assert str(path) in (found.message or "")
        assert calls == []
        assert history(db, "r1", "square-1") == ["Cached"]

    async def test_the_second_run_reads_what_the_first_wrote(self, db: Path) -> None:
        calls: list[int] = []
        flow, squared = targeted_flow(calls, "{x}.pkl")
        first = await run(flow, db)
        second = await run(flow, db)
        assert type(first.result[squared]) is Success
        assert isinstance(second.result[squared], Cached)
        assert second.result[squared].result == 16
        assert calls == [4]

    async def test_an_unreadable_target_fails_naming_the_file(self, db: Path) -> None:
        calls: list[int] = []
        flow, squared = targeted_flow(calls, "{x}.pkl")
        path = results(db) / "4.pkl"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"not a pickle")
        state = await run(flow, db)
        failed = state.result[squared]
        assert isinstance(failed, Failed)
        assert str(path) in (failed.message or "")
        assert calls == []

    async def test_a_target_is_read_with_the_task_serializer(self, db: Path) -> None:
        calls: list[int] = []
        flow, squared = targeted_flow(calls, "{x}.json", serializer="json")
        await run(flow, db)
        assert json.loads((results(db) / "4.json").read_text()) == 16
        state = await run(flow, db)
        assert state.result[squared].result == 16
        assert calls == [4]


class TestWriteTarget:
    async def test_the_written_file_is_complete_and_no_temporary_file_remains(
        self, db: Path
    ) -> None:
        calls: list[int] = []
        flow, _ = targeted_flow(calls, "deep/er/{x}.pkl")
        await run(flow, db)
        path = results(db) / "deep" / "er" / "4.pkl"
        assert pickle.loads(path.read_bytes()) == 16
        assert leftovers(results(db)) == []

    async def test_a_none_result_is_not_written(self, db: Path) -> None:
        @task(target="nothing.pkl")
        def nothing() -> None:
            return None

        with Flow("t") as flow:
            nothing()
        state = await run(flow, db)
        assert state.is_successful()
        assert not (results(db) / "nothing.pkl").exists()

    async def test_checkpoint_false_writes_no_target(self, db: Path) -> None:
        calls: list[int] = []
        flow, _ = targeted_flow(calls, "{x}.pkl", checkpoint=False)
        await run(flow, db)
        assert not (results(db) / "4.pkl").exists()

    async def test_an_unwritable_target_fails_naming_the_file(self, db: Path) -> None:
        calls: list[int] = []
        flow, squared = targeted_flow(calls, "blocked/{x}.pkl")
        results(db).mkdir()
        (results(db) / "blocked").write_text("a file where a directory should be")
        state = await run(flow, db)
        failed = state.result[squared]
        assert isinstance(failed, Failed)
        assert str(results(db) / "blocked" / "4.pkl") in (failed.message or "")


class TestWriteAtomically:
    def test_it_replaces_an_existing_file_whole(self, tmp_path: Path) -> None:
        path = tmp_path / "out.bin"
        path.write_bytes(b"old")
        caching.write_atomically(path, b"new" * 1000)
        assert path.read_bytes() == b"new" * 1000
        assert leftovers(tmp_path) == []

    def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "out.bin"
        path.write_bytes(b"old")

        def no_space(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", no_space)
        with pytest.raises(OSError, match="No space"):
            caching.write_atomically(path, b"new")
        assert path.read_bytes() == b"old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


DOCS = Path(__file__).resolve().parents[2] / "docs" / "caching.md"
SNIPPET = re.compile(r"```python\n(.*?)```(?:\n\nprints\n\n```\n(.*?)```)?", re.DOTALL)
"""A python block of the docs, with the output the docs show after it, if any."""
DOCS_SNIPPETS = [
    (code, printed or None)
    for code, printed in SNIPPET.findall(DOCS.read_text(encoding="utf-8"))
]


@pytest.mark.parametrize(
    ("snippet", "printed"),
    DOCS_SNIPPETS,
    ids=[f"snippet-{n}" for n in range(1, len(DOCS_SNIPPETS) + 1)],
)
def test_each_snippet_of_the_caching_docs_prints_what_the_docs_show(
    snippet: str,
    printed: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # the snippets' databases and targets land here
    namespace: dict[str, Any] = {"__name__": "docs_snippet"}
    exec(compile(snippet, str(DOCS), "exec"), namespace)  # noqa: S102 (our own docs)
    if printed is not None:
        assert capsys.readouterr().out == printed
