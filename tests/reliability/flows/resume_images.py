"""Resume many crash images of one flow run in one process (RELIABILITY B0/B1/B2).

    python resume_images.py FLOW_FILE FLOW DURABILITY DB SIDE_LOG RUN_ID [DB SIDE_LOG RUN_ID...]

For each image, in order: point `$REL_SIDE_LOG` at its side log, then drive run RUN_ID
of the image's database to its end with durable's engine, as `durable resume RUN_ID
--executor local` does (or as `durable run --run-id RUN_ID` does when the image holds no
such run yet: it was lost with the tail of the log). The local executor halves the
engine's time per image; which executor resumes does not change what is recovered. Prints `image <db> <final state>` per image, or
`image <db> error <message>`. One interpreter for all the images: a `durable resume`
process per image would spend most of its time starting Python.
"""

from __future__ import annotations

import os
import sys

from durable.cli.loading import load_flow
from durable.engine.flow_runner import run_flow
from durable.executors import LocalExecutor


def main(argv: list[str]) -> int:
    file, name, durability, *images = argv
    flow = load_flow(file, name)
    for db, side_log, run_id in zip(
        images[::3], images[1::3], images[2::3], strict=True
    ):
        os.environ["REL_SIDE_LOG"] = side_log
        try:
            state = run_flow(
                flow, db=db, run_id=run_id, durability=durability,
                executor=LocalExecutor(),
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 (reported per image; the next goes on)
            print(f"image {db} error {type(exc).__name__}: {exc}", flush=True)
            continue
        print(f"image {db} {state.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
