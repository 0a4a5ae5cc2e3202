"""The run detail page in a browser: every step type through the emulator's showcase, a
background agent run that updates live from running to completed, and a run of 5,000 steps that
opens fast and loads more as the reader scrolls."""

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

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
