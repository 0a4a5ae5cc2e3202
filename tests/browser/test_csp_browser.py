"""The pages a person uses, in Chromium, under the Content-Security-Policy: the browser reports no
violation on any of them, and htmx still updates them in place (the run list's and the run
page's live refresh, the approval queue following a new call)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from runs.models import Interaction, Run
from tests.browser.conftest import sign_in
from tests.factories import make_interaction, make_pending_approval, make_run, make_step, text_output

# Installed before any script of the page runs, in every document the page opens.
LISTEN = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture
def watched(page):
    """``page``, with what the browser reports about the policy collected: its console messages
    and the ``securitypolicyviolation`` events of the current document (read with
    ``violations()`` before leaving it)."""
    console = []
    page.on("console", lambda message: console.append(message.text) if "Content Security Policy" in message.text else None)
    page.add_init_script(LISTEN)

    def violations() -> list[str]:
        return console + page.evaluate("window.__cspViolations")

    page.violations = violations
    return page


def visit(page, url: str) -> None:
    response = page.goto(url)
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "unsafe" not in policy, policy
    page.wait_for_load_state("networkidle")


@pytest.fixture
def live_run(transactional_db, alice):
    """A running run with two interactions: one done, one still in progress."""
    start = timezone.now() - timedelta(seconds=10)
    run = make_run(status=Run.Status.RUNNING, input="A live run under the policy", created_by=alice, created_at=start)
    first = make_interaction(run, sent_at=start, finished_at=start + timedelta(seconds=4))
    make_step(first, text_output("First answer."))
    make_interaction(run, status=Interaction.Status.IN_PROGRESS, sent_at=start + timedelta(seconds=5), finished_at=None)
    return run


def test_the_pages_raise_no_policy_violation_and_htmx_still_updates_them(live_server, watched, screenshot, alice, live_run):
    page = watched
    sign_in(page, live_server, alice)
    assert page.violations() == []

    # The run list refreshes itself while a run on it is active.
    visit(page, f"{live_server.url}/runs/")
    table = page.locator("#run-table")
    expect(table).to_contain_text("Running")
    page.evaluate("window.__sameDocument = true")
    Run.objects.filter(pk=live_run.pk).update(status=Run.Status.COMPLETED, finished_at=timezone.now(),
                                              duration_ms=10_000, total_tokens=4_321)
    expect(table).to_contain_text("Completed", timeout=8_000)
    expect(table).to_contain_text("4,321")
    assert page.evaluate("window.__sameDocument") is True
    screenshot("csp-01-run-list-refreshed")
    assert page.violations() == []

    # The run page: its timing chart is drawn, and its header follows the run while it is active.
    Run.objects.filter(pk=live_run.pk).update(status=Run.Status.RUNNING, finished_at=None, duration_ms=None)
    visit(page, f"{live_server.url}{live_run.get_absolute_url()}")
    header = page.locator("#run-header")
    expect(header.locator(".pill-large")).to_have_text("Running")
    bars = header.locator(".timing-bar")
    expect(bars).to_have_count(2)
    assert all(bars.nth(i).bounding_box()["width"] > 0 for i in range(2))
    page.evaluate("window.__sameDocument = true")
    live_run.interactions.filter(status=Interaction.Status.IN_PROGRESS).update(
        status=Interaction.Status.COMPLETED, finished_at=timezone.now())
    Run.objects.filter(pk=live_run.pk).update(status=Run.Status.COMPLETED, finished_at=timezone.now())
    expect(header.locator(".pill-large")).to_have_text("Completed", timeout=8_000)
    assert page.evaluate("window.__sameDocument") is True
    screenshot("csp-02-run-detail-refreshed")
    assert page.violations() == []

    # The approval queue shows a new call without a reload.
    first = make_pending_approval()
    visit(page, f"{live_server.url}/approvals/")
    expect(page.locator(f"#approval-row-{first.pk}")).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    second = make_pending_approval()
    expect(page.locator(f"#approval-row-{second.pk}")).to_be_visible(timeout=8_000)
    assert page.evaluate("window.__sameDocument") is True
    screenshot("csp-03-queue-refreshed")
    assert page.violations() == []

    # The other pages a person opens.
    for path in ("/", first.get_absolute_url(), "/runs/new/", "/audit/"):
        visit(page, f"{live_server.url}{path}")
        assert page.violations() == [], path
    screenshot("csp-04-audit")
