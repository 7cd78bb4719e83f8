"""`make screenshots` keeps working: the README's SVGs come from `tui.screenshots`."""

from __future__ import annotations

from pathlib import Path

from tui.screenshots import save


async def test_the_readme_screenshots_show_the_runs_and_a_failed_run(
    tmp_path: Path,
) -> None:
    runs, detail = await save(tmp_path)  # tmp_path is absolute

    runs_svg, detail_svg = runs.read_text(), detail.read_text()
    assert runs_svg.startswith("<svg")
    for text in ("run-5", "run-4", "etl_daily", "Failed"):
        assert text in runs_svg
    for text in ("load_warehouse-1", "audit-1", "2&#160;failed", "Retry"):
        assert text in detail_svg, text
