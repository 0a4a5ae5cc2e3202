"""Start, cancel and continue runs in the browser."""

from playwright.sync_api import expect

from runs import execution
from runs.models import Interaction, Run
from tests.browser.conftest import sign_in
from tests.conftest import wait_for


def test_an_engineer_starts_a_run_from_the_form_and_sees_it_complete(worker, live_server, page, screenshot, bob):
    sign_in(page, live_server, bob)
    page.goto(f"{live_server.url}/runs/new/")
    page.get_by_role("button", name="Start run").click()
    expect(page.locator(".field-error").first).to_be_visible()
    screenshot("actions-01-start-form-errors")

    page.get_by_label("Input").fill("In one line: what is a function_result?")
    page.get_by_role("button", name="Start run").click()

    expect(page.locator("#run-header")).to_contain_text("Completed", timeout=20_000)
    run = Run.objects.get()
    assert run.created_by == bob and run.status == Run.Status.COMPLETED
    screenshot("actions-02-started-run")


def test_an_engineer_cancels_a_running_background_run(worker, api, monkeypatch, live_server, page, screenshot, bob):
    # The emulated job runs until cancelled: on a loaded machine three polls (the emulator's
    # default) can finish it before the page has loaded, and there is nothing left to cancel.
    monkeypatch.setattr(api, "background_polls", 10_000)
    run = execution.create_run(agent="deep-research-pro-preview-12-2025", input="Research slowly", background=True,
                               created_by=bob)
    wait_for(lambda: Interaction.objects.filter(run=run, dispatch=Interaction.Dispatch.SENT).exists())

    sign_in(page, live_server, bob)
    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    page.get_by_role("button", name="Cancel run").click()

    expect(page.locator("body")).to_contain_text(f"Run {run.pk} cancelled")
    expect(page.locator("#run-header")).to_contain_text("Cancelled")
    expect(page.locator("body")).to_contain_text("Cancelled by bob")
    screenshot("actions-03-cancelled")
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED


def test_an_engineer_continues_a_completed_run(worker, live_server, page, screenshot, bob):
    run = execution.create_run(model="gemini-3-flash-preview", input="Name a colour.", created_by=bob)
    wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.COMPLETED).exists())

    sign_in(page, live_server, bob)
    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    page.get_by_label("Continue the conversation").fill("And one more?")
    page.get_by_role("button", name="Send").click()

    expect(page.locator("#run-timeline")).to_contain_text("And one more?", timeout=20_000)
    expect(page.locator("#run-header")).to_contain_text("Completed", timeout=20_000)
    wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.COMPLETED, interactions__sequence=1).exists())
    screenshot("actions-04-continued")
