"""Notifiers as state handlers, against a real local HTTP server and SMTP responder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from durable import Flow, task
from durable.states import Failed, Running, Success
from durable.tasks.notify import (
    email_notifier,
    slack_message,
    slack_notifier,
    webhook_notifier,
)
from tests.tasks.servers import http_server, smtp_server


def failing_flow(*handlers: object, flow_handlers: tuple[object, ...] = ()) -> Flow:
    @task(state_handlers=list(handlers))  # type: ignore[arg-type]
    def explode() -> None:
        raise ValueError("boom")

    @task
    def fine() -> int:
        return 1

    with Flow("alerts", state_handlers=list(flow_handlers)) as flow:  # type: ignore[arg-type]
        explode()
        fine()
    return flow


def test_webhook_posts_json_for_failures_only(tmp_path: Path) -> None:
    with http_server() as (base, recorded):
        notify = webhook_notifier(f"{base}/hook", headers={"X-Key": "k"})
        flow = failing_flow(notify, flow_handlers=(notify,))
        state = flow.run(db=tmp_path / "runs.db")
    assert state.is_failed()
    posted = [json.loads(r["body"]) for r in recorded.requests]
    assert [(p["task"], p["state"]) for p in posted] == [
        ("explode", "Failed"),
        (None, "Failed"),
    ]
    task_note = posted[0]
    assert task_note["flow"] == "alerts"
    assert task_note["run_id"]
    assert task_note["run_id"] == posted[1]["run_id"]
    assert "boom" in task_note["message"]
    assert posted[1]["flow"] == "alerts"
    assert recorded.requests[0]["headers"]["X-Key"] == "k"


def test_only_states_chooses_what_is_sent(tmp_path: Path) -> None:
    with http_server() as (base, recorded):
        notify = webhook_notifier(f"{base}/hook", only_states=(Success, Failed))

        @task(state_handlers=[notify])
        def ok() -> int:
            return 1

        with Flow("ok") as flow:
            ok()
        assert flow.run(db=tmp_path / "runs.db").is_successful()
    assert [json.loads(r["body"])["state"] for r in recorded.requests] == ["Success"]


def test_unreachable_webhook_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with http_server() as (base, _):
        pass  # closed again: nothing listens there now
    notify = webhook_notifier(f"{base}/hook", only_states=(Success,))

    @task(state_handlers=[notify])
    def ok() -> int:
        return 1

    with Flow("ok") as flow:
        result = ok()
    with caplog.at_level(logging.WARNING, logger="durable.tasks.notify"):
        state = flow.run(db=tmp_path / "runs.db")
    assert state.is_successful()
    assert state.result[result].result == 1
    assert "could not notify" in caplog.text


def test_slack_message_format() -> None:
    @task
    def load() -> None: ...

    message = slack_message(load, Running(), Failed("Error during execution: boom"))
    assert message == {
        "text": "Task 'load' is now Failed (was Running)",
        "attachments": [
            {
                "color": Failed.color,
                "blocks": [
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "*Task 'load' is now Failed (was Running)*",
                        },
                    },
                    {
                        "type": "section",
                        "fields": [
                            {"type": "mrkdwn", "text": "*Flow*\n-"},
                            {"type": "mrkdwn", "text": "*Run*\n-"},
                            {"type": "mrkdwn", "text": "*Task*\nload"},
                            {"type": "mrkdwn", "text": "*State*\nFailed"},
                        ],
                    },
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "Error during execution: boom",
                        },
                    },
                ],
            }
        ],
    }


def test_slack_notifier_posts_the_message(tmp_path: Path) -> None:
    with http_server() as (base, recorded):
        flow = failing_flow(slack_notifier(f"{base}/slack"))
        flow.run(db=tmp_path / "runs.db")
    (posted,) = [json.loads(r["body"]) for r in recorded.requests]
    assert posted["text"] == "Task 'explode' is now Failed (was Running)"
    fields = posted["attachments"][0]["blocks"][1]["fields"]
    assert fields[0] == {"type": "mrkdwn", "text": "*Flow*\nalerts"}


def test_email_notifier_sends_through_smtp(tmp_path: Path) -> None:
    with smtp_server() as (port, recorded):
        notify = email_notifier(
            ["ops@example.com", "dev@example.com"],
            smtp_port=port,
            smtp_host="127.0.0.1",
            sender="durable@example.com",
        )
        state = failing_flow(notify).run(db=tmp_path / "runs.db")
    assert state.is_failed()
    (mail,) = recorded.mails
    assert mail["from"] == "durable@example.com"
    assert mail["to"] == ["ops@example.com", "dev@example.com"]
    assert "Subject: [durable] Task 'explode': Failed" in mail["data"]
    assert "flow: alerts" in mail["data"]
    assert "boom" in mail["data"]


def test_email_failure_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with smtp_server() as (port, _):
        pass  # closed again
    notify = email_notifier("ops@example.com", smtp_host="127.0.0.1", smtp_port=port)
    with caplog.at_level(logging.WARNING, logger="durable.tasks.notify"):
        state = failing_flow(notify).run(db=tmp_path / "runs.db")
    assert state.is_failed()  # failed by the task, not the notifier
    assert "could not notify" in caplog.text
