"""Polling a background interaction through a real worker: a poll whose body is not an
interaction (no status) is kept as evidence and retried with backoff, a bounded number of times."""

from runs import execution
from runs.models import Artifact, Interaction, Run
from tests.conftest import wait_for

MODEL = "gemini-3-flash-preview"


def settled(run: Run) -> Run:
    wait_for(lambda: Run.objects.filter(pk=run.pk, status__in=Run.FINAL_STATUSES).exists(), timeout=30)
    run.refresh_from_db()
    return run


def test_one_poll_without_a_status_is_kept_and_retried_and_the_run_completes(worker, api):
    run = execution.create_run(model=MODEL, input="Why gate refunds? [fault:statusless_getx1]", background=True)

    run = settled(run)

    assert run.status == Run.Status.COMPLETED, run.error
    interaction = run.interactions.get()
    assert interaction.poll_count == 2 == len(api.requests_for(method="GET"))
    kept = interaction.artifacts.get(kind=Artifact.Kind.RAW_RESPONSE)
    assert '"id":"%s"' % interaction.interaction_id in kept.content and '"status"' not in kept.content
    assert "no status" in interaction.error and "Poll 1" in interaction.error
    assert "Why gate refunds?" in run.output_text


def test_a_run_whose_every_poll_lacks_a_status_fails_after_the_configured_number_of_polls(worker, api, settings):
    settings.POLL_MALFORMED_LIMIT = 3
    run = execution.create_run(model=MODEL, input="Never readable [fault:statusless_get]", background=True)

    run = settled(run)

    assert run.status == Run.Status.FAILED
    assert run.error == (
        "Polling gave up after 3 polls in a row that got no interaction. The last: The API answered 200 "
        "with a body that is not an interaction (no status)."
    )
    interaction = run.interactions.get()
    assert interaction.poll_count == 3 == len(api.requests_for(method="GET"))
    assert interaction.dispatch == Interaction.Dispatch.SENT and interaction.error == run.error
    assert '"status"' not in interaction.artifacts.get(kind=Artifact.Kind.RAW_RESPONSE).content


def test_polls_that_run_out_of_retries_fail_the_run_with_its_event(transactional_db):
    # transactional_db: outside any transaction, as in the worker, where an event written outside
    # the change's transaction is refused.
    import httpx2
    from google.genai import _interactions as api_errors

    from audit.models import AuditEvent
    from tests.factories import make_interaction, make_run

    run = make_run(status=Run.Status.RUNNING, background=True)
    interaction = make_interaction(run, status=Interaction.Status.IN_PROGRESS, finished_at=None)
    response = httpx2.Response(503, request=httpx2.Request("GET", "http://api.test/v1/interactions/x"))

    execution.give_up(interaction.pk, api_errors.APIStatusError("Service unavailable", response=response, body=None))

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED and run.error.startswith("Polling gave up after retries")
    assert AuditEvent.objects.filter(verb="interaction.failed", object_id=str(interaction.pk)).exists()
