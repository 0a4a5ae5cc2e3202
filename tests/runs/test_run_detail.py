import base64
import json
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import Approval
from runs import costs
from runs.emulator import showcase
from runs.models import Artifact, Interaction, Run, Step
from tests.conftest import make_user
from tests.factories import (
    function_call, make_approval, make_artifact, make_interaction, make_run, make_step, make_steps, text_output,
)

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"
ALL_STEP_TYPES = PAYLOADS / "05f_all_step_type_examples_apiref.json"
# A real 1×1 PNG.
PNG_1PX = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
GIF_1PX = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def url(run: Run) -> str:
    return f"/runs/{run.pk}/"


def page(client, run: Run, **params) -> str:
    response = client.get(url(run), params)
    assert response.status_code == 200
    return response.content.decode()


def htmx(client, run: Run, target: str, **params):
    return client.get(url(run), params, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=target)


@pytest.fixture
def completed_run(bob):
    run = make_run(status=Run.Status.COMPLETED, output_text="Your refund is on its way.", created_by=bob)
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
        usage={"total_input_tokens": 160, "total_output_tokens": 30, "total_tokens": 190},
    )
    return run  # 321 tokens in all


# --- Header and interactions --------------------------------------------------------------------


def test_it_shows_the_header(client, alice, completed_run):
    client.force_login(alice)
    body = page(client, completed_run)
    assert "pill-completed" in body
    assert "gemini-2.5-flash" in body
    assert ">bob<" in body
    assert "321" in body
    assert "Your refund is on its way." in body
    assert 'class="run-actions"' in body  # the slot for Cancel / Continue / Run again


def test_it_shows_each_interaction_with_usage_and_chain(client, alice, completed_run):
    first, second = completed_run.interactions.order_by("sequence")
    client.force_login(alice)
    body = page(client, completed_run)
    assert first.interaction_id in body
    assert second.interaction_id in body
    assert "requires_action" in body
    assert body.count(first.interaction_id) >= 2  # its own card and the follow-up's "previous"
    for number in ("100", "20", "7", "3", "1", "131"):
        assert f"<dd>{number}</dd>" in body
    assert "google-genai 3.3.0" in body
    assert "850 ms" in body


def test_it_shows_the_input_sent_the_function_call_its_approval_and_the_result_sent(client, alice, completed_run):
    client.force_login(alice)
    body = page(client, completed_run)
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
    body = page(client, run)
    assert f'href="/approvals/{approval.pk}/">Review</a>' in body


@pytest.mark.parametrize("who", ["viewer", "bob", "carol"])
def test_who_may_not_decide_sees_the_call_to_view_not_to_review(client, who, bob, carol):
    user = {"viewer": make_user("vera"), "bob": bob, "carol": carol}[who]
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    interaction = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION)
    approval = make_approval(interaction, make_step(interaction, function_call()))
    client.force_login(user)
    body = page(client, run)
    assert ">Review</a>" not in body
    assert f'href="/approvals/{approval.pk}/">View approval #{approval.pk}</a>' in body
    # The next chunk, as htmx appends it, answers for its reader the same way.
    more = htmx(client, run, "timeline-tail", **{"from": 0, "i": 1}).content.decode()
    assert ">Review</a>" not in more and f"View approval #{approval.pk}" in more


def test_a_reviewer_outside_the_calls_group_sees_no_review(client, alice):
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    interaction = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION)
    make_approval(interaction, make_step(interaction, function_call()), approver_group="finance-leads")
    client.force_login(alice)  # a reviewer, not a finance lead
    assert ">Review</a>" not in page(client, run)


def test_it_estimates_the_cost_of_each_interaction_and_of_the_run(client, alice):
    run = make_run(model="gemini-2.5-flash")
    usage = {"total_input_tokens": 1_000_000, "total_cached_tokens": 200_000, "total_output_tokens": 100_000,
             "total_thought_tokens": 50_000, "total_tool_use_tokens": 0, "total_tokens": 1_150_000}
    make_interaction(run, usage=usage)
    make_interaction(run, usage=usage)
    client.force_login(alice)
    body = page(client, run)
    # 800k fresh input at $0.30 + 200k cached at $0.03 + 150k output and thought at $2.50 per 1M.
    assert body.count('<dd class="cost" title="An estimate from the price table in settings (GEMINI_PRICES)">$0.62</dd>') == 2
    assert '<dd class="cost">$1.24</dd>' in body
    assert ">estimate</span>" in body


def test_a_model_without_a_price_has_no_cost_estimate(client, alice):
    run = make_run(agent="deep-research-pro-preview-12-2025")
    make_interaction(run, usage={"total_input_tokens": 10, "total_output_tokens": 10, "total_tokens": 20})
    client.force_login(alice)
    body = page(client, run)
    assert '<dd class="cost">—</dd>' in body


def test_the_cost_estimate_prices_each_kind_of_token(settings):
    settings.GEMINI_PRICES = {"m": {"input": "1", "output": "10", "cached_input": "0.1"}}
    usage = {"total_input_tokens": 1_000, "total_cached_tokens": 400, "total_tool_use_tokens": 100,
             "total_output_tokens": 20, "total_thought_tokens": 30}
    # (600 fresh + 100 tool use) × $1 + 400 × $0.10 + 50 × $10, per 1M tokens.
    assert costs.estimate_usd("m", usage) == Decimal("0.00124")
    assert costs.estimate_usd("other", usage) is None
    assert costs.estimate_usd("m", None) is None
    assert costs.estimate_usd("m", {"total_input_tokens": "many"}) == Decimal(0)


def test_the_timing_chart_has_a_bar_per_interaction_and_marks_the_slowest(client, alice):
    run = make_run()
    start = run.created_at
    make_interaction(run, sent_at=start, finished_at=start + timedelta(milliseconds=500))
    slow = make_interaction(run, sent_at=start + timedelta(seconds=1), finished_at=start + timedelta(seconds=9))
    make_interaction(run, sent_at=start + timedelta(seconds=9), finished_at=start + timedelta(seconds=10))
    client.force_login(alice)
    body = page(client, run)
    assert body.count('<li class="timing-row') == 3
    assert re.search(r'timing-row is-slowest">\s*<a class="timing-name" href="#interaction-%d">#2</a>' % slow.pk, body)
    # API time on the scale of the longest interaction, not placed on the run's clock.
    assert 'x="0" width="100.000%"' in body  # 8 s, the longest
    assert 'x="0" width="6.250%"' in body and 'x="0" width="12.500%"' in body  # 0.5 s and 1 s of 8 s
    assert "8.0 s" in body
    assert re.search(r'API time</abbr></dt><dd>9.5 s</dd>', body)  # summed


# --- Step types ---------------------------------------------------------------------------------


def test_it_renders_every_documented_step_type_and_an_unknown_one(client, alice):
    with open(ALL_STEP_TYPES) as f:
        examples = json.load(f)
    run = make_run()
    interaction = make_interaction(run)
    make_steps(interaction, [*examples.values(), {"type": "hologram_projection", "frames": 3}])
    client.force_login(alice)
    body = page(client, run)
    assert "The capital of France is Paris." in body
    assert "The model is searching Google for the capital of France." in body
    assert "get_weather" in body and "Partly Cloudy" in body
    assert "print(sum(range(1, 11)))" in body and "55\n" in body
    assert "<li>Who won the men&#x27;s 100m in Paris 2024?</li>" in body  # arguments.query, singular
    assert 'href="https://olympics.com/en/news/paris-2024-noah-lyles-wins-mens-100m-gold" rel="noopener nofollow"' in body
    assert "financial_mcp_server" in body and "calculate_tax" in body
    assert "&quot;tax_due&quot;: 32400" in body
    assert 'href="https://www.example.com"' in body and "Example Domain" in body
    assert "File search" in body and "The API sends no arguments for this call" in body
    assert "Near <span class=\"mono\">37.7749, -122.4194</span>" in body
    assert "Golden Gate Park" in body and "★ 4.8" in body
    assert "hologram_projection" in body
    assert body.count("unknown step type</span>") == 1
    assert "&quot;frames&quot;: 3" in body
    assert "step-generic" not in body.replace("step-generic step-unknown", "")  # every known type has its own


def test_it_renders_the_2026_04_reference_examples_of_the_same_shapes(client, alice):
    legacy = json.loads((PAYLOADS / "07i_legacy_content_type_examples_apiref_2026-04.json").read_text())
    run = make_run()
    make_steps(make_interaction(run), [v for k, v in legacy.items() if k not in ("Text",)])
    client.force_login(alice)
    body = page(client, run)
    assert '<span class="pill pill-url-success" title="Retrieval status as sent: SUCCESS">success</span>' in body
    assert 'href="https://www.google.com/maps/search/best+food+near+me" rel="noopener nofollow" target="_blank">Tasty Restaurant</a>' in body
    assert "search result chunk" in body and ">file_search_store</span>" in body
    assert "<li>best food near me</li>" in body
    assert "weather_server › get_forecast" in body


def test_each_url_context_status_has_its_own_pill(client, alice):
    run = make_run()
    make_step(make_interaction(run), {"type": "url_context_result", "call_id": "u1", "result": [
        {"url": "https://a.example", "status": "success"}, {"url": "https://b.example", "status": "error"},
        {"url": "https://c.example", "status": "PAYWALL"}, {"url": "https://malware.example", "status": "unsafe"},
        {"url": "javascript:alert(1)", "status": "error"},
    ]})
    client.force_login(alice)
    body = page(client, run)
    for status in ("success", "error", "paywall", "unsafe"):
        assert f'class="pill pill-url-{status}"' in body
    assert 'href="https://a.example"' in body
    assert 'href="https://malware.example"' not in body and "https://malware.example" in body  # flagged: no link
    assert 'href="javascript:' not in body


def test_google_search_shows_queries_and_results_of_both_documented_shapes(client, alice):
    quickstart = json.loads((PAYLOADS / "05_google_search_steps_quickstart.json").read_text())
    run = make_run()
    make_steps(make_interaction(run), quickstart["steps"])
    client.force_login(alice)
    body = page(client, run)
    assert "<li>UEFA Euro 2024 winner</li>" in body
    assert "Search suggestions widget (HTML, not rendered)" in body
    assert "&lt;!-- HTML and CSS search widget --&gt;" in body


def test_maps_results_list_places_with_review_snippets(client, alice):
    run = make_run()
    make_step(make_interaction(run), {"type": "google_maps_result", "call_id": "m1", "result": [{"places": [{
        "name": "Blue Bottle", "url": "https://maps.google.com/?cid=9",
        "review_snippets": [{"title": "Best pour-over", "url": "https://maps.google.com/?cid=9&r=1"},
                            {"title": "Sneaky", "url": "javascript:alert(1)"}],
    }]}]})
    client.force_login(alice)
    body = page(client, run)
    assert '<a href="https://maps.google.com/?cid=9" rel="noopener nofollow" target="_blank">Blue Bottle</a>' in body
    assert ">Best pour-over</a>" in body
    assert "Sneaky" in body and 'href="javascript:' not in body


def test_retrieval_and_processing_steps_render_for_their_type(client, alice):
    run = make_run()
    make_steps(make_interaction(run), [
        {"type": "retrieval_call", "id": "r1", "retrieval_type": "vertex_ai_search", "arguments": {"queries": ["refunds"]}},
        {"type": "retrieval_result", "call_id": "r1", "is_error": True},
        {"type": "processing_call", "id": "p1"},
        {"type": "processing_result", "call_id": "p1"},
    ])
    client.force_login(alice)
    body = page(client, run)
    assert ">vertex_ai_search</span>" in body and "<li>refunds</li>" in body
    assert "step-retrieval_result step-error" in body and "The retrieval failed." in body
    assert "Media processing" in body and "Media processing done" in body


def test_it_shows_thoughts_collapsed_with_a_truncated_signature(client, alice):
    run = make_run()
    make_step(make_interaction(run), {"type": "thought", "signature": "s" * 500,
                                      "summary": [{"type": "text", "text": "Thinking it over"}]})
    client.force_login(alice)
    body = page(client, run)
    thought = body[body.index('<div class="step step-thought">'):]
    assert thought.index("<details>") < thought.index("Thinking it over") < thought.index("</details>")
    assert "sig sssssssssssssssssss…" in body


def test_every_step_offers_its_raw_json_collapsed(client, alice):
    run = make_run()
    make_steps(make_interaction(run), [text_output("hello"), function_call("lookup_order", {"order_id": "A-1"})])
    client.force_login(alice)
    body = page(client, run)
    assert '<details class="raw-json"><summary>Step 1 · JSON</summary>' in body
    assert '<details class="raw-json"><summary>Step 2 · JSON</summary>' in body
    assert "&quot;type&quot;: &quot;function_call&quot;" in body


def test_structured_output_is_pretty_printed(client, alice):
    quickstart = json.loads((PAYLOADS / "05d_structured_output_quickstart.json").read_text())
    run = make_run()
    make_steps(make_interaction(run), quickstart["steps"] + [text_output("[1, 2")])
    client.force_login(alice)
    body = page(client, run)
    assert "JSON</span><pre class=\"json\">{\n  &quot;recipe_name&quot;: &quot;Classic Banana Bread&quot;," in body
    assert '<div class="markdown"><p>[1, 2</p>' in body  # not JSON: shown as text


def test_it_shows_a_valid_image_from_handoffs_own_url_never_as_data(client, alice):
    run = make_run()
    step = make_step(make_interaction(run), {"type": "model_output", "content": [
        {"type": "image", "mime_type": "image/png", "data": PNG_1PX},
        {"type": "image", "mime_type": "image/gif", "data": GIF_1PX},
    ]})
    client.force_login(alice)
    body = page(client, run)
    assert (f'<img src="/runs/{run.pk}/steps/{step.pk}/images/0/" alt="Image from the model (image/png)" '
            'loading="lazy">') in body
    assert f'<img src="/runs/{run.pk}/steps/{step.pk}/images/1/"' in body
    assert "image/png · 70\xa0bytes" in body  # the decoded size, not the base64's
    assert "data:image" not in body


@pytest.mark.parametrize("block, reason", [
    ({"mime_type": "image/svg+xml", "data": base64.b64encode(b"<svg onload=alert(1)></svg>").decode()},
     "SVG is never shown inline"),
    ({"mime_type": "image/png", "data": GIF_1PX}, "the data is not a PNG image"),  # the type lies
    ({"mime_type": "text/html", "data": base64.b64encode(b"<script>alert(1)</script>").decode()},
     "text/html is not shown inline"),
    ({"mime_type": "image/png", "data": "BASE64_ENCODED_IMAGE"}, "the data is not base64"),  # as the quickstart shows it
    ({"mime_type": "image/png\" onerror=\"alert(1)", "data": PNG_1PX}, "is not shown inline"),
])
def test_an_unsafe_or_broken_image_is_never_shown_inline(client, alice, block, reason):
    run = make_run()
    make_step(make_interaction(run), {"type": "model_output", "content": [{"type": "image", **block}]})
    client.force_login(alice)
    body = page(client, run)
    assert "<img" not in body
    assert reason.replace('"', "&quot;") in body.replace("&#x27;", "'") or reason in body
    assert 'onerror="' not in body


def test_an_image_uri_is_a_link_only_when_it_is_http(client, alice):
    run = make_run()
    make_step(make_interaction(run), {"type": "model_output", "content": [
        {"type": "image", "mime_type": "image/png", "uri": "https://storage.example.com/cat.png"},
        {"type": "image", "mime_type": "image/png", "uri": "javascript:alert(1)"},
        {"type": "image", "mime_type": "image/png", "uri": "data:text/html,<script>alert(2)</script>"},
    ]})
    client.force_login(alice)
    body = page(client, run)
    assert '<a class="mono" href="https://storage.example.com/cat.png" rel="noopener nofollow" target="_blank">' in body
    assert 'href="javascript:' not in body and 'href="data:' not in body and "<img" not in body
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in body


def test_the_raw_json_of_a_large_image_is_cut_short(client, alice):
    data = PNG_1PX[:-2] + "A" * 40_000 + "=="
    run = make_run()
    make_step(make_interaction(run), {"type": "model_output", "content": [
        {"type": "image", "mime_type": "image/jpeg", "data": data}]})
    client.force_login(alice)
    body = page(client, run)
    assert body.count(data[:3000]) == 0
    assert "more characters]" in body


def test_it_lists_url_citations_as_safe_links_and_marks_the_cited_words(client, alice):
    run = make_run()
    text = "Spain won Euro 2024. Café culture is another story."
    make_step(make_interaction(run), {"type": "model_output", "content": [{
        "type": "text", "text": text,
        "annotations": [
            {"type": "url_citation", "url": "https://www.uefa.com/euro2024", "title": "uefa.com",
             "start_index": 0, "end_index": 20},
            {"type": "url_citation", "url": "javascript:alert(1)", "title": "sneaky",
             "start_index": 21, "end_index": len(text.encode())},
        ],
    }]})
    client.force_login(alice)
    body = page(client, run)
    assert '<li value="1"><a href="https://www.uefa.com/euro2024" rel="noopener nofollow" target="_blank">uefa.com</a>' in body
    assert "Spain won Euro 2024.<sup class=\"cite\">[1]</sup> Café culture is another story.<sup class=\"cite\">[2]</sup>" in body
    assert "sneaky" in body
    assert 'href="javascript:' not in body


def test_it_escapes_what_the_model_and_the_tools_wrote(client, alice):
    run = make_run()
    interaction = make_interaction(run)
    make_steps(interaction, [
        text_output("<script>alert(1)</script>"),
        {"type": "google_search_result", "call_id": "s1",
         "result": [{"search_suggestions": "<div onclick=alert(2)>widget</div>",
                     "title": "<b>bold</b>", "url": "https://ok.example", "snippet": "<img src=x onerror=alert(3)>"}]},
        function_call("lookup_order", {"order_id": "<i>A-1</i>"}),
        {"type": "google_maps_result", "call_id": "m1", "result": [{"places": [{"name": "<svg onload=alert(4)>"}]}]},
        {"type": "model_output", "content": [{"type": "text", "text": '{"html": "<script>alert(5)</script>"}'}]},
        {"type": "code_execution_result", "call_id": "c1", "result": "</pre><script>alert(6)</script>"},
    ])
    client.force_login(alice)
    body = page(client, run)
    for raw in ("<script>alert(", "<div onclick", "<b>bold", "<img src=x", "<i>A-1", "<svg onload"):
        assert raw not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;svg onload=alert(4)&gt;" in body


# --- Errors -------------------------------------------------------------------------------------


def test_a_failed_run_shows_its_error_once_and_its_last_card_points_to_it(client, alice):
    message = "The Interactions API reports that interaction 2 failed: backend error (internal)."
    run = make_run(status=Run.Status.FAILED, error=message)
    make_interaction(run)
    last = make_interaction(run, status=Interaction.Status.FAILED,
                            errors=[{"code": "internal", "message": "backend error"}])
    client.force_login(alice)
    body = page(client, run)
    assert body.count('class="error-box"') == 1
    assert body.count("backend error") == 1
    assert re.search(r'<div id="run-error" class="error-box" role="alert">\s*<strong>Why the run failed</strong>\s*'
                     r'<p class="error-message">The Interactions API reports that interaction 2 failed: backend error '
                     r'\(internal\)\.</p>', body)
    card = body[body.index(f'<li id="interaction-{last.pk}"'):]
    assert 'ended the run</span> <a href="#run-error">Why it failed ↑</a>' in card
    assert "ended failed" not in body
    # The card polled alone says the same.
    assert '<a href="#run-error">' in htmx(client, run, f"interaction-{last.pk}").content.decode()


def test_an_interaction_that_did_not_end_the_run_shows_its_own_errors(client, alice):
    run = make_run(status=Run.Status.RUNNING)
    make_interaction(run, status=Interaction.Status.FAILED, errors=[{"code": "internal", "message": "backend error"}],
                     error="The API answered 200 with a body that is not JSON.")
    make_interaction(run, status=Interaction.Status.IN_PROGRESS, finished_at=None)
    client.force_login(alice)
    body = page(client, run)
    assert 'id="run-error"' not in body
    assert "<code>internal</code> backend error" in body
    assert "The API answered 200 with a body that is not JSON." in body


def test_it_shows_a_model_output_error_and_a_schema_warning(client, alice):
    run = make_run()
    interaction = make_interaction(run, schema_warning="steps.1.id: Field required")
    make_step(interaction, {"type": "model_output", "content": [],
                            "error": {"code": 13, "message": "Generation stopped early"}})
    client.force_login(alice)
    body = page(client, run)
    assert "step-model_output step-error" in body
    assert "<code>13</code> Generation stopped early" in body
    assert "Schema warning." in body and "<code>steps.1.id: Field required</code>" in body


def test_it_shows_a_dispatch_state_that_is_not_sent(client, alice):
    run = make_run(status=Run.Status.RUNNING)
    make_interaction(run, dispatch=Interaction.Dispatch.UNKNOWN, interaction_id=None, status="")
    client.force_login(alice)
    body = page(client, run)
    assert "Outcome unknown" in body


# --- Artifacts ----------------------------------------------------------------------------------


def test_it_lists_artifacts_with_view_and_download_links(client, alice):
    run = make_run()
    artifact = make_artifact(make_interaction(run), content='{"total_tokens": 10}')
    client.force_login(alice)
    body = page(client, run)
    assert f'<a href="/runs/{run.pk}/artifacts/{artifact.pk}/?view=1">view</a>' in body
    assert f'<a href="/runs/{run.pk}/artifacts/{artifact.pk}/" download>download</a>' in body
    assert "Usage" in body
    assert "20\xa0bytes" in body  # filesizeformat joins with a no-break space


def test_the_raw_request_and_response_are_linked_from_the_interaction_when_captured(client, alice):
    run = make_run()
    interaction = make_interaction(run)
    raw_request = make_artifact(interaction, kind=Artifact.Kind.RAW_REQUEST, content="{}")
    raw_response = make_artifact(interaction, kind=Artifact.Kind.RAW_RESPONSE, content="{}")
    client.force_login(alice)
    body = page(client, run)
    assert f'href="/runs/{run.pk}/artifacts/{raw_request.pk}/?view=1">Raw request</a>' in body
    assert f'href="/runs/{run.pk}/artifacts/{raw_response.pk}/?view=1">Raw response</a>' in body


def test_an_artifact_downloads_as_an_attachment(client, alice):
    run = make_run()
    artifact = make_artifact(make_interaction(run), content='{"total_tokens": 10}')
    client.force_login(alice)
    response = client.get(f"/runs/{run.pk}/artifacts/{artifact.pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}-interaction-0-usage.json"'
    assert response.content == b'{"total_tokens": 10}'


def test_an_artifact_can_be_viewed_in_the_browser_without_being_sniffed_as_html(client, alice):
    run = make_run()
    artifact = make_artifact(make_interaction(run), kind=Artifact.Kind.RAW_RESPONSE,
                             content="<html><script>alert(1)</script></html>", media_type="text/html")
    client.force_login(alice)
    response = client.get(f"/runs/{run.pk}/artifacts/{artifact.pk}/", {"view": "1"})
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith("inline;")
    assert response["X-Content-Type-Options"] == "nosniff"


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


# --- Live ---------------------------------------------------------------------------------------


def test_the_header_names_each_duration_and_defines_it_in_a_legend(client, alice):
    """Wall time, API time and waiting for people: three numbers, three names, one definition
    each, in the header, the timing chart and the cards alike."""
    start = timezone.now() - timedelta(minutes=4)
    run = make_run(status=Run.Status.COMPLETED, created_at=start, finished_at=start + timedelta(seconds=200),
                   duration_ms=200_000)
    first = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION,
                             sent_at=start + timedelta(seconds=1), finished_at=start + timedelta(seconds=4))
    make_approval(first, make_step(first, function_call()), status=Approval.Status.REJECTED,
                  created_at=start + timedelta(seconds=4), decided_at=start + timedelta(seconds=184),
                  decided_by=make_user("dora", "reviewers"), reason="No")
    make_interaction(run, sent_at=start + timedelta(seconds=185), finished_at=start + timedelta(seconds=186))
    client.force_login(alice)
    body = page(client, run)
    assert "<dt>Duration</dt>" not in body
    assert re.search(r'<abbr title="Wall time: from the run&#x27;s creation to its end[^"]*">Wall time</abbr></dt><dd>3m 20s</dd>', body)
    assert re.search(r'<abbr title="API time: the Interactions API at work[^"]*">API time</abbr></dt><dd>4.0 s</dd>', body)
    assert re.search(r'<abbr title="Waiting for people: [^"]*">Waiting for people</abbr></dt><dd>3m 00s</dd>', body)
    # The cards call an interaction's own time API time, as the header does.
    assert body.count('">API time</abbr></dt><dd>') == 1 + 2
    legend = body[body.index('<dl class="timing-legend"'):]
    legend = legend[:legend.index("</dl>")]
    for name in ("Wall time", "API time", "Waiting for people", "Handoff&#x27;s own"):
        assert f"<dt>{name}</dt>" in legend
    assert "<dd>16.0 s · what is left of the wall time" in legend  # 200 s - 4 s - 180 s
    # The wait is a chart of its own: the API's bars keep their scale.
    assert re.search(r'class="timing-bar timing-requires_action" x="0" width="100.000%"', body)
    assert re.search(r'class="timing-bar timing-completed" x="0" width="33.333%"', body)
    waits = body[body.index('class="timing-part timing-waits"'):]
    assert re.search(r'<a class="timing-name" href="#interaction-%d">#1</a>' % first.pk, waits)
    assert 'class="wait-bar" x="0" width="100.000%"' in waits and "3m 00s" in waits


def test_a_run_the_system_started_says_so(client, alice):
    system = make_run(created_by_system="system:cli")
    client.force_login(alice)
    body = page(client, system)
    assert re.search(r'<dt>Created by</dt><dd class="creator"><span title="Started by Handoff itself \(system:cli\)'
                     r'[^"]*">system \(command line\)</span></dd>', body)
    unknown = make_run()  # no user, and not the system's: its creator was deleted
    assert '<dt>Created by</dt><dd class="creator">—</dd>' in page(client, unknown)


@pytest.mark.parametrize("who,shown", [("alice", True), ("carol", True), ("bob", False), ("viewer", False)])
def test_the_evidence_bundle_is_linked_for_who_may_export_it(client, alice, bob, carol, completed_run, who, shown):
    user = {"alice": alice, "bob": bob, "carol": carol, "viewer": make_user("vera")}[who]
    client.force_login(user)
    body = page(client, completed_run)
    link = f'href="/runs/{completed_run.pk}/evidence.zip" download'
    assert (link in body) is shown
    # What the link promises, the view keeps: a download for who may, 403 for who may not.
    assert client.get(f"/runs/{completed_run.pk}/evidence.zip").status_code == (200 if shown else 403)


def test_the_header_polls_while_the_run_is_active(client, alice):
    run = make_run(status=Run.Status.RUNNING)
    make_interaction(run, status=Interaction.Status.COMPLETED)
    client.force_login(alice)
    body = page(client, run)
    assert f'<section id="run-header" class="card run-header" hx-get="/runs/{run.pk}/" hx-trigger="every 2s"' in body
    assert 'id="timeline-tail"' in body  # waits for new steps after the last one shown
    assert ">Live</span>" in body


def test_nothing_polls_once_the_run_is_finished(client, alice, completed_run):
    client.force_login(alice)
    body = page(client, completed_run)
    assert 'id="run-header"' in body
    assert "hx-trigger=\"every" not in body
    assert "timeline-tail" not in body


def test_a_background_interaction_shows_how_long_it_has_run_its_polls_and_the_next_one(client, alice):
    run = make_run(status=Run.Status.RUNNING, agent="deep-research-pro-preview-12-2025", background=True)
    now = timezone.now()
    interaction = make_interaction(run, status=Interaction.Status.IN_PROGRESS, sent_at=now - timedelta(seconds=75),
                                   finished_at=None, poll_count=4, next_poll_at=now + timedelta(seconds=16))
    client.force_login(alice)
    body = page(client, run)
    card = body[body.index(f'<li id="interaction-{interaction.pk}"'):]
    assert card.startswith(f'<li id="interaction-{interaction.pk}" class="interaction" hx-get="/runs/{run.pk}/" hx-trigger="every 2s"')
    assert re.search(r"Running</span> for <strong>1m 1[56]s</strong>", card)
    assert "<strong>4</strong> polls so far" in card
    assert re.search(r"next poll <strong>in 1[56] s</strong>", card)
    assert "Nothing yet." in card
    assert "so far</span>" in body  # its timing bar grows until it ends

    interaction.status, interaction.finished_at = Interaction.Status.COMPLETED, now
    interaction.save()
    card = htmx(client, run, f"interaction-{interaction.pk}").content.decode()
    assert card.lstrip().startswith(f'<li id="interaction-{interaction.pk}" class="interaction">')
    assert "polls so far" not in card


def test_an_interaction_card_partial_is_only_that_card(client, alice):
    run = make_run(status=Run.Status.RUNNING)
    interaction = make_interaction(run, status=Interaction.Status.IN_PROGRESS, finished_at=None)
    other = make_interaction(make_run())
    client.force_login(alice)
    response = htmx(client, run, f"interaction-{interaction.pk}")
    body = response.content.decode()
    assert body.lstrip().startswith(f'<li id="interaction-{interaction.pk}"')
    assert "<html" not in body and "run-header" not in body
    assert htmx(client, run, f"interaction-{other.pk}").status_code == 404


def test_the_header_partial_is_only_the_header(client, alice):
    run = make_run(status=Run.Status.RUNNING)
    make_interaction(run, status=Interaction.Status.IN_PROGRESS, finished_at=None)
    client.force_login(alice)
    response = htmx(client, run, "run-header")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="run-header"')
    assert "interaction-card" not in body
    assert "HX-Request" in response["Vary"] and "HX-Target" in response["Vary"]


def test_a_pending_approval_polls_until_it_is_decided(client, alice, bob):
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    interaction = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION)
    approval = make_approval(interaction, make_step(interaction, function_call()))
    client.force_login(alice)
    body = page(client, run)
    # The box is approvals' own, and polls approvals' URL (tests/approvals/test_approval_box.py).
    assert (f'<aside id="approval-{approval.pk}" aria-label="Approval #{approval.pk}" class="approval-box approval-pending" '
            f'hx-get="/approvals/{approval.pk}/box/" hx-trigger="every 2s"') in body

    Approval.objects.filter(pk=approval.pk).update(status=Approval.Status.REJECTED, decided_by=bob,
                                                   decided_at=timezone.now(), reason="No")
    box = client.get(f"/approvals/{approval.pk}/box/", HTTP_HX_REQUEST="true").content.decode()
    assert box.lstrip().startswith(f'<aside id="approval-{approval.pk}" aria-label="Approval #{approval.pk}" class="approval-box approval-rejected">')
    assert "<strong>bob</strong>" in box


def test_an_htmx_request_without_a_known_target_gets_the_detail_without_the_layout(client, alice, completed_run):
    client.force_login(alice)
    body = client.get(url(completed_run), HTTP_HX_REQUEST="true").content.decode()
    assert body.lstrip().startswith('<div id="run-detail">')
    assert "<html" not in body
    assert "pill-completed" in body


# --- Big runs -----------------------------------------------------------------------------------


@pytest.fixture
def long_run(db):
    """A finished run of 250 steps: 130 in its first interaction, 120 in its second."""
    run = make_run()
    first = make_interaction(run, sequence=0)
    make_steps(first, [text_output(f"first-{i}") for i in range(130)])
    second = make_interaction(run, sequence=1, request={"model": run.model, "input": "SECOND INPUT"})
    make_steps(second, [text_output(f"second-{i}") for i in range(120)])
    return run


def steps_shown(body: str) -> list[str]:
    return re.findall(r'<div class="markdown"><p>((?:first|second)-\d+)</p>', body)


def test_a_long_run_shows_its_first_steps_and_a_way_to_load_more(client, alice, long_run):
    client.force_login(alice)
    body = page(client, long_run)
    assert steps_shown(body) == [f"first-{i}" for i in range(100)]
    assert '<li id="timeline-more" class="timeline-more">' in body
    assert (f'<a class="button" href="?from=100" hx-get="/runs/{long_run.pk}/?from=100&amp;i=1" '
            'hx-trigger="revealed, click" hx-target="#timeline-more" hx-swap="outerHTML">Load more steps</a>') in body
    assert "SECOND INPUT" not in body  # the second interaction's card comes with its steps


def test_the_next_chunk_continues_where_the_page_stopped(client, alice, long_run):
    client.force_login(alice)
    response = htmx(client, long_run, "timeline-more", **{"from": 100, "i": 1})
    body = response.content.decode()
    assert "<html" not in body and "run-header" not in body
    assert steps_shown(body) == [f"first-{i}" for i in range(100, 130)] + [f"second-{i}" for i in range(70)]
    assert body.count('class="interaction"') == 1 and "SECOND INPUT" in body
    assert f'hx-get="/runs/{long_run.pk}/?from=200&amp;i=2"' in body

    last = htmx(client, long_run, "timeline-more", **{"from": 200, "i": 2}).content.decode()
    assert steps_shown(last) == [f"second-{i}" for i in range(70, 120)]
    assert "timeline-more" not in last and "timeline-tail" not in last
    assert 'class="interaction"' not in last


def test_without_javascript_load_more_opens_the_page_at_that_step(client, alice, long_run):
    client.force_login(alice)
    body = page(client, long_run, **{"from": 100})
    assert steps_shown(body)[0] == "first-100"
    assert "interaction-continued" in body and "its steps 1–100 are earlier" in body
    assert '<a class="button button-small" href="?from=0">← Earlier steps</a>' in body
    assert 'id="run-header"' in body  # the whole page


def test_a_start_past_the_end_shows_the_last_chunk(client, alice, long_run):
    client.force_login(alice)
    body = page(client, long_run, **{"from": 9999})
    assert steps_shown(body)[-1] == "second-119"
    assert steps_shown(body)[0] == "second-70"


def test_the_tail_appends_new_steps_of_an_active_run_without_repeating_cards(client, alice):
    run = make_run(status=Run.Status.RUNNING)
    first = make_interaction(run, sequence=0)
    make_steps(first, [text_output("first-0"), text_output("first-1")])
    in_flight = make_interaction(run, sequence=1, status=Interaction.Status.IN_PROGRESS, finished_at=None)
    client.force_login(alice)
    body = page(client, run)
    assert f'id="interaction-{in_flight.pk}"' in body
    assert f'<li id="timeline-tail" class="timeline-tail" hx-get="/runs/{run.pk}/?from=2&amp;i=2" hx-trigger="every 2s"' in body

    unchanged = htmx(client, run, "timeline-tail", **{"from": 2, "i": 2}).content.decode()
    assert unchanged.strip().startswith('<li id="timeline-tail"') and "interaction-" not in unchanged

    make_steps(in_flight, [text_output("second-0")])
    Run.objects.filter(pk=run.pk).update(status=Run.Status.COMPLETED)
    tail = htmx(client, run, "timeline-tail", **{"from": 2, "i": 2}).content.decode()
    assert steps_shown(tail) == ["second-0"]
    assert f'id="interaction-{in_flight.pk}"' not in tail
    assert "timeline-tail" not in tail  # the run ended: polling stops


def test_similar_steps_in_a_row_fold_into_one_group(client, alice):
    run = make_run()
    interaction = make_interaction(run)
    searches = [{"type": "google_search_call", "id": f"s{i}", "arguments": {"queries": [f"query {i}"]}} for i in range(40)]
    pairs = []
    for i in range(3):
        pairs += [function_call("lookup_order", {"order_id": f"A-{i}"}, call_id=f"c{i}"),
                  {"type": "function_result", "call_id": f"c{i}", "result": {"ok": True}}]
    make_steps(interaction, [text_output("start"), *searches, text_output("middle"), *pairs,
                            *[text_output(f"answer {i}") for i in range(8)]])
    client.force_login(alice)
    body = page(client, run)
    assert '<summary><span class="group-label">40 × google_search_call</span> <span class="muted small">steps 2–41 · folded</span></summary>' in body
    assert '<span class="group-label">3 × function_call + 3 × function_result · lookup_order</span>' in body
    assert body.count('class="step-group"') == 2  # model outputs never fold
    assert "<li>query 39</li>" in body  # folded, not dropped


def test_a_call_waiting_for_a_reviewer_is_never_folded(client, alice):
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    interaction = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION)
    make_steps(interaction, [function_call("issue_refund", call_id=f"c{i}") for i in range(8)])
    for step in interaction.steps.all():
        make_approval(interaction, step)
    client.force_login(alice)
    body = page(client, run)
    assert "step-group" not in body
    assert body.count(">Review</a>") == 8


def test_the_query_count_does_not_grow_with_the_steps(client, alice):
    def build(n: int) -> Run:
        run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
        for sequence in range(2):
            interaction = make_interaction(run, sequence=sequence, request={"model": run.model, "input": "hi"})
            make_artifact(interaction)
            make_steps(interaction, [
                step for i in range(n)
                for step in (text_output("hello"), function_call(call_id=f"c{sequence}-{i}"))
            ])
            for step in interaction.steps.filter(type="function_call"):
                make_approval(interaction, step, status=Approval.Status.APPROVED, decided_by=alice)
        return run

    def count_queries(run: Run, **params) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url(run), params).status_code == 200
        return len(queries)

    client.force_login(alice)
    small, big = build(5), build(500)  # 20 and 2,000 steps
    assert 8 < count_queries(small) == count_queries(big)
    assert count_queries(big, **{"from": 1500}) == count_queries(big)
    with CaptureQueriesContext(connection) as queries:
        htmx(client, big, "timeline-more", **{"from": 1000, "i": 1})
    assert len(queries) <= count_queries(big)


def test_the_query_count_does_not_grow_with_the_interactions(client, alice):
    def build(n: int) -> Run:
        run = make_run()
        for sequence in range(n):
            interaction = make_interaction(run, sequence=sequence, usage={"total_input_tokens": 10, "total_tokens": 10})
            make_artifact(interaction)
            make_steps(interaction, [text_output("hello"), function_call(call_id=f"c{sequence}")])
        return run

    def count_queries(run: Run) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url(run)).status_code == 200
        return len(queries)

    client.force_login(alice)
    assert 8 < count_queries(build(3)) == count_queries(build(70))


def test_a_run_of_many_short_interactions_shows_a_bounded_number_of_cards_per_chunk(client, alice):
    run = make_run()
    for sequence in range(60):
        make_steps(make_interaction(run, sequence=sequence), [text_output(f"answer {sequence}")])
    client.force_login(alice)
    body = page(client, run)
    assert body.count('<li id="interaction-') == 20
    assert steps_shown_any(body) == [f"answer {i}" for i in range(20)]
    assert f'hx-get="/runs/{run.pk}/?from=20&amp;i=20"' in body
    more = htmx(client, run, "timeline-more", **{"from": 20, "i": 20}).content.decode()
    assert more.count('<li id="interaction-') == 20
    assert steps_shown_any(more) == [f"answer {i}" for i in range(20, 40)]
    assert body.count('<li class="timing-row') == 40  # the slowest 40 of 60
    assert "the 40 slowest of 60 interactions" in body


def steps_shown_any(body: str) -> list[str]:
    return re.findall(r'<div class="markdown"><p>(answer \d+)</p>', body)


# --- The showcase through the page ------------------------------------------------------------------


def test_the_emulator_showcase_renders_every_step_type(client, alice):
    run = make_run(model="gemini-3-flash-preview")
    make_steps(make_interaction(run), showcase.all_steps())
    client.force_login(alice)
    body = page(client, run)
    for kind in sorted(Step.KNOWN_TYPES):
        assert f'class="step step-{kind}' in body, kind
    assert "unknown step type</span>" in body
    image = Step.objects.get(interaction__run=run, data__content__0__mime_type="image/png", data__content__0__data__startswith="iVBOR")
    assert f'<img src="/runs/{run.pk}/steps/{image.pk}/images/0/"' in body
    assert "the data is not base64" in body  # the quickstart's placeholder image


# --- Access -------------------------------------------------------------------------------------


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
