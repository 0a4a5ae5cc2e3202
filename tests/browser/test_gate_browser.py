"""The gate as a person meets it in the browser: a call whose arguments do not fit the tool's
schema, and a follow-up whose send has an unknown outcome that an admin resends."""

from django.contrib.auth.models import User
from playwright.sync_api import expect

from approvals.models import Approval
from runs.models import Run
from tests.approvals.test_concurrency import results_per_call, waiting_refund
from tests.approvals.test_races import unknown_follow_up
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD, wait_for
from tests.factories import requested_call


def test_a_reviewer_sees_why_a_call_outside_the_schema_waits_and_fixes_it(live_server, page, screenshot, alice):
    approval = requested_call("issue_refund", {"order_id": "A-1001", "amount": -500, "reason": "Damaged"})

    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}{approval.get_absolute_url()}")

    expect(page.locator(".schema-error")).to_contain_text("do not fit the tool's schema")
    expect(page.locator(".schema-error")).to_contain_text("amount")
    # What it offers is what it allows: edit or reject, not approve as it is.
    expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    expect(page.get_by_text("Edit arguments")).to_be_visible()
    screenshot("gate-01-schema-error")


def test_an_admin_resends_a_follow_up_of_unknown_outcome_from_the_run_page(
    worker, api, live_server, page, screenshot, alice
):
    admin = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    refund = waiting_refund("Order A-1001 arrived broken, refund please.")
    unknown_follow_up(refund, by=alice)

    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/runs/{refund.run_id}/")
    expect(page.locator(".unknown-outcome")).to_contain_text("Outcome unknown")
    screenshot("gate-02-unknown-outcome")
    page.get_by_role("button", name="Resend").click()

    expect(page.locator("body")).to_contain_text("Sent again")
    wait_for(lambda: Run.objects.filter(pk=refund.run_id, status=Run.Status.COMPLETED).exists(), timeout=20)
    assert results_per_call(api)[refund.call_id] == 1
    page.reload()
    expect(page.locator("#run-header")).to_contain_text("Completed")
    screenshot("gate-03-resent-completed")
    assert Approval.objects.get(pk=refund.pk).settled_at is not None
