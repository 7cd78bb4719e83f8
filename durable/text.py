"""Text from the database made safe for a terminal: the CLI prints nothing else.

A database given on the command line is not trusted (docs/secrets.md, "Trust model"): a
task name, a log line or a state message may hold escape sequences that would clear the
screen, retitle the window or write the clipboard (OSC 52). `clean` replaces every control
character but tab and newline, so such text is shown, never obeyed.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
REPLACEMENT = "\N{REPLACEMENT CHARACTER}"
"""What a control character is shown as."""


def clean(value: object) -> str:
    """Return `value` as text without control characters (tab and newline stay)."""
    return _CONTROL.sub(REPLACEMENT, "" if value is None else str(value))
