"""A ProcessExecutor worker process: `main(FD)`, started with the flow process's sys.path.

It reads packed body calls from the connection on file descriptor FD, runs each, streams
the body's log records back as they happen and then its outcome. Messages are framed by
`multiprocessing.connection`; the first byte of each says what it is: `L` a log line,
`D` an outcome. It exits when the flow's process closes the connection (or dies).
Ctrl-C is ignored here: the flow's process decides, and kills its workers when it stops.
"""

from __future__ import annotations

import pickle
import signal
import threading
from typing import TYPE_CHECKING

from durable.executors import body

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

LOG, DONE = b"L", b"D"


def serve(conn: Connection) -> None:
    """Run body calls from `conn` until it closes."""
    lock = threading.Lock()  # a body's threads may log at the same time

    def send_line(line: body.LogLine) -> None:
        data = LOG + pickle.dumps(line, protocol=pickle.HIGHEST_PROTOCOL)
        with lock:
            conn.send_bytes(data)

    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        outcome = body.execute(data, send_line, whole_process=True)
        with lock:
            conn.send_bytes(DONE + outcome)


def main(fd: int) -> None:
    """Serve the flow's process on the inherited connection `fd`."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        serve(Connection(fd))
    except BrokenPipeError:  # the flow's process went away mid-reply
        return
