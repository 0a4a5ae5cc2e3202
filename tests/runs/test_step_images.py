"""The images of a run's steps and of what its interactions sent, served from Handoff's own URLs
(``runs:step_image``, ``runs:sent_image``): decoded from the stored data with their own type,
never sniffed, never SVG, behind the run page's rights."""

import base64

import pytest

from runs.emulator.showcase import _png
from runs.models import Run
from tests.factories import make_interaction, make_run, make_step

PNG = _png(64, 40)
PNG_B64 = base64.b64encode(PNG).decode()
GIF_1PX = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def image(data: str = PNG_B64, mime_type: str = "image/png") -> dict:
    return {"type": "image", "mime_type": mime_type, "data": data}


@pytest.fixture
def image_run(db):
    """A run whose one step holds a text, a PNG and a GIF (images 0 and 1), and whose request
    sent a text and a PNG as a function result."""
    run = make_run()
    interaction = make_interaction(run, request={"model": run.model, "input": [
        {"type": "function_result", "call_id": "c1", "name": "get_image",
         "result": [{"type": "text", "text": "instrument.png"}, image()]},
    ]})
    step = make_step(interaction, {"type": "model_output", "content": [
        {"type": "text", "text": "Here it is."}, image(), image(GIF_1PX, "image/gif"),
    ]})
    return run, interaction, step


def test_it_serves_the_decoded_bytes_with_their_own_type(client, alice, image_run):
    run, _, step = image_run
    client.force_login(alice)
    response = client.get(f"/runs/{run.pk}/steps/{step.pk}/images/0/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content == PNG
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert response["Content-Disposition"] == f'inline; filename="run-{run.pk}-step-{step.pk}-image-0.png"'
    gif = client.get(f"/runs/{run.pk}/steps/{step.pk}/images/1/")
    assert gif["Content-Type"] == "image/gif" and gif.content == base64.b64decode(GIF_1PX)


def test_it_serves_an_image_the_request_sent(client, alice, image_run):
    run, interaction, _ = image_run
    client.force_login(alice)
    response = client.get(f"/runs/{run.pk}/interactions/{interaction.pk}/sent-images/0/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png" and response.content == PNG


def test_the_run_page_links_both_images_to_their_urls(client, alice, image_run):
    run, interaction, step = image_run
    client.force_login(alice)
    body = client.get(f"/runs/{run.pk}/").content.decode()
    assert f'<img src="/runs/{run.pk}/interactions/{interaction.pk}/sent-images/0/" alt="Image from the tool (image/png)"' in body
    assert f'<img src="/runs/{run.pk}/steps/{step.pk}/images/0/" alt="Image from the model (image/png)"' in body
    # Each URL the page names answers with an image.
    for src in (f"/runs/{run.pk}/interactions/{interaction.pk}/sent-images/0/", f"/runs/{run.pk}/steps/{step.pk}/images/1/"):
        assert client.get(src)["Content-Type"].startswith("image/")


@pytest.mark.parametrize("block", [
    image(base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>").decode(), "image/svg+xml"),
    image(base64.b64encode(b"<html><script>alert(1)</script></html>").decode(), "text/html"),
    image(GIF_1PX, "image/png"),  # the declared type lies
    image("BASE64_ENCODED_IMAGE"),  # the quickstart's placeholder
    {"type": "image", "mime_type": "image/png", "uri": "https://storage.example.com/cat.png"},
])
def test_an_image_not_to_show_is_not_found(client, alice, block):
    run = make_run()
    step = make_step(make_interaction(run), {"type": "model_output", "content": [block]})
    client.force_login(alice)
    assert client.get(f"/runs/{run.pk}/steps/{step.pk}/images/0/").status_code == 404


def test_an_image_above_the_byte_limit_is_neither_served_nor_linked(client, alice, settings, monkeypatch):
    from runs import images

    monkeypatch.setattr(images, "MAX_BYTES", len(PNG) - 1)
    run = make_run()
    step = make_step(make_interaction(run), {"type": "model_output", "content": [image()]})
    client.force_login(alice)
    assert client.get(f"/runs/{run.pk}/steps/{step.pk}/images/0/").status_code == 404
    body = client.get(f"/runs/{run.pk}/").content.decode()
    assert "<img" not in body and "not shown: too large to show inline" in body


def test_there_is_no_image_past_the_last(client, alice, image_run):
    run, interaction, step = image_run
    client.force_login(alice)
    assert client.get(f"/runs/{run.pk}/steps/{step.pk}/images/2/").status_code == 404
    assert client.get(f"/runs/{run.pk}/interactions/{interaction.pk}/sent-images/1/").status_code == 404


def test_an_image_of_another_run_is_not_found(client, alice, image_run):
    run, interaction, step = image_run
    other = make_run()
    client.force_login(alice)
    assert client.get(f"/runs/{other.pk}/steps/{step.pk}/images/0/").status_code == 404
    assert client.get(f"/runs/{other.pk}/interactions/{interaction.pk}/sent-images/0/").status_code == 404
    assert client.get(f"/runs/{Run.objects.order_by('-pk')[0].pk + 1}/steps/{step.pk}/images/0/").status_code == 404


def test_images_need_a_signed_in_user(client, image_run):
    run, interaction, step = image_run
    for url in (f"/runs/{run.pk}/steps/{step.pk}/images/0/", f"/runs/{run.pk}/interactions/{interaction.pk}/sent-images/0/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_images_refuse_post(client, alice, image_run):
    run, interaction, step = image_run
    client.force_login(alice)
    assert client.post(f"/runs/{run.pk}/steps/{step.pk}/images/0/").status_code == 405
    assert client.post(f"/runs/{run.pk}/interactions/{interaction.pk}/sent-images/0/").status_code == 405
