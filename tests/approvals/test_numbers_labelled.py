"""A call's approval number and its run's number, side by side on the approval pages, each say
which is which: "Approval #3 · Run #2", never "#3 · run #2"."""

import re

from django.utils import timezone

from approvals.models import Approval
from tests.factories import make_run, requested_call


def refund(amount=249, call_id="call_1"):
    # Runs made first, so that an approval's number is not its run's.
    make_run()
    make_run()
    return requested_call("issue_refund", {"order_id": "A-1", "amount": amount, "reason": "x"}, call_id=call_id)


def labelled(body: str, approval: Approval) -> bool:
    return (f">Approval #{approval.pk}<" in body
            and f'<a href="/runs/{approval.run_id}/">Run #{approval.run_id}</a>' in body)


def unlabelled_number(body: str) -> list[str]:
    """Bare numbers shown as an element's whole text: ``>#3<``."""
    return re.findall(r">#\d+<", body)


def test_the_queue_labels_the_approval_and_the_run(client, alice):
    approval = refund()
    client.force_login(alice)
    body = client.get("/approvals/").content.decode()
    assert labelled(body, approval)
    assert f'aria-label="Select issue_refund, approval #{approval.pk}"' in body
    assert unlabelled_number(body) == []


def test_the_decided_tab_labels_the_approval_and_the_run(client, alice):
    approval = refund()
    Approval.objects.filter(pk=approval.pk).update(
        status=Approval.Status.REJECTED, decided_by=alice, decided_at=timezone.now(), reason="No")
    client.force_login(alice)
    body = client.get("/approvals/", {"state": "decided"}).content.decode()
    assert labelled(body, approval)
    assert unlabelled_number(body) == []


def test_the_bulk_preview_and_its_results_label_the_approval_and_the_run(client, alice):
    approval = refund()
    client.force_login(alice)
    body = client.get("/approvals/bulk/", {"ids": [approval.pk]}).content.decode()
    assert labelled(body, approval)
    assert unlabelled_number(body) == []
    body = client.post("/approvals/bulk/", {
        "items": [f"{approval.pk}:{approval.arguments_hash}"], "verdict": "reject", "reason": "No",
    }).content.decode()
    assert labelled(body, approval)
    assert unlabelled_number(body) == []


def test_the_approval_page_labels_the_approval_and_the_run(client, alice):
    approval = refund()
    client.force_login(alice)
    body = client.get(approval.get_absolute_url()).content.decode()
    assert "<dt>Approval</dt><dd>Approval #" in body
    assert labelled(body, approval)
    assert unlabelled_number(body) == []
