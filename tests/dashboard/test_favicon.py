from django.contrib.staticfiles import finders


def test_every_page_links_the_svg_favicon(client, bob):
    client.force_login(bob)
    body = client.get("/").content.decode()
    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in body


def test_the_favicon_is_a_served_static_file(client):
    assert finders.find("img/favicon.svg") is not None
    response = client.get("/static/img/favicon.svg")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"<svg")


def test_favicon_ico_redirects_to_the_svg_without_signing_in(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/img/favicon.svg"
