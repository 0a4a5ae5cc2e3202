"""An engineer narrows the run list down: status, search, sort, pages, pending approvals; the
table refreshes itself while a run on it is active, and the filters work without JavaScript."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from runs.models import Run
from runs.views import PAGE_SIZE
from tests.browser.conftest import sign_in
from tests.factories import make_pending_approval, make_run


@pytest.fixture
def runs(transactional_db, bob):
    """A page and a half of routine runs, and a few that stand out."""
    now = timezone.now()
    for i in range(PAGE_SIZE + 10):
        make_run(input=f"Routine question {i}", output_text="Answered.", total_tokens=100 + i,
                 created_at=now - timedelta(hours=2, minutes=i), created_by=bob,
                 tool_names=",lookup_order,")
    return {
        "failed": make_run(status=Run.Status.FAILED, input="Refund order A-1001 please",
                           error="429 RESOURCE_EXHAUSTED: quota exceeded\nRetry-After: 30",
                           created_at=now - timedelta(minutes=30), total_tokens=2_000),
        "refunded": make_run(input="Where is my parcel?", output_text="I refunded the shipping fee.",
                             created_at=now - timedelta(minutes=20), total_tokens=99_999, duration_ms=125_000),
        "agent": make_run(agent="deep-research-pro-preview-12-2025", input="Research heat pumps in cold climates",
                          created_at=now - timedelta(minutes=10), total_tokens=45_000),
        "waiting": make_pending_approval(),
    }


def rows(page):
    return page.locator("#run-table tbody tr")


def test_an_engineer_filters_searches_sorts_and_pages_the_list(live_server, page, screenshot, runs, alice):
    sign_in(page, live_server, alice)
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(rows(page)).to_have_count(PAGE_SIZE)
    expect(rows(page).first).to_contain_text("Waiting for approval")
    expect(rows(page).first.locator("a.badge")).to_have_text("1")
    screenshot("run-list-01-all")

    # Status: the table is replaced in place and the address follows, so the view is bookmarkable.
    page.get_by_label("Status").select_option("failed")
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Refund order A-1001")
    expect(rows(page).first).to_contain_text("429 RESOURCE_EXHAUSTED")
    screenshot("run-list-02-status-failed")
    page.reload()
    expect(rows(page)).to_have_count(1)
    expect(page.get_by_label("Status")).to_have_value("failed")

    # Search, stemmed: "refunds" finds "Refund order…" (twice) and "I refunded…" (output text).
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Search inputs and outputs").fill("refunds")
    expect(rows(page)).to_have_count(3)
    expect(page.locator("#run-table")).to_contain_text("Refund order A-1001")
    expect(page.locator("#run-table")).to_contain_text("Where is my parcel?")
    expect(page).to_have_url(re.compile(r"q=refunds"))
    screenshot("run-list-03-search")

    # Sort by tokens, most first; by duration, finished runs only.
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Sort by").select_option("tokens")
    expect(rows(page).first).to_contain_text("99,999")
    expect(rows(page).nth(1)).to_contain_text("45,000")
    expect(page.locator("#run-table th[aria-sort]")).to_contain_text("Tokens")
    screenshot("run-list-04-sort-tokens")
    page.get_by_label("Sort by").select_option("duration")
    expect(page.locator("#run-table")).to_contain_text("finished runs only")
    expect(rows(page).first).to_contain_text("2m 05s")
    expect(page.locator("#run-table")).not_to_contain_text("Waiting for approval")

    # Pages: older, then newer again, the filters kept.
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Tool used").fill("lookup_order")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"tool=lookup_order"))
    expect(rows(page)).to_have_count(PAGE_SIZE)
    expect(rows(page).first).to_contain_text("Routine question 0")
    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(re.compile(r"tool=lookup_order&after="))
    expect(rows(page)).to_have_count(10)
    expect(rows(page).first).to_contain_text(f"Routine question {PAGE_SIZE}")
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)
    screenshot("run-list-05-older-page")
    page.get_by_role("link", name="← Newer").click()
    expect(rows(page).first).to_contain_text("Routine question 0")
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)

    # Pending approvals only.
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Has pending approvals").check()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Waiting for approval")
    screenshot("run-list-06-pending")


def test_an_invalid_filter_is_reported_above_the_table(live_server, page, screenshot, runs, alice):
    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}/runs/?from=yesterday&status=failed")
    expect(page.get_by_role("alert")).to_have_text("From: Enter a valid date.")
    expect(rows(page)).to_have_count(1)
    screenshot("run-list-07-invalid-filter")


def test_the_table_refreshes_while_a_run_is_active_and_then_stops(live_server, page, screenshot, transactional_db, alice):
    run = make_run(status=Run.Status.RUNNING, input="A background research run",
                   agent="deep-research-pro-preview-12-2025", created_at=timezone.now() - timedelta(seconds=5))
    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}/runs/")
    table = page.locator("#run-table")
    expect(table).to_contain_text("Running")
    expect(table).to_have_attribute("hx-trigger", "every 2s")
    screenshot("run-list-08-live")

    Run.objects.filter(pk=run.pk).update(status=Run.Status.COMPLETED, finished_at=timezone.now(),
                                         duration_ms=7_000, total_tokens=1_234)
    expect(table).to_contain_text("Completed", timeout=6_000)
    expect(table).to_contain_text("1,234")
    expect(table).not_to_have_attribute("hx-trigger", "every 2s")


def test_the_filters_work_without_javascript(live_server, browser, runs, alice):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, live_server, alice)
        page.goto(f"{live_server.url}/runs/")
        page.get_by_label("Status").select_option("failed")
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(r"status=failed"))
        expect(rows(page)).to_have_count(1)
    finally:
        context.close()


LONG_INPUT = ("Customer writes that order A-1001 arrived with a cracked screen and asks for a full "
              "refund, plus the shipping fee, before the end of the month")
LONG_ERROR = ("400 INVALID_ARGUMENT: function_result for call_id fc_7a1b2c3d4e5f does not match any "
              "function_call of interaction v1_emuttpdz2e0000000004 (expected one of fc_1, fc_2, fc_3)")


def card_fits(page, selector: str) -> dict:
    """The card's and its table's boxes: whether the table overflows the card (by how much)."""
    return page.evaluate("""(selector) => {
        const card = document.querySelector(selector);
        const table = card.querySelector("table");
        const scroller = card.querySelector(".table-scroll");
        return {
            cardRight: card.getBoundingClientRect().right,
            tableRight: table.getBoundingClientRect().right,
            scrollerOverflow: scroller.scrollWidth - scroller.clientWidth,
            cardOverflow: card.scrollWidth - card.clientWidth,
            pageOverflow: document.documentElement.scrollWidth - window.innerWidth,
        };
    }""", selector)


def test_at_1440_px_the_table_fits_its_card_with_long_inputs_and_errors(live_server, page, screenshot, transactional_db, alice):
    make_run(input="Where is my parcel?", created_at=timezone.now() - timedelta(minutes=5))
    make_run(agent="deep-research-pro-preview-12-2025", input="Research heat pumps in cold climates",
             created_at=timezone.now() - timedelta(minutes=4), total_tokens=45_000)
    make_run(status=Run.Status.FAILED, input=LONG_INPUT, error=LONG_ERROR + "\nTraceback: …")
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}/runs/")
    fits = card_fits(page, "#run-table")
    assert fits["tableRight"] <= fits["cardRight"] + 0.5, fits
    assert fits["scrollerOverflow"] == 0 and fits["cardOverflow"] == 0 and fits["pageOverflow"] <= 0, fits

    row = rows(page).first
    # The input is shown well past 25 characters; the whole of it is in the cell's title.
    input_cell = row.locator(".input-cell")
    expect(input_cell).to_have_attribute("title", LONG_INPUT)
    shown = input_cell.evaluate("""(cell) => {
        // About how many characters show: the clamped lines' width against the text's own.
        const span = cell.querySelector(".clamp"), style = getComputedStyle(span);
        const context = document.createElement("canvas").getContext("2d");
        context.font = `${style.fontSize} ${style.fontFamily}`;
        const lines = Math.round(span.clientHeight / parseFloat(style.lineHeight));
        const ratio = (lines * span.clientWidth) / context.measureText(span.textContent).width;
        return Math.floor(span.textContent.length * Math.min(1, ratio));
    }""")
    assert shown >= 70, shown
    # The error's first line wraps inside its cell (no sideways overflow), whole in its title.
    error_cell = row.locator(".error-text")
    expect(error_cell).to_have_attribute("title", LONG_ERROR)
    assert error_cell.evaluate("(cell) => cell.scrollWidth <= cell.clientWidth"), "the error runs out of its cell"
    assert error_cell.evaluate("(cell) => cell.querySelector('.clamp').clientHeight > 30"), "the error does not wrap"
    screenshot("run-list-1440-long-input-and-error")

    # On a phone the table scrolls inside its card; the page itself does not scroll sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    fits = card_fits(page, "#run-table")
    assert fits["scrollerOverflow"] > 0 and fits["cardOverflow"] == 0, fits
    screenshot("run-list-390-scrolls-in-card")
