"""Mapping: one checkpointed task run per item, then a reduce.

Run it:      durable run examples/mapping.py --param n_pages=50
Each `fetch` child is a task run of its own (see them with `durable show RUN`): kill the
run mid-way and `durable resume RUN` fetches only the pages that were not done.
"""

from __future__ import annotations

import hashlib

from durable import Flow, Parameter, task, unmapped


@task
def page_numbers(n_pages: int) -> list[int]:
    """The pages to fetch."""
    return list(range(1, n_pages + 1))


@task(max_retries=2, retry_delay=0)
def fetch(page: int, site: str) -> str:
    """Fetch one page (here: make up its content)."""
    return (
        f"{site}/page/{page}: " + hashlib.sha256(f"{site}{page}".encode()).hexdigest()
    )


@task
def word_count(text: str) -> int:
    """Count the words of one page (a map of a map: runs page by page)."""
    return len(text.split())


@task(log_stdout=True)
def report(counts: list[int]) -> int:
    """Reduce: the children's results arrive as one list."""
    print(f"{len(counts)} pages, {sum(counts)} words")
    return sum(counts)


with Flow("mapping") as flow:
    n_pages = Parameter("n_pages", default=10)
    pages = fetch.map(page_numbers(n_pages), site=unmapped("https://example.org"))
    report(word_count.map(pages))


if __name__ == "__main__":
    flow.run()
