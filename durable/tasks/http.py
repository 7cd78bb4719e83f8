"""HTTP requests as a task, with the standard library's `urllib.request`.

`HttpRequest` sends one request and returns the decoded body. A status outside
`expect_status` fails the task run with the status, the URL and the start of the body; a
network error (refused connection, timeout, DNS) fails it too, so `max_retries` retries
both. The blocking call runs in the executor's thread like any synchronous task body.
"""

from __future__ import annotations

import json as jsonlib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any, Literal

from durable import signals
from durable.core.task import Task
from durable.errors import ConfigurationError

__all__ = ["HttpError", "HttpRequest", "HttpResponse"]

ResultKind = Literal["json", "text", "bytes", "response"]
BODY_EXCERPT = 500
"""How many bytes of an unexpected response's body a failure message quotes."""


class HttpError(Exception):
    """A request failed: an unexpected status (`status` set) or a network error."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        # Failed results are pickled: keep the keyword arguments.
        return (_rebuild_error, (str(self), self.url, self.status))


def _rebuild_error(message: str, url: str, status: int | None) -> HttpError:
    return HttpError(message, url=url, status=status)


class HttpResponse:
    """What `result="response"` returns: status, headers (lower-case names) and body."""

    def __init__(
        self, url: str, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        self.url, self.status, self.headers, self.body = url, status, headers, body

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status} {self.url}>"


class HttpRequest(Task):
    """Send an HTTP request and return its body, as JSON by default.

    Every argument given here can also be given (or overridden) when the task is called
    in a flow: `HttpRequest(method="POST")(url=..., json=...)`. `timeout` is the request's
    socket timeout in seconds; the task option of that name is not available here (use a
    request timeout, or wrap the task). `result` chooses what the task returns: `"json"`,
    `"text"`, `"bytes"` or `"response"` (an `HttpResponse`), so Task's `result=` option is
    not available either.
    """

    def __init__(
        self,
        url: str | None = None,
        method: str = "GET",
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | str | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | timedelta = 30.0,
        expect_status: Collection[int] = range(200, 300),
        result: ResultKind = "json",
        **task_kwargs: Any,
    ) -> None:
        if result not in ("json", "text", "bytes", "response"):
            raise ConfigurationError(
                f"HttpRequest result={result!r}: use 'json', 'text', 'bytes' or 'response'"
            )
        self.url, self.method = url, method
        self.params, self.json, self.data, self.headers = params, json, data, headers
        self.request_timeout = as_seconds(timeout)
        """The socket timeout of each request, in seconds."""
        self.expect_status = expect_status
        self.result_kind: ResultKind = result
        task_kwargs.setdefault("name", f"HttpRequest {method}")
        super().__init__(**task_kwargs)

    def run(
        self,
        url: str | None = None,
        method: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | str | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send the request; fail on an unexpected status or a network error."""
        url = url or self.url
        if not url:
            raise signals.FAIL("HttpRequest needs a url (at construction or at call)")
        method = (method or self.method).upper()
        params = params if params is not None else self.params
        if params:
            url += ("&" if urllib.parse.urlsplit(url).query else "?") + (
                urllib.parse.urlencode(params, doseq=True)
            )
        body, all_headers = encode_body(
            json if json is not None else self.json,
            data if data is not None else self.data,
        )
        all_headers.update(self.headers or {})
        all_headers.update(headers or {})
        request = urllib.request.Request(
            url, data=body, headers=all_headers, method=method
        )
        response = self.send(request)
        if response.status not in self.expect_status:
            excerpt = response.body[:BODY_EXCERPT].decode("utf-8", errors="replace")
            raise HttpError(
                f"{method} {url} returned HTTP {response.status}: {excerpt}",
                url=url,
                status=response.status,
            )
        return self.decode(response)

    def send(self, request: urllib.request.Request) -> HttpResponse:
        """Send `request`; an HTTP error status is a response here, not an exception."""
        url = request.full_url
        try:
            with urllib.request.urlopen(request, timeout=self.request_timeout) as reply:
                return HttpResponse(
                    url, reply.status, lower(reply.headers), reply.read()
                )
        except urllib.error.HTTPError as error:
            with error:
                return HttpResponse(url, error.code, lower(error.headers), error.read())
        except TimeoutError as exc:
            raise HttpError(
                f"{request.get_method()} {url} timed out after {self.request_timeout}s",
                url=url,
            ) from exc
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                message = f"timed out after {self.request_timeout}s"
            else:
                message = f"failed: {reason}"
            raise HttpError(f"{request.get_method()} {url} {message}", url=url) from exc
        except OSError as exc:  # a connection reset while reading, say
            raise HttpError(
                f"{request.get_method()} {url} failed: {exc}", url=url
            ) from exc

    def decode(self, response: HttpResponse) -> Any:
        """Turn the response into what `result=` asked for."""
        kind = self.result_kind
        if kind == "response":
            return response
        if kind == "bytes":
            return response.body
        if kind == "text":
            return response.text
        if not response.body.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:
            excerpt = response.body[:BODY_EXCERPT].decode("utf-8", errors="replace")
            raise HttpError(
                f"{response.url} did not return JSON ({exc}): {excerpt}",
                url=response.url,
                status=response.status,
            ) from exc


def encode_body(json: Any, data: bytes | str | Mapping[str, Any] | None
                ) -> tuple[bytes | None, dict[str, str]]:  # fmt: skip
    """Return the request body and the Content-Type it implies."""
    if json is not None and data is not None:
        raise signals.FAIL("HttpRequest takes json= or data=, not both")
    if json is not None:
        return jsonlib.dumps(json).encode(), {"Content-Type": "application/json"}
    if isinstance(data, Mapping):
        form = urllib.parse.urlencode(data, doseq=True).encode()
        return form, {"Content-Type": "application/x-www-form-urlencoded"}
    if isinstance(data, str):
        return data.encode(), {}
    return data, {}


def as_seconds(value: float | timedelta) -> float:
    """A timeout given as seconds or a timedelta, in seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def lower(headers: Any) -> dict[str, str]:
    """Response headers as a dict with lower-case names."""
    return {k.lower(): v for k, v in headers.items()} if headers is not None else {}
