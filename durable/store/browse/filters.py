"""The run filter the TUI's `/` prompt takes: `state:failed|timedout flow:etl since:1h foo`.

Pure parsing, no I/O; `durable.store.browse.ReadModel.runs` turns a `RunFilter` into SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from durable import states

FIELDS = ("state", "flow", "since")
"""The `field:value` words a filter understands."""

SPANS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
"""The units of `since:` (30m, 1h, 24h, 7d, 2w), in seconds."""


def _state_names() -> dict[str, str]:
    # Every state class the runtime records, by lower-case name: Pending, Running,
    # Retrying, Success, Failed, TimedOut, TriggerFailed, Cancelled, ...
    found: dict[str, str] = {}
    pending = [states.State]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not states.State and cls.__module__ == states.__name__:
            found[cls.__name__.lower()] = cls.__name__
    return dict(sorted(found.items()))


STATES = _state_names()
"""The state names `state:` accepts, by their lower-case spelling."""

_EXAMPLES = {"state": "state:failed|timedout", "flow": "flow:etl", "since": "since:1h"}
_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class FilterError(ValueError):
    """A filter the prompt cannot use: names the field or value, lists the valid ones."""

    def __init__(
        self, message: str, *, field: str = "", valid: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.field = field
        """The field at fault (state, flow, since, or the unknown one given)."""
        self.valid = valid
        """What would have been accepted there."""


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs the Runs screen lists: every condition given must hold (AND)."""

    state: frozenset[str] = frozenset()
    """Run states, as the runtime spells them (Failed, TimedOut); empty: any state."""
    flow: str | None = None
    """A flow's exact name."""
    since: float | None = None
    """Unix seconds: only runs created at or after this instant."""
    text: str | None = None
    """Bare words: each must start the run id or occur in the flow name (any case)."""


def parse_filter(text: str, *, now: float) -> RunFilter:
    """Parse the filter prompt's text into a `RunFilter`.

    Words are `field:value` or bare text. `state:` takes state names in any case,
    several joined by `|`; `flow:` an exact flow name; `since:` a span back from
    `now` (30m, 1h, 24h, 7d). Bare words are kept, in order, as `text`.

    Raises:
        FilterError: an unknown field, an empty value, an unknown state or a span that
            is not a number and a unit; the message says which and lists valid ones.
    """
    found: set[str] = set()
    flow: str | None = None
    since: float | None = None
    words: list[str] = []
    for word in text.split():
        field, colon, value = word.partition(":")
        if not colon:
            words.append(word)
            continue
        field = field.lower()
        if field not in FIELDS:
            raise FilterError(
                f"Unknown filter field {field!r}; use one of: "
                + ", ".join(f"{f}:" for f in FIELDS),
                field=field, valid=FIELDS,
            )  # fmt: skip
        if not value:
            raise FilterError(
                f"The filter field {field!r} needs a value, as in {_EXAMPLES[field]}",
                field=field, valid=FIELDS,
            )  # fmt: skip
        if field == "state":
            found.update(_parse_states(value))
        elif field == "flow":
            flow = value
        else:
            since = now - _parse_span(value)
    return RunFilter(frozenset(found), flow, since, " ".join(words) or None)


def _parse_states(value: str) -> set[str]:
    names = set()
    for part in value.split("|"):
        name = STATES.get(part.lower())
        if name is None:
            valid = tuple(STATES.values())
            raise FilterError(
                f"Unknown state {part!r} in the filter; use one of: "
                + ", ".join(s.lower() for s in valid),
                field="state", valid=valid,
            )  # fmt: skip
        names.add(name)
    return names


def _parse_span(value: str) -> float:
    match = _SPAN.fullmatch(value.lower())
    if match is None:
        raise FilterError(
            f"since:{value} is not a span; write a number and a unit, as in since:30m,"
            " since:1h, since:24h or since:7d",
            field="since", valid=tuple(SPANS),
        )  # fmt: skip
    return float(match[1]) * SPANS[match[2]]


# The log tail's filter -------------------------------------------------------------------
LOG_FIELDS = ("flow", "run", "level")
"""The `field:value` words the log tail's filter understands."""

LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40,
          "critical": 50}  # fmt: skip
"""The names `level:` takes (or a number), the minimum level shown."""


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which log lines the global tail shows: every condition given must hold (AND)."""

    flow: str | None = None
    """A flow's exact name."""
    run: str | None = None
    """A flow run's exact id."""
    level: int = 0
    """The lowest level shown (logging's numbers: 30 is WARNING)."""
    text: tuple[str, ...] = ()
    """Words that must each occur in the message (ASCII letters in any case)."""


def parse_log_filter(text: str) -> LogFilter:
    """Parse the log tail's filter (`flow:etl level:warning run:ID words`).

    Any other word, colons included, is text to find in the message.

    Raises:
        FilterError: a field without a value or an unknown level; the message says
            which and lists the valid ones.
    """
    values: dict[str, str] = {}
    words: list[str] = []
    for word in text.split():
        field, colon, value = word.partition(":")
        field = field.lower()
        if not colon or field not in LOG_FIELDS:
            words.append(word)  # messages hold colons: `ValueError:` is a word
            continue
        if not value:
            raise FilterError(
                f"The filter field {field!r} needs a value, as in {field}:"
                + {"flow": "etl", "run": "<run id>", "level": "warning"}[field],
                field=field, valid=LOG_FIELDS,
            )  # fmt: skip
        values[field] = value
    level = values.get("level", "0")
    number = int(level) if level.isdigit() else LEVELS.get(level.lower())
    if number is None:
        raise FilterError(
            f"Unknown level {level!r} in the filter; use one of: "
            + ", ".join(n for n in LEVELS if n != "warn") + ", or a number",
            field="level", valid=tuple(LEVELS),
        )  # fmt: skip
    return LogFilter(values.get("flow"), values.get("run"), number, tuple(words))
