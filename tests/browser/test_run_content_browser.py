"""What the model wrote, as the run page shows it in Chromium at 1440 and 390 px: a research report
in Markdown rendered (headings, lists, a table, cited words), the output of two text steps as two
blocks, and an image output loaded from Handoff's own URL, size-limited, under the
Content-Security-Policy."""

import base64

import pytest
from playwright.sync_api import expect

from runs.emulator.showcase import _png
from runs.models import Run
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.factories import make_interaction, make_run, make_step, text_output

WIDTHS = (1440, 390)

REPORT = (
    "# Research report: How are coral reefs recovering?\n\n"
    "## Summary\n\n"
    "Recent sources describe steady, well-documented progress on reef recovery. "
    "The findings below combine two searches and one small calculation.\n\n"
    "## Findings\n\n"
    "1. Cover returned fastest on **protected** reefs.\n"
    "2. Published material agrees on the main points; no source contradicts another.\n"
    "3. Open questions remain about long-term effects.\n\n"
    "| Region | Coral cover | Change |\n"
    "|:--|--:|--:|\n"
    "| Great Barrier Reef, northern section, outer shelf | 36 % | +9 points |\n"
    "| Caribbean | 14 % | −2 points |\n\n"
    "> Sources: [AIMS annual summary](https://www.aims.gov.au/) and `reef_survey.csv`.\n\n"
    "![a chart of coral cover](https://evil.example/pixel.png) <img src=x onerror=alert(1)> "
    "[click me](javascript:alert(2))\n"
)
CITED = "Recent sources describe steady, well-documented progress on reef recovery."


def report_step() -> dict:
    start = REPORT.encode().index(CITED.encode())
    return {"type": "model_output", "content": [{
        "type": "text", "text": REPORT,
        "annotations": [{"type": "url_citation", "url": "https://www.aims.gov.au/", "title": "aims.gov.au",
                         "start_index": start, "end_index": start + len(CITED.encode())}],
    }]}


@pytest.fixture
def content_runs(transactional_db, alice):
    """Three completed runs, written as the recorder leaves them: a Markdown report, an answer in
    two text steps (the SDK's output_text runs them together), and a generated image."""
    report = make_run(agent="deep-research-pro-preview-12-2025", input="How are coral reefs recovering?",
                      output_text=REPORT, created_by=alice)
    make_step(make_interaction(report), report_step())

    two = ["I looked at the new data.", "Spain won Euro 2024, defeating England 2-1 in the final."]
    answer = make_run(input="Who won Euro 2024?", output_text="".join(two), created_by=alice)
    interaction = make_interaction(answer)
    for text in two:
        make_step(interaction, text_output(text))

    png = _png(960, 600)
    image = make_run(model="gemini-3.1-flash-image", input="Draw an indigo gradient", created_by=alice)
    make_step(make_interaction(image), {"type": "model_output", "content": [
        {"type": "text", "text": "Here is the **gradient** you asked for."},
        {"type": "image", "mime_type": "image/png", "data": base64.b64encode(png).decode()},
    ]})
    return {"report": report, "two": answer, "image": image}


def open_run(page, live_server, run: Run, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}{run.get_absolute_url()}")


def content_fits(page) -> None:
    """No rendered text or image is wider than its step (a wide table scrolls inside itself).
    The page's own width at 390 px is issue 12's "Everywhere" item, not checked here."""
    wider = page.evaluate("""() => [...document.querySelectorAll('.markdown, .inline-image')]
        .filter(el => el.scrollWidth > el.clientWidth + 1 || el.getBoundingClientRect().right > el.parentElement.getBoundingClientRect().right + 1)
        .map(el => el.className + ' ' + el.scrollWidth + '>' + el.clientWidth)""")
    assert wider == []


def test_a_markdown_report_is_rendered(live_server, page, screenshot, alice, content_runs):
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}") or dialog.dismiss())
    sign_in(page, live_server, alice)
    for width in WIDTHS:
        open_run(page, live_server, content_runs["report"], width)
        step = page.locator("#run-timeline .step-model_output .markdown")
        expect(step.locator("h1")).to_have_text("Research report: How are coral reefs recovering?")
        expect(step.locator("h2")).to_have_count(2)
        expect(step.locator("ol > li")).to_have_count(3)
        expect(step.locator("table th").first).to_have_text("Region")
        expect(step.locator("strong")).to_have_text("protected")
        expect(step.locator("blockquote a")).to_have_attribute("rel", "noopener nofollow noreferrer")
        assert "#" not in step.inner_text()
        # The cited sentence ends with its mark, inside the paragraph; the source is listed.
        expect(step.locator("p", has_text=CITED).locator("sup.cite")).to_have_text("[1]")
        expect(page.locator("#run-timeline .step-model_output ol.citations")).to_contain_text("aims.gov.au")
        # The hostile parts are inert: no image element, no script link, the raw HTML as text.
        expect(step.locator("img")).to_have_count(0)
        expect(step.locator("a[href^='javascript']")).to_have_count(0)
        expect(step.locator("a.md-image")).to_have_text("image: a chart of coral cover")
        expect(step).to_contain_text("<img src=x onerror=alert(1)>")
        # Also the header's output.
        expect(page.locator("#run-header .run-output .markdown h1")).to_be_visible()
        content_fits(page)
        screenshot(f"run-content-01-markdown-report-{width}")
        # The step itself, in the viewport, to read the rendering closely.
        page.locator("#run-timeline .step-model_output").evaluate("step => step.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(SCREENSHOTS / f"run-content-01b-markdown-report-step-{width}.png"))
    assert errors == []


def test_two_text_steps_show_as_two_blocks(live_server, page, screenshot, alice, content_runs):
    sign_in(page, live_server, alice)
    for width in WIDTHS:
        open_run(page, live_server, content_runs["two"], width)
        output = page.locator("#run-header .run-output .markdown")
        expect(output).to_have_count(2)
        expect(output.nth(0)).to_have_text("I looked at the new data.")
        expect(output.nth(1)).to_have_text("Spain won Euro 2024, defeating England 2-1 in the final.")
        # Two blocks, one under the other, not one line.
        first, second = output.nth(0).bounding_box(), output.nth(1).bounding_box()
        assert second["y"] >= first["y"] + first["height"]
        expect(page.locator("#run-header")).not_to_contain_text("data.Spain")
        expect(page.locator("#run-timeline .step-model_output .markdown")).to_have_count(2)
        content_fits(page)
        screenshot(f"run-content-02-two-text-steps-{width}")


def test_an_image_output_loads_from_handoff_size_limited(live_server, page, screenshot, alice, content_runs):
    violations = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, live_server, alice)
    for width in WIDTHS:
        open_run(page, live_server, content_runs["image"], width)
        image = page.locator("#run-timeline .inline-image img")
        image.scroll_into_view_if_needed()  # it loads lazily
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        assert image.evaluate("img => img.naturalWidth") == 960
        assert image.get_attribute("src").startswith("/runs/")
        box = image.bounding_box()
        assert box["width"] <= 480 and box["height"] <= 360  # the CSS limits, the image is 960 × 600
        expect(page.locator("#run-timeline .inline-image figcaption")).to_contain_text("image/png ·")
        expect(page.locator("#run-timeline .step-model_output .markdown strong")).to_have_text("gradient")
        content_fits(page)
        screenshot(f"run-content-03-image-output-{width}")
    assert violations == []
    assert all(url.startswith(live_server.url) for url in requested), [u for u in requested if not u.startswith(live_server.url)]
