"""A reviewer signs in, reads the order-support run, approves the refund and sees the run
complete; then finds the decision in the audit CSV."""

import csv
import io
import json

from playwright.sync_api import expect

from approvals import tools
from approvals.models import Approval
from runs import execution
from runs.models import Run
from tests.browser.conftest import sign_in
from tests.conftest import wait_for


def start_waiting_order_run(user) -> Run:
    run = execution.create_run(
        model="gemini-3-flash-preview", created_by=user,
        tools=tools.declarations(["lookup_order", "issue_refund"]),
        input="My order A-1001 arrived with a cracked headband. Refund please.",
    )
    wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.WAITING_FOR_APPROVAL).exists())
    return run


def test_a_reviewer_approves_the_refund_and_watches_the_run_complete(worker, live_server, page, screenshot, alice, bob):
    run = start_waiting_order_run(bob)
    refund = Approval.objects.get(run=run, function_name="issue_refund")

    sign_in(page, live_server, alice)
    screenshot("01-home")
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.locator("#run-table")).to_contain_text("Waiting for approval")
    screenshot("02-run-list")

    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    timeline = page.locator("#run-timeline")
    expect(timeline).to_contain_text("lookup_order")
    expect(timeline).to_contain_text("issue_refund")
    expect(timeline).to_contain_text("A-1001")
    screenshot("03-run-detail-waiting")

    page.get_by_role("link", name="Approvals").first.click()
    expect(page.locator("#approval-queue")).to_contain_text("issue_refund")
    screenshot("04-approval-queue")
    page.goto(f"{live_server.url}{refund.get_absolute_url()}")
    expect(page.locator("body")).to_contain_text("249")
    screenshot("05-approval-page")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("body")).to_contain_text("Approved")

    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    # The timeline refreshes in place while the run is active: no reload needed.
    expect(page.locator("#run-header")).to_contain_text("Completed", timeout=20_000)
    expect(page.locator("#run-timeline")).to_contain_text("R-")
    screenshot("06-run-detail-completed")
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED

    with page.expect_download() as download:
        page.goto(f"{live_server.url}/")
        page.get_by_role("link", name="Audit CSV").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    [approved] = [r for r in rows if r["verb"] == "approval.approved"]
    assert approved["actor"] == "alice"
    after = json.loads(approved["after"])
    assert after["call_id"] == refund.call_id and after["arguments"]["amount"] == 249.0
    [sent] = [r for r in rows if r["verb"] == "function_result.sent" and refund.call_id in r["after"]]
    assert json.loads(sent["after"])["result"]["status"] == "issued"


def test_a_reviewer_rejects_the_refund_with_a_reason(worker, live_server, page, screenshot, alice, bob):
    run = start_waiting_order_run(bob)
    refund = Approval.objects.get(run=run, function_name="issue_refund")

    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}{refund.get_absolute_url()}")
    page.get_by_label("Reason").fill("No photo of the damage yet")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("body")).to_contain_text("Rejected")

    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    expect(page.locator("#run-header")).to_contain_text("Completed", timeout=20_000)
    expect(page.locator("#run-timeline")).to_contain_text("No photo of the damage yet")
    screenshot("07-run-detail-rejected")
