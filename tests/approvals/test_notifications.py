"""Notifications: email to the deciding group with a deep link; a signed webhook."""

import hashlib
import hmac
import http.server
import json
import threading

import pytest
from django.core import mail

from approvals import notifications
from approvals.policies import FINANCE_LEADS_GROUP
from tests.conftest import make_user, wait_for
from tests.factories import requested_call


@pytest.fixture
def webhook_receiver():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_the_email_goes_to_the_deciding_group_with_a_deep_link(settings, alice, bob):
    settings.HANDOFF_BASE_URL = "https://handoff.example.com"
    approval = requested_call("issue_refund", {"order_id": "A-1", "amount": 249, "reason": "x"})

    sent = notifications.email(approval, "requested")

    assert sent == 1
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert "issue_refund waits for a decision" in message.subject
    assert f"https://handoff.example.com/approvals/{approval.pk}/" in message.body
    assert '"amount": 249' in message.body and "Refunds above $200" in message.body


def test_an_escalation_mails_the_new_group(alice):
    erin = make_user("erin", FINANCE_LEADS_GROUP)
    approval = requested_call("issue_refund", {"order_id": "A-1", "amount": 1450, "reason": "x"})
    approval.approver_group = FINANCE_LEADS_GROUP

    notifications.email(approval, "escalated")

    assert mail.outbox[-1].to == [erin.email]
    assert "escalated" in mail.outbox[-1].subject


def test_the_webhook_is_signed_with_hmac_over_timestamp_and_body(settings, db, webhook_receiver):
    url, received = webhook_receiver
    settings.HANDOFF_WEBHOOK_URL, settings.HANDOFF_WEBHOOK_SECRET = url, "s3cret"
    approval = requested_call("issue_refund", {"order_id": "A-1", "amount": 249, "reason": "x"})

    assert notifications.webhook(approval, "requested")

    [(headers, body)] = received
    expected = hmac.new(b"s3cret", headers["X-Handoff-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Handoff-Signature"] == f"sha256={expected}"
    data = json.loads(body)
    assert data["event"] == "approval.requested" and data["call_id"] == approval.call_id
    assert data["url"].endswith(f"/approvals/{approval.pk}/")


def test_a_new_pending_call_notifies_through_the_worker(settings, worker, alice, webhook_receiver):
    url, received = webhook_receiver
    settings.HANDOFF_WEBHOOK_URL, settings.HANDOFF_WEBHOOK_SECRET = url, "s3cret"
    from approvals import tools
    from runs import execution

    execution.create_run(model="gemini-3-flash-preview", input="Refund A-1001",
                         tools=tools.declarations(["lookup_order", "issue_refund"]))

    wait_for(lambda: received)
    wait_for(lambda: mail.outbox)
    assert json.loads(received[0][1])["function_name"] == "issue_refund"
    assert mail.outbox[0].to == ["alice@example.com"]
