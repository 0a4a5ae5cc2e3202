"""The production server: health checks, readiness, Prometheus metrics, JSON log lines, and
gunicorn serving hashed, compressed static files with DEBUG off."""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import brotli
import pytest
from django.db import connection
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from audit import log
from approvals.models import Approval
from runs import metrics
from runs import execution
from runs.models import Run
from tests.conftest import wait_for, wait_for_port
from tests.runs.test_execution_flow import settled, start_order_support

ROOT = Path(__file__).resolve().parents[2]
CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"  # port 1: nothing listens there


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(client, **headers) -> dict[str, dict]:
    """``/metrics`` parsed: metric family name to {sample name + sorted labels: value}."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    families = {}
    for family in text_string_to_metric_families(response.content.decode()):
        families[family.name] = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value for sample in family.samples
        }
    return families


def sample(families: dict, family: str, name: str, **labels) -> float:
    return families[family].get((name, tuple(sorted(labels.items()))), 0.0)


# --- /healthz ------------------------------------------------------------------------------


def test_healthz_answers_200_without_sign_in_or_database(client):
    # No db fixture: pytest-django refuses any database access in this test.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_refuses_a_post(client):
    assert client.post("/healthz").status_code == 405


# --- /readyz -------------------------------------------------------------------------------


def test_readyz_answers_200_naming_each_check(client, db):
    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_answers_503_when_the_broker_is_unreachable(client, db):
    with override_settings(CELERY_BROKER_URL=CLOSED_PORT_BROKER, CELERY_BROKER_TRANSPORT_OPTIONS={}):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "broker": "unreachable"}}
    assert "127.0.0.1" not in response.content.decode()  # what failed is logged, not shown


def test_readyz_answers_503_when_a_migration_is_unapplied(client, db):
    from django.db.migrations.recorder import MigrationRecorder

    # Forget that the newest runs migration was applied, in the test's own transaction (rolled
    # back after it): to the migration executor, that migration is unapplied.
    recorder = MigrationRecorder(connection)
    newest = recorder.migration_qs.filter(app="runs").order_by("-name").first()
    newest.delete()

    response = client.get("/readyz")

    assert response.status_code == 503, response.content
    assert response.json() == {"status": "unavailable",
                               "checks": {"database": "1 unapplied migration(s)", "broker": "ok"}}


# --- /metrics ------------------------------------------------------------------------------


def test_metrics_show_api_calls_decisions_recordings_pending_approvals_and_seal_lag(client, worker, alice):
    before = scrape(client)
    run = start_order_support()
    run = settled(run, Run.Status.WAITING_FOR_APPROVAL)
    refund = Approval.objects.get(run=run, function_name="issue_refund")

    waiting = scrape(client)
    assert sample(waiting, "handoff_approvals_pending", "handoff_approvals_pending") == 1
    assert sample(waiting, "handoff_approvals_oldest_pending_age_seconds",
                  "handoff_approvals_oldest_pending_age_seconds") >= 0
    created = sample(waiting, "handoff_api_requests", "handoff_api_requests_total", method="create", status="200")
    assert created >= sample(before, "handoff_api_requests", "handoff_api_requests_total",
                             method="create", status="200") + 1

    client.force_login(alice)
    response = client.post(f"/approvals/{refund.pk}/reject/", {"shown_hash": refund.arguments_hash,
                                                               "reason": "Ask for a photo first."})
    assert response.status_code == 302
    settled(run)

    after = scrape(client)
    decisions = sample(after, "handoff_approval_decision_seconds", "handoff_approval_decision_seconds_count",
                       outcome="rejected")
    assert decisions == sample(before, "handoff_approval_decision_seconds",
                               "handoff_approval_decision_seconds_count", outcome="rejected") + 1
    assert sample(after, "handoff_approvals_pending", "handoff_approvals_pending") == 0
    assert sample(after, "handoff_approvals_oldest_pending_age_seconds",
                  "handoff_approvals_oldest_pending_age_seconds") == 0
    # The worker (threads, in this process) recorded the call's interaction and its follow-up.
    assert sample(after, "handoff_recording_seconds", "handoff_recording_seconds_count") >= sample(
        before, "handoff_recording_seconds", "handoff_recording_seconds_count") + 2
    for name in ("handoff_audit_unsealed_events", "handoff_audit_oldest_unsealed_age_seconds"):
        assert name in after


def test_the_seal_lag_counts_events_not_yet_sealed(client, db):
    from django.db import transaction

    # The test's transaction never commits, so the seal that follows a commit never runs.
    with transaction.atomic():
        log.record(actor="system:test", verb="test.unsealed", obj=None, object_type="test", object_id="1")

    families = scrape(client)
    unsealed, oldest = log.seal_lag()
    assert unsealed >= 1
    assert sample(families, "handoff_audit_unsealed_events", "handoff_audit_unsealed_events") == unsealed
    assert sample(families, "handoff_audit_oldest_unsealed_age_seconds",
                  "handoff_audit_oldest_unsealed_age_seconds") >= 0


def test_an_api_error_is_counted_by_its_status(client, worker):
    before = scrape(client)
    execution.create_run(model="gemini-3-flash-preview", input="Busy [fault:429]")
    wait_for(lambda: sample(scrape(client), "handoff_api_requests", "handoff_api_requests_total",
                            method="create", status="429")
             > sample(before, "handoff_api_requests", "handoff_api_requests_total", method="create", status="429"))
    # The task retries the 429 later, with backoff; the run is left to it.


def test_a_recording_is_timed(client, db):
    before = sample(scrape(client), "handoff_recording_seconds", "handoff_recording_seconds_count")

    with metrics.recording():
        time.sleep(0.001)

    families = scrape(client)
    assert sample(families, "handoff_recording_seconds", "handoff_recording_seconds_count") == before + 1
    assert sample(families, "handoff_recording_seconds", "handoff_recording_seconds_sum") > 0


def test_an_approval_decided_and_rolled_back_is_not_counted(client, db, alice):
    from django.db import transaction

    from tests.factories import make_pending_approval

    approval = make_pending_approval()
    before = sample(scrape(client), "handoff_approval_decision_seconds",
                    "handoff_approval_decision_seconds_count", outcome="approved")
    with pytest.raises(RuntimeError), transaction.atomic():
        approval.approve(by=alice, shown_hash=approval.arguments_hash)
        raise RuntimeError("rolled back")

    assert sample(scrape(client), "handoff_approval_decision_seconds",
                  "handoff_approval_decision_seconds_count", outcome="approved") == before


def test_metrics_need_the_bearer_token_when_one_is_set(client, db, settings):
    settings.HANDOFF_METRICS_TOKEN = "scrape-token"

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert scrape(client, HTTP_AUTHORIZATION="Bearer scrape-token")["handoff_approvals_pending"]


# --- JSON log lines ------------------------------------------------------------------------


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` parsed as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_log_lines_carry_the_request_id(tmp_path):
    # A view that raises, served through the project's settings and middleware with DEBUG off:
    # Django logs the 500 with its traceback while the request is served.
    code = """
import django
django.setup()
from django.test import Client, override_settings
from django.urls import path

def explode(request):
    raise RuntimeError("the view exploded")

urlpatterns = [path("explode/", explode)]
with override_settings(ROOT_URLCONF="__main__", ALLOWED_HOSTS=["testserver"]):
    response = Client(raise_request_exception=False).get("/explode/", HTTP_X_REQUEST_ID="req-42")
print("status", response.status_code, response["X-Request-ID"])
"""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "HANDOFF_DATA_DIR": str(tmp_path / "data"),
           "DJANGO_SETTINGS_MODULE": "dashboard.settings", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
           "HANDOFF_LOG_FORMAT": "json"}
    served = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)

    assert served.stdout.strip() == "status 500 req-42", served.stderr
    [line] = [line for line in json_lines(served.stderr) if line.get("logger") == "django.request"]
    assert line["level"] == "ERROR"
    assert line["message"] == "Internal Server Error: /explode/"
    assert line["request_id"] == "req-42"
    assert "RuntimeError: the view exploded" in line["exc_info"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", line["time"])


def test_a_celery_worker_writes_json_lines(tmp_path, db):
    env = {**os.environ, "HANDOFF_LOG_FORMAT": "json", "HANDOFF_DATA_DIR": str(tmp_path / "data"),
           "HANDOFF_TASK_QUEUE": f"handoff-test-json-{secrets.token_hex(4)}"}
    worker = subprocess.Popen(
        [str(ROOT / ".venv/bin/celery"), "-A", "dashboard", "worker", "--pool=solo", "--loglevel=INFO",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = worker.stdout.readline()
            if not line:
                break
            if line.lstrip().startswith("{"):
                lines.append(json.loads(line))
                if "ready." in lines[-1]["message"]:
                    break
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    ready = [line for line in lines if "ready." in line["message"]]
    assert ready, lines
    assert ready[0]["level"] == "INFO" and ready[0]["logger"].startswith("celery")


# --- gunicorn ------------------------------------------------------------------------------


@pytest.fixture
def gunicorn(db, tmp_path):
    """``gunicorn -c dashboard/gunicorn.conf.py dashboard.wsgi`` with DEBUG off and JSON logs,
    on the test database, after ``collectstatic`` into a temporary ``HANDOFF_STATIC_ROOT``.
    Yields the base URL and the path of the server's log (both streams)."""
    database = connection.settings_dict["NAME"]
    port = free_port()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "HANDOFF_DATA_DIR": str(tmp_path / "data"),
        "HANDOFF_STATIC_ROOT": str(tmp_path / "static"), "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        "HANDOFF_WEB_BIND": f"127.0.0.1:{port}", "HANDOFF_WEB_WORKERS": "1", "HANDOFF_LOG_FORMAT": "json",
    }
    collected = subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()
    log_path = tmp_path / "gunicorn.log"
    log = open(log_path, "w")
    server = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-c", "dashboard/gunicorn.conf.py", "dashboard.wsgi"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, server, log_path)
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        server.terminate()
        assert server.wait(timeout=40) == 0, log_path.read_text()  # a graceful stop on SIGTERM
        log.close()


def fetch(url: str, **headers) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_gunicorn_serves_the_pages_and_hashed_compressed_static_files(gunicorn):
    base, log_path = gunicorn

    status, headers, body = fetch(f"{base}/accounts/login/", **{"X-Request-ID": "sign-in-1"})
    assert status == 200
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    page = body.decode()
    stylesheet = re.search(r'href="(/static/css/handoff\.[0-9a-f]{12}\.css)"', page)
    htmx = re.search(r'src="(/static/django_htmx/htmx[^"]*\.[0-9a-f]{12}\.js)"', page)
    assert stylesheet and htmx, page

    for path, decompress, encoding in ((stylesheet[1], gzip.decompress, "gzip"), (htmx[1], brotli.decompress, "br")):
        status, headers, body = fetch(f"{base}{path}", **{"Accept-Encoding": encoding})
        assert status == 200, path
        assert headers["Content-Encoding"] == encoding
        assert "immutable" in headers["Cache-Control"]
        assert int(re.search(r"max-age=(\d+)", headers["Cache-Control"])[1]) >= 365 * 24 * 3600
        source = (ROOT / "static/css/handoff.css").read_bytes() if path.endswith(".css") else None
        plain = decompress(body)
        assert plain == source if source is not None else b"htmx" in plain

    # The favicon: linked by its hashed name, and /favicon.ico redirects to it (urllib follows).
    assert re.search(r'<link rel="icon" href="/static/img/favicon\.[0-9a-f]{12}\.svg"', page), page
    status, _, body = fetch(f"{base}/favicon.ico")
    assert status == 200
    assert body == (ROOT / "static/img/favicon.svg").read_bytes()

    assert fetch(f"{base}/healthz")[0] == 200
    status, _, body = fetch(f"{base}/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"] == {"database": "ok", "broker": "ok"}

    def access_line():
        lines = json_lines(log_path.read_text())
        return [line for line in lines if line.get("logger") == "gunicorn.access" and line["path"] == "/accounts/login/"]

    [line] = wait_for(access_line)
    assert line["status"] == 200 and line["method"] == "GET"
    assert line["request_id"] == "sign-in-1"
