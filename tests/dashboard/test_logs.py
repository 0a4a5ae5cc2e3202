"""What `make run` prints: a refused request is one line with its reason, a notification email
one INFO line (the message kept in a file, not printed), and the Procfile's processes stop with
0 soon after the SIGTERM honcho sends their process group, the worker's children included."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.db import connection

from approvals import notifications
from tests.dashboard.test_production import free_port
from tests.factories import requested_call

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def records():
    """The records Handoff's loggers hand to their handlers (after their filters), as the
    console handler formats them. The loggers do not propagate, so caplog's root handler would
    see nothing."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record)

    keep = Keep()
    loggers = [logging.getLogger(name) for name in ("django.request", "dashboard")]
    for logger in loggers:
        logger.addHandler(keep)
    yield seen
    for logger in loggers:
        logger.removeHandler(keep)


def console_text(record: logging.LogRecord) -> str:
    [console] = logging.getLogger("django.request").handlers[:1]
    return console.format(record)


def test_a_refused_request_is_one_warning_line_with_its_reason_and_no_traceback(client, bob, records):
    client.force_login(bob)
    response = client.get("/audit/")
    assert response.status_code == 403
    [record] = [record for record in records if record.name == "django.request"]
    assert record.levelno == logging.WARNING
    line = console_text(record)
    assert "\n" not in line and "Traceback" not in line
    assert "Forbidden (Permission denied): /audit/" in line
    assert "bob may not" in line  # the refusal's reason, from PermissionDenied


def test_a_missing_page_leaves_the_line_to_the_access_log(client, bob, records):
    client.force_login(bob)
    assert client.get("/runs/999999/").status_code == 404
    assert [record for record in records if record.name == "django.request"] == []


def test_a_notification_email_is_one_info_line_and_kept_in_a_file(settings, tmp_path, capsys, alice, records):
    settings.EMAIL_BACKEND = "dashboard.mail.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    approval = requested_call("issue_refund", {"order_id": "A-1001", "amount": 249.0, "reason": "Damaged"})
    capsys.readouterr()

    assert notifications.email(approval, "requested") >= 1

    [record] = [record for record in records if record.name == "dashboard.mail"]
    assert record.levelno == logging.INFO
    line = console_text(record)
    assert "\n" not in line and "INFO" in line
    assert "alice@example.com" in line and "[Handoff] issue_refund" in line
    # Nothing on standard output, which a Celery worker logs as WARNING lines.
    assert capsys.readouterr().out == ""
    [kept] = (tmp_path / "mail").iterdir()
    assert str(kept) in line
    assert '"amount": 249.0' in kept.read_text() and "Subject: [Handoff] issue_refund" in kept.read_text()


# --- Stopping the Procfile's processes ----------------------------------------------------


def procfile_line(name: str) -> str:
    for line in (ROOT / "Procfile.emulator").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"No {name} in Procfile.emulator")


def start(name: str, tmp_path, **env: str) -> subprocess.Popen:
    """The Procfile line as honcho starts it: through ``sh -c``, in a session of its own."""
    environment = {**os.environ, "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}",
                   "HANDOFF_DATA_DIR": str(tmp_path / "data"), **env}
    environment.pop("CELERY_BROKER_URL", None)  # the embedded default: the filesystem broker
    return subprocess.Popen(procfile_line(name), shell=True, start_new_session=True, cwd=ROOT,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(process: subprocess.Popen, text: str, timeout: float = 60) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} not seen:\n{''.join(lines)}")


def stop_as_honcho_does(process: subprocess.Popen, timeout: float) -> tuple[int, float, str]:
    """SIGTERM to the process group (honcho.compat.ProcessManager.terminate); the exit status,
    the seconds it took and the rest of the output."""
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    try:
        rest, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        rest, _ = process.communicate()
        raise AssertionError(f"Still running {timeout} s after SIGTERM:\n{rest}")
    return process.returncode, time.monotonic() - started, rest


def test_the_emulator_exits_0_on_sigterm(tmp_path):
    emulator = start("emulator", tmp_path, EMULATOR_PORT=str(free_port()))
    read_until(emulator, "listening on")
    returncode, seconds, _ = stop_as_honcho_does(emulator, timeout=5)
    assert returncode == 0 and seconds < 5


def test_the_worker_finishes_its_warm_shutdown_within_honchos_grace(tmp_path, db):
    settings = connection.settings_dict
    database = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    worker = start("worker", tmp_path, DATABASE_URL=database)
    output = "".join(read_until(worker, "ready."))
    returncode, seconds, rest = stop_as_honcho_does(worker, timeout=14)
    output += rest
    assert returncode == 0, output
    # The Makefile gives honcho 15 s before its SIGKILL (honcho.manager.KILL_WAIT).
    assert seconds < 15
    assert "Warm shutdown" in output
    # The pool's children finished with the worker instead of dying of the group's SIGTERM.
    assert "exited with 'signal 15 (SIGTERM)'" not in output, output
    # The filesystem broker's URL names a host, so kombu does not warn on every connection.
    assert "No hostname was supplied" not in output, output
