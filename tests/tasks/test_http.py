"""HttpRequest against a real local HTTP server started by the test."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from durable import Flow, task
from durable.errors import ConfigurationError
from durable.tasks.http import HttpError, HttpRequest, HttpResponse
from tests.tasks.servers import http_server


def test_get_json_in_a_flow(tmp_path: Path) -> None:
    with http_server() as (base, recorded):
        fetch = HttpRequest(f"{base}/data", params={"page": 2})

        @task
        def greet(payload: dict[str, str]) -> str:
            return f"hello {payload['hello']}"

        with Flow("http") as flow:
            greeting = greet(fetch())
        state = flow.run(db=tmp_path / "runs.db")
    assert state.is_successful()
    assert state.result[greeting].result == "hello world"
    assert recorded.requests[0]["method"] == "GET"
    assert recorded.requests[0]["path"] == "/data?page=2"


def test_post_json_body_reaches_the_server(tmp_path: Path) -> None:
    with http_server() as (base, recorded):
        post = HttpRequest(method="POST", headers={"X-Token": "t"})
        with Flow("post") as flow:
            reply = post(url=f"{base}/echo", json={"n": 1, "items": ["a"]})
        state = flow.run(db=tmp_path / "runs.db")
    assert state.is_successful()
    assert state.result[reply].result == {
        "method": "POST",
        "path": "/echo",
        "json": {"n": 1, "items": ["a"]},
    }
    sent = recorded.requests[0]
    assert json.loads(sent["body"]) == {"n": 1, "items": ["a"]}
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["X-Token"] == "t"


def test_unexpected_status_fails_with_status_url_and_body(tmp_path: Path) -> None:
    with http_server() as (base, recorded):
        fetch = HttpRequest(f"{base}/missing", max_retries=1, retry_delay=0.01)
        with Flow("404") as flow:
            fetch()
        state = flow.run(db=tmp_path / "runs.db")
    assert state.is_failed()
    assert len(recorded.requests) == 2  # retried once
    failed = state.result[flow.get_tasks()[0]]
    assert "404" in failed.message
    assert f"{base}/missing" in failed.message
    assert "no such thing" in failed.message
    error = failed.result
    assert isinstance(error, HttpError)
    assert error.status == 404
    excerpt = str(error).split(": ", 1)[1]
    assert len(excerpt.encode()) <= 500
    assert pickle.loads(pickle.dumps(error)).status == 404


def test_expect_status_and_result_kinds() -> None:
    with http_server() as (base, _):
        response = HttpRequest(
            f"{base}/missing", expect_status={404}, result="response"
        ).run()
        text = HttpRequest(f"{base}/data", result="text").run()
        raw = HttpRequest(f"{base}/data", result="bytes").run()
    assert isinstance(response, HttpResponse)
    assert response.status == 404
    assert response.headers["content-type"] == "application/json"
    assert json.loads(text) == {"hello": "world"} == json.loads(raw)


def test_timeout_fails_with_a_clear_message() -> None:
    with (
        http_server() as (base, _),
        pytest.raises(HttpError, match=r"timed out after 0\.1s"),
    ):
        HttpRequest(f"{base}/slow", timeout=0.1).run()


def test_connection_refused_fails_clearly() -> None:
    with http_server() as (base, _):
        pass  # the port is closed again
    with pytest.raises(HttpError, match=r"GET http://127\.0\.0\.1:\d+/ failed"):
        HttpRequest(f"{base}/").run()


def test_bad_result_kind_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="result="):
        HttpRequest("http://x", result="xml")  # type: ignore[arg-type]
