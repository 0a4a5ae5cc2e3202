"""Tracking an interaction by id: only ids of the API's format reach the API (the SDK puts the id
into the request path unquoted), from the page and from ``execution.track_interaction``."""

import pytest
from django.urls import reverse
from google import genai
from google.genai import types

from runs import execution
from runs.models import Run

BAD_IDS = ["../../probe", "a/b", "%2e%2e", "v1_abc.def", "v1_abc?x=1", "v1_abc#x", " ", "", "v1_" + "a" * 297]


@pytest.fixture
def elsewhere(api) -> genai.Client:
    """Another program's SDK client, talking to the same API."""
    return genai.Client(api_key="elsewhere", http_options=types.HttpOptions(
        base_url=api.url, retry_options=types.HttpRetryOptions(attempts=1)))


@pytest.mark.parametrize("interaction_id", BAD_IDS)
def test_a_malformed_id_is_refused_with_a_message_and_nothing_is_sent(api, client, bob, interaction_id):
    client.force_login(bob)

    response = client.post(reverse("runs:track"), {"interaction_id": interaction_id})

    assert response.status_code == 400
    errors = response.context["track_form"].errors["interaction_id"]
    assert errors and ("letters, digits, _ and -" in errors[0] or "at most 200" in errors[0])
    assert "field-error" in response.content.decode()
    assert api.requests == []
    assert not Run.objects.exists()


@pytest.mark.parametrize("interaction_id", BAD_IDS)
def test_track_interaction_itself_refuses_a_malformed_id_before_any_request(api, bob, interaction_id):
    with pytest.raises(execution.CannotDoThat, match="letters, digits, _ and -"):
        execution.track_interaction(interaction_id, by=bob)

    assert api.requests == []
    assert not Run.objects.exists()


def test_a_path_traversal_id_never_reaches_another_path_of_the_api_host(api, client, bob):
    client.force_login(bob)

    client.post(reverse("runs:track"), {"interaction_id": "../../probe"})

    assert not any(entry["path"].endswith("/probe") for entry in api.requests)


def test_a_real_looking_id_passes_the_form_and_reaches_the_api(api, elsewhere, client, bob):
    google_style = "v1_ChdPU0F4YWFtNkFwS2kxZThQZ05lbXdROBIXT1NBeGFhbTZBcEtpMWU4UGdOZW13UTg"
    started = elsewhere.interactions.create(model="gemini-3-flash-preview", input="From a notebook")
    client.force_login(bob)

    unknown = client.post(reverse("runs:track"), {"interaction_id": google_style})
    tracked = client.post(reverse("runs:track"), {"interaction_id": f"  {started.id}  "})

    # Google's own id format is accepted (the emulator does not know this one: a 404 from it).
    assert unknown.status_code == 400 and b"404" in unknown.content
    assert api.requests_for(method="GET", path_suffix=f"/interactions/{google_style}")
    assert tracked.status_code == 302
    assert Run.objects.get().interactions.get().interaction_id == started.id
