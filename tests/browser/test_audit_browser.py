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
