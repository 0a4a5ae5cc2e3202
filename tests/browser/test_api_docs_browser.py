"""The API's Swagger UI renders under the site's Content Security Policy, from local files only."""

from playwright.sync_api import expect


def test_the_swagger_ui_renders_the_schema_from_local_files(live_server, page, screenshot):
    requests, problems = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(f"{live_server.url}/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Handoff API")
    expect(page.get_by_text("/api/v1/approvals/{approval_id}/decision")).to_be_visible()
    screenshot("api-docs-1280")
    assert all(url.startswith(live_server.url) for url in requests), [u for u in requests if not u.startswith(live_server.url)]
    assert not problems
