"""Schedules with Prefect 1's API: clocks, filters, adjustments and `Schedule`.

Pure: `schedule.next(n, after=t)` and `clock.events(after=t)` depend only on their
arguments and never read the clock. docs/schedules.md describes each piece and the DST
policy.
"""

from durable.schedules import adjustments, clocks, filters
from durable.schedules.clocks import (
    ClockEvent,
    CronClock,
    DatesClock,
    IntervalClock,
    RRuleClock,
)
from durable.schedules.cron import next_fire_times
from durable.schedules.schedules import (
    CronSchedule,
    IntervalSchedule,
    RRuleSchedule,
    Schedule,
)

__all__ = [
    "ClockEvent",
    "CronClock",
    "CronSchedule",
    "DatesClock",
    "IntervalClock",
    "IntervalSchedule",
    "RRuleClock",
    "RRuleSchedule",
    "Schedule",
    "adjustments",
    "clocks",
    "filters",
    "next_fire_times",
]
