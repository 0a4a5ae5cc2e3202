"""Deployment hardening: ``check --deploy`` in the README's production environment, the
Content-Security-Policy on every page (and no inline script or style for it to block), and 500s
logged with their traceback."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_WARNINGS = ("security.W004", "security.W008", "security.W012", "security.W016")


def production_environment() -> dict[str, str]:
    """The variables of the README's production environment (the block between its
    ``production-environment`` markers); the secret key's placeholder gets a fresh key."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- production-environment -->")[1].split("<!-- /production-environment -->")[0]
    variables = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(\S+)", block, flags=re.M))
    assert variables.get("HANDOFF_HTTPS") == "1", variables
    variables["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    return variables


def manage(tmp_path: Path, variables: dict[str, str], *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """``manage.py ARGS`` (or ``python -c CODE``) in a fresh process whose environment holds only
    ``variables`` (and what a process needs to start), so nothing of the test session leaks in."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "HANDOFF_DATA_DIR": str(tmp_path / "data"),
           "DJANGO_SETTINGS_MODULE": "dashboard.settings", **variables}
    command = [sys.executable, "-c", code] if code else [sys.executable, "manage.py", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_prints_no_warning_in_the_documented_production_environment(tmp_path):
    checked = manage(tmp_path, production_environment(), "check", "--deploy")

    assert checked.returncode == 0, checked.stderr
    output = checked.stdout + checked.stderr
    assert "System check identified no issues" in output, output
    assert "WARNINGS" not in output


def test_check_deploy_warns_without_the_production_switches(tmp_path):
    checked = manage(tmp_path, {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}, "check", "--deploy")

    output = checked.stdout + checked.stderr
    for warning in DEPLOY_WARNINGS:
        assert warning in output


def test_in_the_production_environment_http_is_redirected_and_cookies_are_secure(tmp_path):
    code = """
import django
django.setup()
from django.test import Client
client = Client()
plain = client.get("/accounts/login/", HTTP_HOST="handoff.example.com")
print("plain", plain.status_code, plain["Location"])
proxied = client.get("/accounts/login/", HTTP_HOST="handoff.example.com", HTTP_X_FORWARDED_PROTO="https")
print("proxied", proxied.status_code, proxied["Strict-Transport-Security"])
print("csrftoken secure", proxied.cookies["csrftoken"]["secure"])
"""
    served = manage(tmp_path, production_environment(), code=code)

    assert served.returncode == 0, served.stderr
    assert served.stdout.splitlines() == [
        "plain 301 https://handoff.example.com/accounts/login/",
        "proxied 200 max-age=31536000; includeSubDomains; preload",
        "csrftoken secure True",
    ]


def test_a_server_error_is_logged_with_its_traceback(tmp_path):
    # A view that raises, served through the project's own settings and middleware with DEBUG
    # off, as in production.
    code = """
import django
django.setup()
from django.test import Client, override_settings
from django.urls import path

def explode(request):
    raise RuntimeError("the view exploded")

urlpatterns = [path("explode/", explode)]
with override_settings(ROOT_URLCONF="__main__", ALLOWED_HOSTS=["testserver"]):
    response = Client(raise_request_exception=False).get("/explode/")
print("status", response.status_code)
"""
    served = manage(tmp_path, {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}, code=code)

    assert "status 500" in served.stdout, served.stderr
    assert "Internal Server Error: /explode/" in served.stderr
    assert "Traceback (most recent call last):" in served.stderr
    assert ", in explode\n" in served.stderr  # the frame that raised
    assert "RuntimeError: the view exploded" in served.stderr


def test_every_page_carries_a_content_security_policy_without_unsafe_inline(client, alice):
    client.force_login(alice)

    for url in (reverse("home"), reverse("runs:list"), reverse("approvals:queue"), reverse("login")):
        policy = client.get(url)["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in policy


def test_no_template_or_script_carries_what_the_policy_blocks():
    # The policy allows no inline script, inline style or event-handler attribute, and no eval:
    # any of them in a template or a script would be blocked in every browser.
    in_templates = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|hx-on|javascript:", re.I)
    in_scripts = re.compile(r"\beval\(|new Function\(|setAttribute\(\s*[\"']style")
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)!r}"
        for pattern, folder, suffix in ((in_templates, "templates", ".html"), (in_scripts, "static", ".js"))
        for path in sorted((ROOT / folder).rglob(f"*{suffix}"))
        for match in pattern.finditer(path.read_text())
    ]
    assert found == []
