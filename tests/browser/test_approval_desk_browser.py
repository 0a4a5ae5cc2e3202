"""Reviewers at the approval desk: claim, approve, reject with a reason, edit arguments, decide
in bulk, work the queue from the keyboard, and watch the queue and its badge follow new calls
without reloading. Runs go through the emulator and a real worker."""

import re

import pytest
from playwright.sync_api import expect

from approvals import tools
from approvals.models import Approval
from runs import execution
from runs.models import Run
from tests.browser.conftest import sign_in
from tests.conftest import make_user, wait_for

ORDER_TOOLS = ["lookup_order", "issue_refund"]


def start_order_run(user, text: str) -> Run:
    return execution.create_run(model="gemini-3-flash-preview", created_by=user,
                                tools=tools.declarations(ORDER_TOOLS), input=text)


def waiting_refund(user, order_id: str = "A-1001") -> Approval:
    """A run asking to refund ``order_id`` (A-1001: $249, one reviewer; A-1003: $1,450,
    four-eyes), stopped at the refund call."""
    run = start_order_run(user, f"My order {order_id} arrived broken. Refund please.")
    wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.WAITING_FOR_APPROVAL).exists())
    return Approval.objects.get(run=run, function_name="issue_refund")


def row(page, approval):
    return page.locator(f"#approval-row-{approval.pk}")


def run_status(approval) -> str:
    return Run.objects.get(pk=approval.run_id).status


@pytest.fixture
def dave(transactional_db):
    return make_user("dave", "reviewers")


def test_a_reviewer_claims_a_call_then_approves_it(worker, live_server, page, screenshot, alice, bob, dave):
    refund = waiting_refund(bob)
    other = waiting_refund(bob)
    other.claim(by=dave)

    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}/approvals/")
    expect(row(page, refund)).to_contain_text("issue_refund")
    expect(row(page, other)).to_contain_text("dave")
    expect(page.locator('.tab[data-state="claimed"] .count')).to_have_text("1")
    row(page, refund).get_by_role("button", name="Claim").click()
    expect(page.locator(".messages")).to_contain_text(f"You hold issue_refund #{refund.pk}")
    expect(row(page, refund).locator(".claim-cell")).to_contain_text("You")
    expect(page.locator('.tab[data-state="claimed"] .count')).to_have_text("2")
    screenshot("desk-01-queue-claimed")

    row(page, refund).get_by_role("link", name="Review").click()
    expect(page.locator("#approval-decision")).to_contain_text("You hold this call")
    # What is being decided: the tool, the arguments, why the model asks, why it waits.
    expect(page.locator("body")).to_contain_text("Refund a customer for an order. Amount in USD.")
    expect(page.locator(".stated-reason")).to_contain_text("order A-1001 totals")
    expect(page.locator(".policy")).to_contain_text("Refunds above $200 need a reviewer")
    expect(page.locator(".deadline-fact")).to_contain_text("left")
    screenshot("desk-02-approval-page-claimed")
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Approved issue_refund: the run goes on.")
    wait_for(lambda: run_status(refund) == Run.Status.COMPLETED, timeout=20)
    refund.refresh_from_db()
    assert refund.status == Approval.Status.APPROVED and refund.decided_by == alice
    assert refund.claimed_by is None
    screenshot("desk-03-approved")


def test_a_reviewer_rejects_from_the_queue_with_a_reason(worker, live_server, page, screenshot, alice, bob):
    refund = waiting_refund(bob)

    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}/approvals/")
    row(page, refund).locator("summary", has_text="Reject").click()
    reason = row(page, refund).get_by_label("Reason")
    expect(reason).to_be_visible()
    reason.fill("No photo of the damage yet")
    # The open reason box holds the queue still: a poll would throw the typing away.
    page.wait_for_timeout(2500)
    expect(reason).to_have_value("No photo of the damage yet")
    screenshot("desk-04-queue-reject-reason")
    row(page, refund).get_by_role("button", name="Reject issue_refund").click()
    expect(page.locator(".messages")).to_contain_text("Rejected issue_refund: the model is told why.")
    # A rejection is confirmed in the warning colour, not the success one.
    expect(page.locator(".messages .message")).to_have_class(re.compile(r"\bmessage-warning\b"))
    expect(page).to_have_url(re.compile(r"/approvals/$"))
    expect(row(page, refund)).to_have_count(0)
    screenshot("desk-04b-queue-rejected")
    wait_for(lambda: run_status(refund) == Run.Status.COMPLETED, timeout=20)
    refund.refresh_from_db()
    assert refund.status == Approval.Status.REJECTED and refund.reason == "No photo of the damage yet"

    page.get_by_role("link", name=re.compile("^Decided")).click()
    expect(row(page, refund)).to_contain_text("No photo of the damage yet")
    screenshot("desk-05-queue-decided-tab")


def test_a_reviewer_edits_the_arguments_then_approves(worker, live_server, page, screenshot, alice, bob):
    refund = waiting_refund(bob)

    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}{refund.get_absolute_url()}")
    page.get_by_text("Edit arguments…").click()
    arguments = page.get_by_label("Arguments")
    expect(arguments).to_have_value(re.compile(r'"amount": 249\.0'))
    arguments.fill('{"order_id": "A-1001", "amount": -10, "reason": "Partial refund"}')
    page.get_by_role("button", name="Approve edited arguments").click()
    expect(page.locator("#approval-decision")).to_contain_text("do not fit issue_refund's schema")
    screenshot("desk-06-edit-schema-error")

    page.get_by_label("Arguments").fill('{"order_id": "A-1001", "amount": 120, "reason": "Partial refund: headband only"}')
    page.get_by_role("button", name="Approve edited arguments").click()
    expect(page.locator(".messages")).to_contain_text("Approved issue_refund with edited arguments")
    expect(page.locator(".arguments-original")).to_contain_text("249")
    expect(page.locator(".arguments-edited")).to_contain_text("120")
    wait_for(lambda: run_status(refund) == Run.Status.COMPLETED, timeout=20)
    page.reload()
    expect(page.locator("#approval-decision")).to_contain_text('"amount": 120')
    screenshot("desk-07-edited-and-approved")
    refund.refresh_from_db()
    assert refund.arguments["amount"] == 249.0
    assert refund.edited_arguments["amount"] == 120
    assert refund.result["amount"] == 120


def test_a_reviewer_approves_several_calls_in_bulk(worker, live_server, page, screenshot, alice, bob, dave):
    first, second = waiting_refund(bob), waiting_refund(bob)
    four_eyes = waiting_refund(bob, "A-1003")
    left_alone = waiting_refund(bob)

    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}/approvals/")
    for approval in (first, second, four_eyes):
        row(page, approval).get_by_role("checkbox").check()
    # A poll replaces the rows: the ticks are kept.
    page.wait_for_timeout(2500)
    for approval in (first, second, four_eyes):
        expect(row(page, approval).get_by_role("checkbox")).to_be_checked()
    expect(row(page, left_alone).get_by_role("checkbox")).not_to_be_checked()
    screenshot("desk-08-queue-selected")
    page.get_by_role("button", name="Decide selected…").click()

    preview = page.locator(".bulk-preview")
    expect(preview.locator("tbody tr")).to_have_count(3)
    expect(preview).to_contain_text('"order_id": "A-1003"')
    expect(preview).to_contain_text("1,450")
    screenshot("desk-09-bulk-preview")
    page.get_by_role("button", name="Approve 3 calls").click()

    results = page.locator(".bulk-results")
    expect(results.locator(f'tr[data-approval="{first.pk}"]')).to_contain_text("approved")
    expect(results.locator(f'tr[data-approval="{second.pk}"]')).to_contain_text("approved")
    expect(results.locator(f'tr[data-approval="{four_eyes.pk}"]')).to_contain_text("1 of 2 approvals")
    screenshot("desk-10-bulk-results")
    for approval in (first, second):
        wait_for(lambda approval=approval: run_status(approval) == Run.Status.COMPLETED, timeout=20)
    four_eyes.refresh_from_db()
    left_alone.refresh_from_db()
    assert four_eyes.is_pending and four_eyes.approvals_so_far() == 1
    assert left_alone.is_pending and not left_alone.decisions.exists()


def test_a_reviewer_works_the_queue_from_the_keyboard(worker, live_server, page, screenshot, alice, bob):
    first, second = waiting_refund(bob), waiting_refund(bob)

    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}/approvals/")
    expect(row(page, first)).to_be_visible()
    page.keyboard.press("j")
    expect(row(page, first)).to_have_class(re.compile("is-selected"))
    page.keyboard.press("j")
    expect(row(page, second)).to_have_class(re.compile("is-selected"))
    expect(row(page, first)).not_to_have_class(re.compile("is-selected"))
    page.keyboard.press("k")
    expect(row(page, first)).to_have_class(re.compile("is-selected"))
    # The selection survives the queue's refresh.
    page.wait_for_timeout(2500)
    expect(row(page, first)).to_have_class(re.compile("is-selected"))
    page.keyboard.press("?")
    expect(page.locator(".shortcuts-panel")).to_be_visible()
    screenshot("desk-11-keyboard-selection-and-help")
    page.keyboard.press("Escape")
    expect(page.locator(".shortcuts-panel")).to_be_hidden()

    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/approvals/{first.pk}/")
    page.go_back()
    expect(row(page, first)).to_have_class(re.compile("is-selected"))
    page.keyboard.press("a")
    expect(page.locator(".messages")).to_contain_text("Approved issue_refund")
    expect(row(page, first)).to_have_count(0)
    # The call that took the decided one's place is selected: "a" again decides it.
    expect(row(page, second)).to_have_class(re.compile("is-selected"))
    screenshot("desk-12-keyboard-approved")
    page.keyboard.press("r")
    expect(row(page, second).get_by_label("Reason")).to_be_focused()
    page.keyboard.type("Wrong order")
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_contain_text("Rejected issue_refund")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Approval.Status.APPROVED
    assert second.status == Approval.Status.REJECTED and second.reason == "Wrong order"


def test_the_queue_and_its_badge_follow_new_calls_without_a_reload(worker, live_server, page, screenshot, alice, bob):
    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}/approvals/")
    badge = page.locator("#nav-approvals-badge")
    expect(badge).to_be_hidden()
    expect(page.locator("#approval-queue")).to_contain_text("Nothing waits for a decision")
    page.evaluate("window.__sameDocument = true")

    first = waiting_refund(bob)
    expect(row(page, first)).to_be_visible(timeout=10_000)
    expect(badge).to_have_text("1")
    expect(page.locator('.tab[data-state="pending"] .count')).to_have_text("1")
    second = waiting_refund(bob, "A-1003")
    expect(row(page, second)).to_be_visible(timeout=10_000)
    expect(badge).to_have_text("2")
    expect(row(page, second)).to_contain_text("0 of 2 approvals")
    # No reload happened: the page is the same document.
    assert page.evaluate("window.__sameDocument") is True
    screenshot("desk-13-live-badge")


def test_the_queue_shows_each_calls_summary_first_and_its_arguments_on_a_click(
        worker, live_server, page, screenshot, alice, bob):
    refund = waiting_refund(bob, "A-1003")
    sign_in(page, live_server, alice)
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_server.url}/approvals/")
        cell = row(page, refund).locator(".args-cell")
        expect(cell.locator(".call-summary")).to_have_text(re.compile(r"^Refund \$1,450\.00 on order A-1003: "))
        expect(cell.locator("pre")).to_be_hidden()
        cell.get_by_text("Arguments").click()
        expect(cell.locator("pre")).to_contain_text('"amount": 1450')
        # An open box holds the queue still: the 2 s poll does not close it under the reader.
        page.wait_for_timeout(2500)
        expect(cell.locator("pre")).to_be_visible()
        screenshot(f"desk-summary-line-{width}")
    page.goto(f"{live_server.url}/approvals/{refund.pk}/")
    expect(page.locator(".call-summary")).to_contain_text("Refund $1,450.00 on order A-1003")
    screenshot("desk-summary-line-detail-390")
