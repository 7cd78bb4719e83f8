"""Every Python snippet in README.md and docs/*.md runs, on a database of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
SNIPPETS = [
    pytest.param(code, id=f"{path.name}:{n}")
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for n, code in enumerate(BLOCK.findall(path.read_text()), start=1)
]


@pytest.mark.parametrize("code", SNIPPETS)
def test_snippet_runs(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLE_DB", str(tmp_path / "docs.db"))
    monkeypatch.setenv("DURABLE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})  # noqa: S102 (our own docs)
