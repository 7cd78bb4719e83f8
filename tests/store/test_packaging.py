"""What registration stores about a flow: its copy, its schedule and its hash."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path

import pendulum
import pytest
from dateutil import rrule  # type: ignore[import-untyped]

from durable import Flow, task
from durable.cli import load_flows
from durable.errors import ConfigurationError
from durable.schedules import (
    CronClock,
    CronSchedule,
    DatesClock,
    IntervalClock,
    IntervalSchedule,
    RRuleSchedule,
    Schedule,
    adjustments,
    filters,
)
from durable.store.packaging import describe_schedule, package_flow

NEW_YEAR = pendulum.datetime(2026, 1, 1, tz="UTC")
BERLIN_MARCH = pendulum.datetime(2026, 3, 1, 9, tz="Europe/Berlin")

FLOW_FILE = """\
from datetime import timedelta

import pendulum

from durable import Flow, Task, task
from durable.schedules import IntervalSchedule


@task(tags=["nightly", "etl", "sales", "eu"])
def extract():
    return {body}


class Load(Task):
    def run(self, rows):
        return len(rows)


schedule = IntervalSchedule(
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), interval=timedelta(hours=1)
)
with Flow("etl", schedule=schedule) as flow:
    Load()(extract())
"""


def write_flow_file(folder: Path, body: str = "[1, 2, 3]") -> Path:
    path = folder / "etl.py"
    path.write_text(FLOW_FILE.format(body=body))
    return path


def load(path: Path) -> Flow:
    return load_flows(str(path))["etl"]


class Homemade:
    """A schedule-like object that is not a durable Schedule."""

    def __repr__(self) -> str:
        return "<Homemade>"

    def next(self, n: int, after: object = None) -> list[object]:
        return []


@task
def add(x: int, y: int) -> int:
    return x + y


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (IntervalSchedule(NEW_YEAR, timedelta(hours=1)), "every hour from 2026-01-01 00:00 UTC"),
        (IntervalSchedule(NEW_YEAR, timedelta(minutes=90)), "every 1 hour 30 minutes from 2026-01-01 00:00 UTC"),
        (IntervalSchedule(NEW_YEAR, timedelta(days=2)), "every 2 days from 2026-01-01 00:00 UTC"),
        (IntervalSchedule(NEW_YEAR, timedelta(seconds=1.5)), "every 1.5 seconds from 2026-01-01 00:00 UTC"),
        (IntervalSchedule(NEW_YEAR.add(seconds=30), timedelta(minutes=5), NEW_YEAR.add(days=1)),
         "every 5 minutes from 2026-01-01 00:00:30 UTC until 2026-01-02 00:00 UTC"),
        (CronSchedule("0 9 * * *", timezone="Europe/Berlin"), "cron '0 9 * * *' in Europe/Berlin"),
        (CronSchedule("0 9 * * 1-5", BERLIN_MARCH),
         "cron '0 9 * * 1-5' in Europe/Berlin from 2026-03-01 09:00 Europe/Berlin"),
        (Schedule(clocks=[DatesClock([NEW_YEAR])]), "once at 2026-01-01 00:00 UTC"),
        (Schedule(clocks=[DatesClock([NEW_YEAR.add(days=2), NEW_YEAR, NEW_YEAR.add(days=1)])]),
         "3 dates from 2026-01-01 00:00 UTC to 2026-01-03 00:00 UTC"),
        (RRuleSchedule(rrule.rrule(rrule.DAILY, dtstart=NEW_YEAR.naive(), byhour=9)),
         "rrule DTSTART:20260101T000000 RRULE:FREQ=DAILY;BYHOUR=9"),
        (Schedule(clocks=[
            IntervalClock(timedelta(hours=1), NEW_YEAR, parameter_defaults={"n": 1, "a": 2}),
            CronClock("@daily"),
        ]), "every hour from 2026-01-01 00:00 UTC with a, n; cron '@daily' in UTC"),
        (Schedule(clocks=[CronClock("0 * * * *")], filters=[filters.is_weekday],
                  not_filters=[filters.is_month_end], adjustments=[adjustments.next_weekday]),
         "cron '0 * * * *' in UTC (+ 2 filters, 1 adjustment)"),
    ],
)  # fmt: skip
def test_a_schedule_is_described_in_one_line(schedule: Schedule, text: str) -> None:
    assert describe_schedule(schedule) == text


class TestPackageFlow:
    def test_the_copy_and_the_schedule_load_back(self, tmp_path: Path) -> None:
        path = write_flow_file(tmp_path)
        flow = load(path)

        package = package_flow(flow, file=path, registered_at=5.0)

        copy = pickle.loads(package.flow_blob)
        assert package.schedule is not None
        schedule = pickle.loads(package.schedule)
        assert (package.name, package.registered_at) == ("etl", 5.0)
        assert package.fingerprint == flow.fingerprint() == copy.fingerprint()
        assert package.source_path == str(path)
        assert package.schedule_text == "every hour from 2026-01-01 00:00 UTC"
        assert schedule.next(1, after=NEW_YEAR) == [NEW_YEAR.add(hours=1)]

    def test_a_flow_without_a_schedule_has_none(self) -> None:
        with Flow("plain") as flow:
            add(1, 2)

        package = package_flow(flow, file=None, registered_at=1.0)

        assert (package.schedule, package.schedule_text) == (None, None)
        assert package.source_path == __file__

    def test_loading_the_same_file_again_gives_the_same_hash(
        self, tmp_path: Path
    ) -> None:
        # The pickled bytes differ (a new class id on each load), the hash does not.
        path = write_flow_file(tmp_path)
        first = package_flow(load(path), file=path, registered_at=1.0)
        second = package_flow(load(path), file=path, registered_at=2.0)

        assert first.flow_blob != second.flow_blob
        assert first.flow_hash == second.flow_hash

    def test_a_changed_task_body_changes_the_hash_but_not_the_fingerprint(
        self, tmp_path: Path
    ) -> None:
        path = write_flow_file(tmp_path)
        before = package_flow(load(path), file=path, registered_at=1.0)
        write_flow_file(tmp_path, body="[4, 5]")
        after = package_flow(load(path), file=path, registered_at=2.0)

        assert before.fingerprint == after.fingerprint
        assert before.flow_hash != after.flow_hash

    def test_a_schedule_that_is_not_a_durable_schedule_is_refused(self) -> None:
        with Flow("odd", schedule=Homemade()) as flow:
            add(1, 2)

        with pytest.raises(ConfigurationError, match=r"'odd' has schedule=<Homemade>"):
            package_flow(flow, file=None, registered_at=1.0)

    def test_a_flow_that_cannot_be_pickled_is_refused_naming_it(self) -> None:
        with Flow("locked") as flow:
            add(threading.Lock(), 2)

        with pytest.raises(ConfigurationError, match="'locked' cannot be registered"):
            package_flow(flow, file=None, registered_at=1.0)


def test_a_flow_file_of_a_class_and_tags_hashes_alike_in_any_process(
    tmp_path: Path,
) -> None:
    # Another hash seed orders a set of tags differently: only the source is compared.
    path = write_flow_file(tmp_path)
    source = textwrap.dedent(
        f"""
        from durable.cli import load_flows
        from durable.store.packaging import package_flow
        from pathlib import Path

        flow = load_flows({str(path)!r})["etl"]
        print(package_flow(flow, file=Path({str(path)!r}), registered_at=0).flow_hash)
        """
    )
    hashes = {run_python(source, seed) for seed in ("1", "2")}

    assert hashes == {package_flow(load(path), file=path, registered_at=0).flow_hash}


def run_python(source: str, seed: str) -> str:
    """Run Python code in a fresh interpreter with a hash seed; return its output."""
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", source],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()
