"""An auditor filters and exports a month of decisions, checks the chain and downloads a run's
evidence bundle, which verifies on its own."""


from django.utils import timezone
from playwright.sync_api import expect

from audit import bundles, log
from tests.browser.conftest import sign_in
from tests.factories import requested_call


def test_an_auditor_exports_a_month_of_decisions_and_a_verified_bundle(worker, live_server, page, screenshot, alice, carol):
    approval = requested_call("issue_refund", {"order_id": "A-1001", "amount": 249.0, "reason": "Damaged"})
    approval.approve(by=alice, shown_hash=approval.arguments_hash)
    log.seal()
    today = timezone.now().date()

    sign_in(page, live_server, carol)
    page.goto(f"{live_server.url}/audit/")
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("#chain-status")).to_contain_text("Chain holds", timeout=20_000)
    page.get_by_label("From").fill(today.replace(day=1).isoformat())
    page.get_by_label("Until (inclusive)").fill(today.isoformat())
    page.get_by_label("Verb").fill("approval.")
    page.get_by_role("button", name="Filter").click()
    table = page.locator(".audit-table tbody")
    expect(table).to_contain_text("approval.approved")
    expect(table).not_to_contain_text("interaction.recorded")
    screenshot("audit-01-filtered")

    with page.expect_download() as csv_download:
        page.get_by_role("link", name="Download CSV").click()
    exported = open(csv_download.value.path()).read()
    assert "approval.approved" in exported and "alice" in exported and "run.status_changed" not in exported

    with page.expect_download() as bundle_download:
        page.locator(".audit-table").get_by_role("link", name="bundle").first.click()
    assert bundles.verify_bundle(bundle_download.value.path()) == []

    page.get_by_role("button", name="Export in the background").click()
    expect(page.locator("#export-progress")).to_contain_text("Done", timeout=20_000)
    screenshot("audit-02-export-done")


def test_a_change_expands_to_its_whole_before_and_after_and_the_filters_match_the_run_list(live_server, page, screenshot, transactional_db, carol):
    from django.db import transaction

    reason = "Customer reports the parcel arrived crushed; photos attached to ticket 48213. " * 3
    with transaction.atomic():
        event = log.record(
            actor="system:test", verb="approval.edited", obj=None, object_type="approval", object_id="7",
            before={"arguments": {"order_id": "A-1001", "amount": 249.0, "reason": "Damaged"}},
            after={"arguments": {"order_id": "A-1001", "amount": 180.0, "reason": reason.strip()}},
        )
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, live_server, carol)
    page.goto(f"{live_server.url}/audit/")

    change = page.locator(".audit-table tbody tr", has_text=f"approval:{event.object_id}").locator(".audit-change")
    details = change.locator("details")
    expect(details).not_to_have_attribute("open", "")
    expect(change.locator("pre").first).to_be_hidden()
    change.locator("summary").click()
    expect(details).to_have_attribute("open", "")
    before, after = change.locator("pre").all()
    expect(before).to_be_visible()
    expect(before).to_contain_text('"reason": "Damaged"')
    # The whole after, pretty-printed (one key a line), nothing cut.
    expect(after).to_contain_text(f'"reason": "{reason.strip()}"')
    expect(after).to_contain_text('\n    "amount": 180.0,')
    screenshot("audit-1440-change-expanded")

    # The filter labels look as on the run list's filters; the last input keeps clear of the card's edge.
    audit_label = page.locator(".audit-filters label").first.evaluate(
        "(label) => { const s = getComputedStyle(label); return [s.fontSize, s.fontWeight, s.color]; }")
    edge = page.evaluate("""() => {
        const card = document.querySelector(".audit-filters").getBoundingClientRect();
        const rights = [...document.querySelectorAll(".audit-filters input, .audit-filters .button")]
            .map((element) => element.getBoundingClientRect().right);
        return card.right - Math.max(...rights);
    }""")
    assert edge >= 12, edge
    page.goto(f"{live_server.url}/runs/")
    runs_label = page.locator(".run-filters label").first.evaluate(
        "(label) => { const s = getComputedStyle(label); return [s.fontSize, s.fontWeight, s.color]; }")
    assert audit_label == runs_label

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/audit/")
    edge = page.evaluate("""() => {
        const card = document.querySelector(".audit-filters").getBoundingClientRect();
        return Math.min(...[...document.querySelectorAll(".audit-filters input")]
            .map((input) => card.right - input.getBoundingClientRect().right));
    }""")
    assert edge >= 12, edge
    screenshot("audit-390")
