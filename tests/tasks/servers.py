"""Real local servers for the task-library tests: HTTP and a minimal SMTP responder."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Recorded:
    """What a test server received."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.mails: list[dict[str, Any]] = []


class _Http(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.recorded.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "body": body,
                "headers": dict(self.headers),
            }
        )
        if self.path.startswith("/slow"):
            self.server.release.wait(5)  # answer late: after the client's timeout
        status = 404 if self.path.startswith("/missing") else 200
        if self.path.startswith("/echo"):
            payload = {"method": self.command, "path": self.path,
                       "json": json.loads(body) if body else None}  # fmt: skip
        elif status == 404:
            payload = {"error": "no such thing " + "x" * 1000}
        else:
            payload = {"hello": "world"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (the timeout test)

    do_GET = do_POST = _reply  # noqa: N815 (the stdlib names)


@contextmanager
def http_server() -> Iterator[tuple[str, Recorded]]:
    """Serve on 127.0.0.1 on a free port; yield the base URL and what it received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Http)
    server.daemon_threads = True
    server.recorded = Recorded()  # type: ignore[attr-defined]
    server.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.recorded  # type: ignore[attr-defined]
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: HELO/EHLO, MAIL, RCPT, DATA, QUIT."""

    server: Any

    def send(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.send("220 localhost test SMTP")
        mail: dict[str, Any] = {"to": []}
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("HELO", "EHLO"):
                self.send("250 localhost")
            elif verb == "MAIL":
                mail["from"] = command.split(":", 1)[1].strip(" <>")
                self.send("250 OK")
            elif verb == "RCPT":
                mail["to"].append(command.split(":", 1)[1].strip(" <>"))
                self.send("250 OK")
            elif verb == "DATA":
                self.send("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data.decode())
                mail["data"] = "".join(lines)
                self.server.recorded.mails.append(mail)
                mail = {"to": []}
                self.send("250 OK: queued")
            elif verb == "QUIT":
                self.send("221 Bye")
                return
            else:
                self.send("250 OK")


@contextmanager
def smtp_server() -> Iterator[tuple[int, Recorded]]:
    """A local SMTP responder; yield its port and the mails it received."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.daemon_threads = True
    server.recorded = Recorded()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.recorded  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
