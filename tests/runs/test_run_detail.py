import json
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.models import Approval
from runs.models import Artifact, Interaction, Run
from tests.factories import (
    function_call, make_approval, make_artifact, make_interaction, make_run, make_step, text_output,
)

ALL_STEP_TYPES = Path(__file__).resolve().parent.parent / "payloads" / "05f_all_step_type_examples_apiref.json"


def url(run: Run) -> str:
    return f"/runs/{run.pk}/"


@pytest.fixture
def completed_run(bob):
    run = make_run(status=Run.Status.COMPLETED, output_text="Your refund is on its way.", total_tokens=321,
                   created_by=bob)
    first = make_interaction(
        run, status=Interaction.Status.REQUIRES_ACTION,
        usage={"total_input_tokens": 100, "total_output_tokens": 20, "total_thought_tokens": 7,
               "total_cached_tokens": 3, "total_tool_use_tokens": 1, "total_tokens": 131},
    )
    call = make_step(first, function_call("issue_refund", {"order_id": "A-1003", "amount": 1450.0}, call_id="call_1"))
    make_approval(first, call, status=Approval.Status.REJECTED, decided_by=bob, reason="Too large for a refund")
    make_interaction(
        run, previous_interaction_id=first.interaction_id,
        request={"model": run.model, "previous_interaction_id": first.interaction_id, "input": [
            {"type": "function_result", "call_id": "call_1", "name": "issue_refund",
             "result": {"error": "A reviewer rejected this call: Too large"}, "is_error": True},
        ]},
    )
    return run


def test_it_shows_the_header(client, alice, completed_run):
    client.force_login(alice)
    response = client.get(url(completed_run))
    body = response.content.decode()
    assert response.status_code == 200
    assert "pill-completed" in body
    assert "gemini-2.5-flash" in body
    assert ">bob<" in body
    assert "321" in body
    assert "Your refund is on its way." in body


def test_it_shows_each_interaction_with_usage_and_chain(client, alice, completed_run):
    first, second = completed_run.interactions.order_by("sequence")
    client.force_login(alice)
    body = client.get(url(completed_run)).content.decode()
    assert first.interaction_id in body
    assert second.interaction_id in body
    assert "requires_action" in body
    assert body.count(first.interaction_id) >= 2  # its own card and the follow-up's "previous"
    for number in ("100", "20", "131"):
        assert f"<dd>{number}</dd>" in body
    assert "google-genai 3.3.0" in body
    assert "850 ms" in body


def test_it_shows_the_input_sent_the_function_call_its_approval_and_the_result_sent(client, alice, completed_run):
    client.force_login(alice)
    body = client.get(url(completed_run)).content.decode()
    assert "What is the status of order A-1001?" in body  # the first request's input
    assert "issue_refund" in body
    assert "&quot;amount&quot;: 1450.0" in body
    assert "pill-rejected" in body
    assert "Too large for a refund" in body
    assert "A reviewer rejected this call: Too large" in body  # the follow-up's function_result
    assert "step-function_result step-error" in body


def test_a_pending_call_links_to_its_review(client, alice):
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    interaction = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION)
    approval = make_approval(interaction, make_step(interaction, function_call()))
    client.force_login(alice)
    body = client.get(url(run)).content.decode()
    assert f'href="/approvals/{approval.pk}/">Review</a>' in body


def test_it_renders_every_documented_step_type_and_an_unknown_one(client, alice):
    with open(ALL_STEP_TYPES) as f:
        examples = json.load(f)
    run = make_run()
    interaction = make_interaction(run)
    for data in examples.values():
        make_step(interaction, data)
    make_step(interaction, {"type": "hologram_projection", "frames": 3})
    client.force_login(alice)
    body = client.get(url(run)).content.decode()
    assert "The capital of France is Paris." in body
    assert "The model is searching Google for the capital of France." in body
    assert "print(sum(range(1, 11)))" in body
    assert "Who won the men&#x27;s 100m in Paris 2024?" in body  # arguments.query, singular
    assert 'href="https://olympics.com/en/news/paris-2024-noah-lyles-wins-mens-100m-gold" rel="noopener nofollow"' in body
    assert "financial_mcp_server" in body and "calculate_tax" in body
    assert "https://www.example.com" in body
    assert "&quot;tax_due&quot;: 32400" in body
    assert "file_search_call" in body  # known, no template of its own: generic
    assert "hologram_projection" in body
    assert body.count("unknown step type</span>") == 1
    assert "&quot;frames&quot;: 3" in body


def test_it_shows_thoughts_collapsed_with_a_truncated_signature(client, alice):
    run = make_run()
    make_step(make_interaction(run), {"type": "thought", "signature": "s" * 500,
                                      "summary": [{"type": "text", "text": "Thinking it over"}]})
    client.force_login(alice)
    body = client.get(url(run)).content.decode()
    assert "<details>" in body
    assert "Thinking it over" in body
    assert "s" * 500 not in body


def test_it_shows_images_as_a_placeholder_not_base64(client, alice):
    run = make_run()
    make_step(make_interaction(run), {"type": "model_output", "content": [
        {"type": "image", "mime_type": "image/png", "data": "iVBORw0KGgo" + "A" * 5000},
    ]})
    client.force_login(alice)
    body = client.get(url(run)).content.decode()
    assert "image (image/png)" in body
    assert "iVBORw0KGgo" not in body


def test_it_lists_url_citations_as_safe_links(client, alice):
    run = make_run()
    make_step(make_interaction(run), {"type": "model_output", "content": [{
        "type": "text", "text": "Spain won Euro 2024.",
        "annotations": [
            {"type": "url_citation", "url": "https://www.uefa.com/euro2024", "title": "uefa.com"},
            {"type": "url_citation", "url": "javascript:alert(1)", "title": "sneaky"},
        ],
    }]})
    client.force_login(alice)
    body = client.get(url(run)).content.decode()
    assert '<a href="https://www.uefa.com/euro2024" rel="noopener nofollow" target="_blank">uefa.com</a>' in body
    assert "sneaky" in body
    assert 'href="javascript:' not in body


def test_it_escapes_what_the_model_wrote(client, alice):
    run = make_run()
    make_step(make_interaction(run), text_output("<script>alert(1)</script>"))
    make_step(run.interactions.get(), {"type": "google_search_result", "call_id": "s1",
                                       "result": [{"search_suggestions": "<div onclick=alert(2)>widget</div>"}]})
    client.force_login(alice)
    body = client.get(url(run)).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<div onclick" not in body


def test_it_shows_the_error_of_a_failed_run(client, alice):
    run = make_run(status=Run.Status.FAILED, error="The interaction ended failed (500: backend error)")
    make_interaction(run, status=Interaction.Status.FAILED, errors=[{"code": "500", "message": "backend error"}])
    client.force_login(alice)
    body = client.get(url(run)).content.decode()
    assert 'class="error-box"' in body
    assert "The interaction ended failed (500: backend error)" in body


def test_it_shows_a_dispatch_state_that_is_not_sent(client, alice):
    run = make_run(status=Run.Status.RUNNING)
    make_interaction(run, dispatch=Interaction.Dispatch.UNKNOWN, interaction_id=None, status="")
    client.force_login(alice)
    body = client.get(url(run)).content.decode()
    assert "Outcome unknown" in body


def test_it_lists_artifacts_with_their_download_link(client, alice):
    run = make_run()
    artifact = make_artifact(make_interaction(run), content='{"total_tokens": 10}')
    client.force_login(alice)
    body = client.get(url(run)).content.decode()
    assert f'href="/runs/{run.pk}/artifacts/{artifact.pk}/"' in body
    assert "Usage" in body
    assert "20\xa0bytes" in body  # filesizeformat joins with a no-break space


def test_it_polls_while_the_run_is_active(client, alice):
    run = make_run(status=Run.Status.RUNNING)
    make_interaction(run, status=Interaction.Status.IN_PROGRESS)
    client.force_login(alice)
    body = client.get(url(run)).content.decode()
    assert f'hx-get="/runs/{run.pk}/" hx-trigger="every 2s"' in body


def test_it_stops_polling_once_the_run_is_finished(client, alice, completed_run):
    client.force_login(alice)
    body = client.get(url(completed_run)).content.decode()
    assert 'id="run-timeline"' in body
    assert "every 2s" not in body


def test_an_htmx_request_gets_only_the_timeline(client, alice, completed_run):
    client.force_login(alice)
    response = client.get(url(completed_run), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="run-timeline"')
    assert "<html" not in body
    assert "pill-completed" in body  # the header status updates with the timeline
    assert "HX-Request" in response["Vary"]


def test_the_query_count_does_not_grow_with_the_steps(client, alice):
    def build(n: int) -> Run:
        run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
        for sequence in range(2):
            interaction = make_interaction(run, sequence=sequence)
            make_artifact(interaction)
            for _ in range(n):
                make_step(interaction, text_output("hello"))
                step = make_step(interaction, function_call())
                make_approval(interaction, step, status=Approval.Status.APPROVED, decided_by=alice)
        return run

    def count_queries(run: Run) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url(run)).status_code == 200
        return len(queries)

    client.force_login(alice)
    assert count_queries(build(3)) == count_queries(build(30))


def test_it_answers_404_for_a_missing_run(client, alice):
    client.force_login(alice)
    assert client.get("/runs/999999/").status_code == 404


def test_it_redirects_anonymous_users_to_sign_in(client, completed_run):
    response = client.get(url(completed_run))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_refuses_post(client, alice, completed_run):
    client.force_login(alice)
    assert client.post(url(completed_run)).status_code == 405


# --- Artifact downloads ----------------------------------------------------------------------


def test_an_artifact_downloads_as_an_attachment(client, alice):
    run = make_run()
    artifact = make_artifact(make_interaction(run), content='{"total_tokens": 10}')
    client.force_login(alice)
    response = client.get(f"/runs/{run.pk}/artifacts/{artifact.pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}-interaction-0-usage.json"'
    assert response.content == b'{"total_tokens": 10}'


def test_an_artifact_that_is_not_json_is_served_as_plain_text(client, alice):
    run = make_run()
    artifact = make_artifact(make_interaction(run), kind=Artifact.Kind.RAW_RESPONSE,
                             content="<html>not rendered</html>", media_type="text/html")
    client.force_login(alice)
    response = client.get(f"/runs/{run.pk}/artifacts/{artifact.pk}/")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")


def test_an_artifact_of_another_run_is_not_found(client, alice):
    artifact = make_artifact(make_interaction(make_run()))
    other = make_run()
    client.force_login(alice)
    assert client.get(f"/runs/{other.pk}/artifacts/{artifact.pk}/").status_code == 404


def test_artifacts_need_a_signed_in_user(client, db):
    run = make_run()
    artifact = make_artifact(make_interaction(run))
    assert client.get(f"/runs/{run.pk}/artifacts/{artifact.pk}/").status_code == 302


# --- Long timelines --------------------------------------------------------------------------


def test_a_long_timeline_is_shown_a_page_at_a_time(client, alice, monkeypatch):
    monkeypatch.setattr("runs.views.STEPS_PER_PAGE", 4)
    run = make_run(status=Run.Status.RUNNING)
    first = make_interaction(run, sequence=0)
    for i in range(6):
        make_step(first, text_output(f"first-{i}"))
    second = make_interaction(run, sequence=1, request={"model": run.model, "input": "SECOND INPUT"})
    for i in range(3):
        make_step(second, text_output(f"second-{i}"))
    in_flight = make_interaction(run, sequence=2, status=Interaction.Status.IN_PROGRESS)
    client.force_login(alice)

    page1 = client.get(url(run)).content.decode()
    assert all(f"first-{i}" in page1 for i in range(4))
    assert "first-4" not in page1 and "second-0" not in page1
    assert "Steps 1–4 of 9" in page1
    assert "More steps of this interaction on page 2" in page1
    assert f'href="?page=2">\n        <span class="seq">Interaction 2</span>' in page1

    page2 = client.get(url(run), {"page": 2}).content.decode()
    assert "first-3" not in page2
    assert "first-4" in page2 and "first-5" in page2 and "second-0" in page2 and "second-1" in page2
    assert "continued from page 1" in page2
    assert "SECOND INPUT" in page2
    assert 'hx-get="/runs/%d/?page=2"' % run.pk in page2  # polling keeps the page
    polled = client.get(url(run), {"page": 2}, HTTP_HX_REQUEST="true").content.decode()
    assert "Page 2 of 3" in polled and "<html" not in polled

    page3 = client.get(url(run), {"page": 3}).content.decode()
    assert "second-2" in page3
    assert in_flight.interaction_id in page3
    assert "Nothing yet." in page3  # the interaction in flight sits on the last page


def test_a_page_past_the_end_shows_the_last_page(client, alice, monkeypatch):
    monkeypatch.setattr("runs.views.STEPS_PER_PAGE", 2)
    run = make_run()
    interaction = make_interaction(run)
    for i in range(3):
        make_step(interaction, text_output(f"step-{i}"))
    client.force_login(alice)
    body = client.get(url(run), {"page": 99}).content.decode()
    assert "step-2" in body
    assert "Page 2 of 2" in body
