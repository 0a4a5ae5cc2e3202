"""The run detail page in a browser: every step type through the emulator's showcase, a
background agent run that updates live from running to completed, and a run of 5,000 steps that
opens fast and loads more as the reader scrolls."""

from datetime import timedelta

import pytest

from django.utils import timezone
from playwright.sync_api import expect

from approvals.models import Approval
from runs import execution
from runs.models import Interaction, Run, Step
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.conftest import wait_for
from tests.factories import keep_counts

AGENT = "deep-research-pro-preview-12-2025"


def test_the_showcase_run_shows_every_step_type(worker, live_server, page, screenshot, alice):
    run = execution.create_run(model="gemini-3-flash-preview", input="Show every step type [showcase:all_steps]",
                               created_by=alice)
    wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.COMPLETED).exists())

    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    timeline = page.locator("#run-timeline")
    for kind in sorted(Step.KNOWN_TYPES):
        expect(timeline.locator(f".step-{kind}").first).to_be_attached()
    expect(timeline.locator(".step-unknown")).to_contain_text("hologram_projection")
    expect(timeline).to_contain_text("The capital of France is Paris.")
    expect(timeline).to_contain_text("Who won the men's 100m in Paris 2024?")
    expect(timeline).to_contain_text("Golden Gate Park")
    expect(timeline).to_contain_text("financial_mcp_server › calculate_tax")
    expect(timeline.locator(".pill-url-unsafe")).to_have_text("unsafe")
    expect(timeline.locator(".structured", has_text="recipe_name")).to_contain_text('"recipe_name": "Classic Banana Bread"')
    expect(timeline.locator("sup.cite")).to_have_text("[1]")
    # The quickstart's google_search_call has no id: recorded all the same, with a warning.
    expect(page.locator(".warning-box")).to_contain_text("steps.12.id")
    image = timeline.locator(".inline-image img")
    expect(image).to_be_visible()
    image.scroll_into_view_if_needed()  # it loads lazily
    page.wait_for_function("img => img.complete", arg=image.element_handle())
    assert image.evaluate("img => img.naturalWidth") == 128
    expect(page.locator("#run-header .cost")).not_to_have_text("—")
    timeline.locator(".step-thought summary").first.click()
    expect(timeline).to_contain_text("The model is searching Google for the capital of France.")
    screenshot("run-detail-01-showcase")


def test_a_background_agent_run_updates_live_from_running_to_completed(worker, live_server, page, screenshot,
                                                                         alice, settings):
    # Slower polls than the default, so the page is seen while the interaction is running.
    settings.POLL_INITIAL_DELAY = 2
    sign_in(page, live_server, alice)
    run = execution.create_run(agent=AGENT, input="How are coral reefs recovering?", background=True,
                               created_by=alice)
    interaction = run.interactions.get()
    wait_for(lambda: Interaction.objects.filter(pk=interaction.pk, status=Interaction.Status.IN_PROGRESS).exists())

    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    header, card = page.locator("#run-header"), page.locator(f"#interaction-{interaction.pk}")
    expect(header).to_contain_text("Running")
    expect(card).to_contain_text("1 poll so far", timeout=10_000)
    expect(card).to_contain_text("next poll in")
    expect(page.locator("#timeline-tail")).to_be_attached()
    screenshot("run-detail-02-background-running")

    # No reload: the header, the card and the timeline's tail update themselves.
    expect(header.locator(".pill-large")).to_have_text("Completed", timeout=30_000)
    expect(card.locator(".pill-completed")).to_be_visible(timeout=10_000)
    expect(card.locator(".facts")).to_contain_text("Polls2")
    expect(page.locator("#run-timeline")).to_contain_text("Research report: How are coral reefs recovering?",
                                                          timeout=10_000)
    expect(page.locator("#run-timeline .step-code_execution_call")).to_be_visible()
    expect(page.locator("#timeline-tail")).to_have_count(0, timeout=10_000)
    expect(page.locator("[hx-trigger^='every']")).to_have_count(0)
    screenshot("run-detail-03-background-completed")


def build_big_run(user, steps_per_interaction=500, interactions=10) -> Run:
    """A finished agent run of 5,000 steps in ten interactions, written straight to the database
    (and counted, as recording counts them): searches in long runs, code, thoughts and answers."""
    start = timezone.now() - timedelta(minutes=30)
    run = Run.objects.create(model="gemini-2.5-pro", input="A long research task", input_preview="A long research task",
                             status=Run.Status.COMPLETED, created_by=user, created_at=start,
                             finished_at=start + timedelta(minutes=20), duration_ms=20 * 60 * 1000,
                             total_tokens=5_000_000)
    pattern = (
        [{"type": "thought", "signature": "c2ln", "summary": [{"type": "text", "text": "Planning the next searches."}]}]
        + [{"type": "google_search_call", "id": f"s{i}", "arguments": {"queries": [f"reef survey {i}"]}} for i in range(40)]
        + [{"type": "google_search_result", "call_id": f"s{i}", "result": [{"search_suggestions": "<!-- widget -->"}]}
           for i in range(40)]
        + [{"type": "code_execution_call", "id": "c1", "arguments": {"code": "print(2 + 2)", "language": "python"}},
           {"type": "code_execution_result", "call_id": "c1", "result": "4\n"},
           {"type": "model_output", "content": [{"type": "text", "text": "Interim finding."}]}]
    )
    rows = []
    for sequence in range(interactions):
        sent = start + timedelta(seconds=sequence * 100)
        interaction = Interaction.objects.create(
            run=run, sequence=sequence, interaction_id=f"v1_big{run.pk}_{sequence}", request={"model": run.model, "input": "go on"},
            dispatch=Interaction.Dispatch.SENT, status=Interaction.Status.COMPLETED, sdk_version="3.3.0",
            sent_at=sent, finished_at=sent + timedelta(seconds=30 + 50 * (sequence == 6)),
            usage={"total_input_tokens": 400_000, "total_output_tokens": 90_000, "total_thought_tokens": 10_000,
                   "total_cached_tokens": 100_000, "total_tool_use_tokens": 0, "total_tokens": 500_000},
        )
        rows += [Step.from_api({**pattern[i % len(pattern)]}, interaction=interaction, index=i)
                 for i in range(steps_per_interaction)]
    Step.objects.bulk_create(rows, batch_size=1000)
    return keep_counts(run)


def test_a_run_of_5000_steps_opens_fast_and_loads_more_on_scroll(live_server, page, screenshot, alice,
                                                                 transactional_db):
    run = build_big_run(alice)
    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    timeline = page.locator("#run-timeline")
    expect(page.locator("#run-header")).to_contain_text("5,000")
    # The first chunk only: a hundred steps, searches folded into groups.
    assert page.locator("#run-timeline .step").count() <= 100 + 10  # plus the cards' input
    expect(timeline.locator(".step-group").first).to_contain_text("40 × google_search_call")
    expect(page.locator(".timing-row.is-slowest")).to_contain_text("#7")
    screenshot("run-detail-04-5000-steps")

    first_count = timeline.locator(".timeline-item").count()
    page.locator("#timeline-more").scroll_into_view_if_needed()
    expect(timeline.locator(".raw-json summary", has_text="Step 101 · JSON")).to_be_attached(timeout=10_000)
    wait_for(lambda: timeline.locator(".timeline-item").count() > first_count)
    expect(page.locator("#timeline-more")).to_have_count(1)  # the next sentinel, for the next chunk
    assert page.locator("#run-timeline .step").count() <= 200 + 10
    # Where the second chunk begins, with a folded group opened: the viewport, not the whole page.
    first_new = timeline.locator(".timeline-item").nth(first_count)
    group = first_new.locator(".step-group")
    if group.count():
        group.locator(":scope > summary").click()
    first_new.evaluate("item => item.scrollIntoView({block: 'start'})")
    page.evaluate("window.scrollBy(0, -300)")
    page.screenshot(path=str(SCREENSHOTS / "run-detail-05-5000-steps-second-chunk.png"))


# --- The header: durations, errors, the evidence bundle, who may review ----------------------------


def waited_run(user, *, decided_by=None) -> tuple[Run, Approval]:
    """A refund run that waited about nine minutes for a person, written to the database: its
    interactions took 2.1 s and 1.5 s of API time. Decided by ``decided_by`` (then completed), or
    still waiting for a reviewer."""
    from approvals.models import Approval
    from tests.factories import function_call, make_approval, make_interaction, make_run, make_step, text_output

    start = timezone.now() - timedelta(minutes=10)
    decided = decided_by is not None
    run = make_run(status=Run.Status.COMPLETED if decided else Run.Status.WAITING_FOR_APPROVAL, created_by=user,
                   created_at=start, input="Order A-1003 arrived with a shattered panel. Full refund, please.",
                   output_text="Your refund of $1,450.00 is on its way." if decided else "",
                   finished_at=start + timedelta(minutes=9, seconds=4) if decided else None)
    usage = {"total_input_tokens": 900, "total_output_tokens": 60, "total_tokens": 960}
    first = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION, usage=usage,
                             sent_at=start + timedelta(seconds=1), finished_at=start + timedelta(seconds=3.1))
    call = make_step(first, function_call("issue_refund", {"order_id": "A-1003", "amount": 1450.0}, call_id="call_1"))
    opened = start + timedelta(seconds=3.2)
    if decided:
        approval = make_approval(first, call, status=Approval.Status.APPROVED, created_at=opened, decided_by=decided_by,
                                 decided_at=opened + timedelta(minutes=9), settled_at=opened + timedelta(minutes=9),
                                 result={"status": "issued"})
        second = make_interaction(run, previous_interaction_id=first.interaction_id, usage=usage,
                                  sent_at=opened + timedelta(minutes=9, seconds=0.2),
                                  finished_at=opened + timedelta(minutes=9, seconds=0.7))
        make_step(second, text_output("Your refund of $1,450.00 is on its way."))
    else:
        approval = make_approval(first, call, created_at=opened)
    return Run.objects.get(pk=run.pk), approval


def visit(page, live_server, run: Run, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}{run.get_absolute_url()}")


def assert_fits(page) -> None:
    """The run header holds its content at the window's width (no part of it scrolls sideways)."""
    overflow = page.locator("#run-header").evaluate("el => el.scrollWidth - el.clientWidth")
    assert overflow <= 0, overflow


def test_a_run_that_waited_long_for_a_person_keeps_its_api_bars_readable(live_server, page, screenshot, alice,
                                                                          transactional_db):
    run, approval = waited_run(alice, decided_by=alice)
    sign_in(page, live_server, alice)
    for width in (1440, 390):
        visit(page, live_server, run, width)
        header = page.locator("#run-header")
        # Three durations, named as the legend defines them.
        expect(header.locator(".time-wall")).to_contain_text("Wall time9m 04s")
        expect(header.locator(".time-api")).to_contain_text("API time2.6 s")
        expect(header.locator(".time-waiting")).to_contain_text("Waiting for people9m 00s")
        legend = header.locator(".timing-legend")
        expect(legend.get_by_role("term").nth(2)).to_have_text("Waiting for people")
        expect(legend.get_by_role("definition").nth(2)).to_contain_text("function calls awaiting a decision")
        # The API's bars on the scale of the longest (2.1 s), not of the run's nine minutes.
        tracks = header.locator(".timing-api .timing-track")
        bars = header.locator(".timing-api .timing-bar")
        expect(bars).to_have_count(2)
        track = tracks.first.bounding_box()["width"]
        assert tracks.nth(1).bounding_box()["width"] == track  # one scale: tracks of one width
        widths = [bars.nth(i).bounding_box()["width"] for i in range(2)]
        assert widths[0] == pytest.approx(track, abs=3)  # 2.1 s, the longest (its stroke drawn outside)
        assert widths[1] == pytest.approx(track * 0.5 / 2.1, abs=3) and widths[1] > 20  # 0.5 s: readable
        # The wait apart, on its own scale.
        waits = header.locator(".timing-waits .timing-row")
        expect(waits).to_have_count(1)
        expect(waits).to_contain_text("9m 00s")
        expect(header.locator(".timing-waits .wait-bar")).to_be_visible()
        assert_fits(page)
        screenshot(f"run-detail-06-waited-for-a-person-{width}")


def test_a_failed_run_shows_its_error_once(live_server, page, screenshot, alice, transactional_db):
    from tests.factories import make_interaction, make_run

    message = ("The Interactions API reports that interaction 1 failed: An internal error occurred while generating "
               "the response (internal).")
    run = make_run(status=Run.Status.FAILED, error=message, created_by_system="system:cli",
                   input="Summarise yesterday's tickets.")
    interaction = make_interaction(run, status=Interaction.Status.FAILED, errors=[
        {"code": "internal", "message": "An internal error occurred while generating the response."}])
    sign_in(page, live_server, alice)
    for width in (1440, 390):
        visit(page, live_server, run, width)
        expect(page.locator(".error-box")).to_have_count(1)
        expect(page.locator("#run-error")).to_contain_text("Why the run failed")
        expect(page.locator("#run-error")).to_contain_text(message)
        expect(page.get_by_text("An internal error occurred", exact=False)).to_have_count(1)
        card = page.locator(f"#interaction-{interaction.pk}")
        expect(card.locator(".ended-run")).to_contain_text("ended the run")
        expect(page.locator("#run-header .creator")).to_have_text("system (command line)")
        assert_fits(page)
        screenshot(f"run-detail-07-failed-{width}")
    card.get_by_role("link", name="Why it failed ↑").click()
    expect(page).to_have_url(f"{live_server.url}{run.get_absolute_url()}#run-error")


def test_the_evidence_bundle_is_offered_to_who_may_export_it(live_server, page, alice, bob, carol, transactional_db):
    run, _ = waited_run(bob, decided_by=alice)
    sign_in(page, live_server, carol)  # an auditor: may export
    visit(page, live_server, run, 1440)
    link = page.locator("#run-header").get_by_role("link", name="Evidence bundle")
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == f"handoff-run-{run.pk}-evidence.zip"

    page.context.clear_cookies()
    sign_in(page, live_server, bob)  # an engineer: may not
    visit(page, live_server, run, 1440)
    expect(page.locator("#run-header .run-actions")).to_be_visible()
    expect(page.get_by_role("link", name="Evidence bundle")).to_have_count(0)


def test_only_who_may_decide_sees_review(live_server, page, screenshot, alice, bob, transactional_db):
    from tests.conftest import make_user

    run, approval = waited_run(bob)
    viewer = make_user("vera")
    sign_in(page, live_server, viewer)
    for width in (1440, 390):
        visit(page, live_server, run, width)
        box = page.locator(f"#approval-{approval.pk}")
        expect(box).to_contain_text("Pending")
        expect(box.get_by_role("link", name="Review")).to_have_count(0)
        expect(box.get_by_role("link", name=f"View approval #{approval.pk}")).to_be_visible()
        # Waiting now: the wait grows with the page.
        expect(page.locator(".time-waiting")).to_contain_text("so far")
        assert_fits(page)
        screenshot(f"run-detail-08-waiting-viewer-{width}")

    page.context.clear_cookies()
    sign_in(page, live_server, alice)  # a reviewer
    visit(page, live_server, run, 1440)
    box = page.locator(f"#approval-{approval.pk}")
    expect(box.get_by_role("link", name="Review")).to_be_visible()
    # The box keeps answering for its reader when it polls itself.
    page.wait_for_timeout(2_500)
    expect(box.get_by_role("link", name="Review")).to_be_visible()
    screenshot("run-detail-09-waiting-reviewer-1440")
