"""Telling people a call waits for them: email (Django's email backend) to the members of the
group that must decide, and a generic outgoing webhook signed with HMAC-SHA256 for chat tools.

Notifications are sent by a Celery task after the change commits; a failure to notify never
undoes a decision.

Webhook: ``POST HANDOFF_WEBHOOK_URL`` with a JSON body and the headers
``X-Handoff-Timestamp: <unix seconds>`` and ``X-Handoff-Signature: sha256=<hex>``, the
HMAC-SHA256 under ``HANDOFF_WEBHOOK_SECRET`` of ``<timestamp>.<body>``; a receiver recomputes it
and rejects old timestamps to stop replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail


# The task that sends them (approvals.tasks calls this module, so it is named, not imported).
SEND_TASK = "approvals.tasks.send_notifications"

EVENTS = {
    "requested": "waits for a decision",
    "reminder": "is still waiting: its deadline is near",
    "escalated": "was escalated to you: the first deadline passed",
}


def queue(approval, event: str) -> None:
    """Send the notifications for ``event`` about ``approval`` once the transaction commits."""
    current_app.tasks[SEND_TASK].delay_on_commit(approval.pk, event)


def deep_link(approval) -> str:
    return settings.HANDOFF_BASE_URL.rstrip("/") + approval.get_absolute_url()


def payload(approval, event: str) -> dict[str, Any]:
    """The webhook body for ``event`` (``requested``, ``reminder`` or ``escalated``)."""
    return {
        "event": f"approval.{event}",
        "approval_id": approval.pk,
        "run_id": approval.run_id,
        "call_id": approval.call_id,
        "function_name": approval.function_name,
        "arguments": approval.current_arguments,
        "policy": approval.policy,
        "group": approval.approver_group,
        "approvals_required": approval.approvals_required,
        "deadline_at": approval.deadline_at.isoformat() if approval.deadline_at else None,
        "url": deep_link(approval),
    }


def sign(body: bytes, timestamp: str, secret: str) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def email(approval, event: str) -> int:
    """Email the members of the approval's group (those with an address). Returns how many."""
    recipients = list(
        get_user_model().objects.filter(groups__name=approval.approver_group, is_active=True)
        .exclude(email="").values_list("email", flat=True).distinct()
    )
    if not recipients:
        return 0
    arguments = json.dumps(approval.current_arguments, indent=2, sort_keys=True)
    deadline = f"\nDeadline: {approval.deadline_at:%Y-%m-%d %H:%M %Z}" if approval.deadline_at else ""
    send_mail(
        subject=f"[Handoff] {approval.function_name} {EVENTS[event]} (run {approval.run_id})",
        message=(
            f"{approval.function_name} {EVENTS[event]}.\n\n"
            f"Why: {approval.policy}\nArguments:\n{arguments}\n{deadline}\n\n"
            f"Decide: {deep_link(approval)}\n"
        ),
        from_email=None,
        recipient_list=recipients,
    )
    return len(recipients)


def webhook(approval, event: str) -> bool:
    """POST the signed payload to ``HANDOFF_WEBHOOK_URL``, if one is set. Raises ``OSError`` on
    a network failure or an HTTP error status (the task retries)."""
    url = settings.HANDOFF_WEBHOOK_URL
    if not url:
        return False
    body = json.dumps(payload(approval, event), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "X-Handoff-Timestamp": timestamp,
        "X-Handoff-Signature": sign(body, timestamp, settings.HANDOFF_WEBHOOK_SECRET),
    })
    with urllib.request.urlopen(request, timeout=10):
        return True
