"""Notifications as state handlers: post to a webhook, send an email, message Slack.

Each helper returns a handler `(task_or_flow, old_state, new_state)` to put in
`state_handlers=[...]` of a task or a flow. It sends only when the new state is one of
`only_states` (default: failures), and never changes the state: a notification that
cannot be delivered logs a warning and the run goes on.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from email.message import EmailMessage
from typing import Any

from durable import context
from durable.core.flow import Flow
from durable.states import Failed, State

__all__ = [
    "email_notifier",
    "notification",
    "slack_message",
    "slack_notifier",
    "webhook_notifier",
]

logger = logging.getLogger(__name__)

Handler = Callable[[Any, State, State], None]
"""A state handler that only observes."""
TIMEOUT = 10.0
"""Seconds a notification may take before it is given up (with a warning)."""


def notification(obj: Any, new_state: State) -> dict[str, Any]:
    """What a notification says: flow, task (None for a flow), run_id, state, message."""
    is_task = not isinstance(obj, Flow)
    name = getattr(obj, "name", None) or repr(obj)
    return {
        "flow": context.get("flow_name") or (None if is_task else name),
        "task": name if is_task else None,
        "run_id": context.get("flow_run_id"),
        "state": new_state.name,
        "message": new_state.message,
    }


def webhook_notifier(
    url: str,
    *,
    only_states: Iterable[type[State]] = (Failed,),
    headers: Mapping[str, str] | None = None,
) -> Handler:
    """POST `{flow, task, run_id, state, message}` as JSON to `url`."""

    def body(obj: Any, new_state: State) -> None:
        post_json(url, notification(obj, new_state), headers)

    return _handler(body, only_states, f"webhook_notifier({url!r})")


def slack_message(obj: Any, old_state: State, new_state: State) -> dict[str, Any]:
    """Format a Slack incoming-webhook message about a state change (pure)."""
    note = notification(obj, new_state)
    what = f"Task {note['task']!r}" if note["task"] else f"Flow {note['flow']!r}"
    title = f"{what} is now {new_state.name} (was {old_state.name})"
    fields = [
        {"type": "mrkdwn", "text": f"*Flow*\n{note['flow'] or '-'}"},
        {"type": "mrkdwn", "text": f"*Run*\n{note['run_id'] or '-'}"},
    ]
    if note["task"]:
        fields.append({"type": "mrkdwn", "text": f"*Task*\n{note['task']}"})
    fields.append({"type": "mrkdwn", "text": f"*State*\n{new_state.name}"})
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
        {"type": "section", "fields": fields},
    ]
    if new_state.message:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": new_state.message}}
        )
    return {
        "text": title,
        "attachments": [{"color": new_state.color, "blocks": blocks}],
    }


def slack_notifier(
    webhook_url: str, *, only_states: Iterable[type[State]] = (Failed,)
) -> Handler:
    """Post `slack_message(...)` to a Slack incoming webhook."""

    def body(obj: Any, new_state: State, old_state: State) -> None:
        post_json(webhook_url, slack_message(obj, old_state, new_state))

    return _handler(body, only_states, "slack_notifier", with_old=True)


def email_notifier(
    to: str | Iterable[str],
    *,
    smtp_host: str = "localhost",
    smtp_port: int = 25,
    sender: str = "durable@localhost",
    only_states: Iterable[type[State]] = (Failed,),
    username: str | None = None,
    password: str | None = None,
    starttls: bool = False,
) -> Handler:
    """Send a plain-text email about the state change through an SMTP server."""
    recipients = [to] if isinstance(to, str) else list(to)

    def body(obj: Any, new_state: State) -> None:
        note = notification(obj, new_state)
        what = f"Task {note['task']!r}" if note["task"] else f"Flow {note['flow']!r}"
        message = EmailMessage()
        message["Subject"] = f"[durable] {what}: {new_state.name}"
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message.set_content(
            "\n".join(f"{key}: {value}" for key, value in note.items()) + "\n"
        )
        with smtplib.SMTP(smtp_host, smtp_port, timeout=TIMEOUT) as smtp:
            if starttls:
                smtp.starttls()
            if username is not None:
                smtp.login(username, password or "")
            smtp.send_message(message)

    return _handler(body, only_states, f"email_notifier({', '.join(recipients)})")


def post_json(url: str, payload: Any, headers: Mapping[str, str] | None = None) -> None:
    """POST `payload` as JSON; raise on a network error or an error status."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
        reply.read()


def _handler(
    send: Callable[..., None],
    only_states: Iterable[type[State]],
    label: str,
    *,
    with_old: bool = False,
) -> Handler:
    kinds = tuple(only_states)

    def handler(obj: Any, old_state: State, new_state: State) -> None:
        if kinds and not isinstance(new_state, kinds):
            return
        try:
            if with_old:
                send(obj, new_state, old_state)
            else:
                send(obj, new_state)
        except Exception as exc:  # noqa: BLE001 (a notification never fails the run)
            logger.warning("%s could not notify about %r: %r", label, obj, exc)

    handler.__qualname__ = label
    return handler
