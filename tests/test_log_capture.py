"""`log_stdout`: each capturing block keeps its own unfinished line, so mapped children
that share a logger and print from threads at the same time never mix their lines."""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator

import pytest

from durable.log import capture_prints


@pytest.fixture
def records() -> Iterator[list[str]]:
    logger = logging.getLogger("durable.test.capture")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


def test_interleaved_prints_of_two_blocks_on_one_logger_stay_apart(
    records: list[str],
) -> None:
    logger = logging.getLogger("durable.test.capture")
    a, b = contextvars.copy_context(), contextvars.copy_context()
    blocks = [capture_prints(logger), capture_prints(logger)]
    a.run(blocks[0].__enter__)
    b.run(blocks[1].__enter__)
    # What two threads printing at once do: print writes the text, then the newline.
    a.run(sys.stdout.write, "child 0 says hi")
    b.run(sys.stdout.write, "child 1 says hi")
    a.run(sys.stdout.write, "\n")
    b.run(sys.stdout.write, "\n")
    a.run(sys.stdout.write, "unfinished 0")
    a.run(blocks[0].__exit__, None, None, None)
    b.run(blocks[1].__exit__, None, None, None)

    assert records == ["child 0 says hi", "child 1 says hi", "unfinished 0"]
