"""The header a new user sees at 1440 px: every role they hold, and the site's icon."""

from django.contrib.auth.models import Group
from playwright.sync_api import expect

from tests.browser.conftest import sign_in


def test_the_header_shows_every_role_and_the_favicon_loads(transactional_db, live_server, page, screenshot, bob):
    for name in ("reviewers", "admins"):
        bob.groups.add(Group.objects.get_or_create(name=name)[0])
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, live_server, bob)

    expect(page.locator(".nav-user .role")).to_have_text(["engineer", "reviewer", "admin"])
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert page.request.get(f"{live_server.url}{icon}").ok
    ico = page.request.get(f"{live_server.url}/favicon.ico")
    assert ico.ok and ico.url.endswith(icon) and ico.body().startswith(b"<svg")
    screenshot("header-01-roles")
