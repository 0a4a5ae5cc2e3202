"""How a run's error words an interaction the API ended without success: once, in plain words
(the run page shows it in the header only: test_run_detail.py)."""

import json

import pytest

from runs import execution, gemini
from runs.models import Interaction, Run
from tests.factories import keep_counts


def ended(status: str, errors: list) -> Run:
    run = Run.objects.create(model="gemini-3-flash-preview", input="hi")
    interaction = Interaction.objects.create(
        run=run, sequence=0, request={"model": run.model, "input": "hi"}, dispatch=Interaction.Dispatch.SENDING,
    )
    keep_counts(run)
    payload = {"id": f"v1_ended_{run.pk}", "status": status, "steps": [], "errors": errors}
    execution.record(interaction, gemini.parse(json.dumps(payload)))
    run.refresh_from_db()
    return run


@pytest.mark.parametrize("status,errors,message", [
    ("failed", [{"code": "internal", "message": "An internal error occurred while generating the response."}],
     "The Interactions API reports that interaction 1 failed: An internal error occurred while generating "
     "the response (internal)."),
    ("failed", [], "The Interactions API reports that interaction 1 failed."),
    ("incomplete", [{"code": "max_tokens"}, {"message": "cut short"}],
     "The Interactions API stopped interaction 1 before it was complete: max_tokens; cut short."),
    ("budget_exceeded", [], "Interaction 1 went over its budget."),
])
def test_the_runs_error_says_in_plain_words_how_the_interaction_ended(db, status, errors, message):
    run = ended(status, errors)
    assert run.status == Run.Status.FAILED
    assert run.error == message
    assert "ended failed" not in run.error
