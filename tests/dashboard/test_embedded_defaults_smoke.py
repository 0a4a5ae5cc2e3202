"""Smoke test of the embedded defaults `make run` uses: a SQLite file and the filesystem Celery
broker in the data folder, a worker process and the emulator process, with no server at all."""

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_embedded_defaults_run_a_model_and_an_approval_end_to_end(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY"}}
    env.update(
        HANDOFF_DATA_DIR=str(tmp_path), DJANGO_DEBUG="1", HANDOFF_TASK_QUEUE="handoff",
        GEMINI_API_KEY="local-emulator", GOOGLE_GEMINI_BASE_URL=f"http://127.0.0.1:{port}",
    )
    manage = [sys.executable, "manage.py"]

    def call(*args, timeout=120) -> list[str]:
        done = subprocess.run([*manage, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    call("migrate", "--no-input")
    users = call("seed_demo")
    assert any("alice" in line for line in users)
    assert (tmp_path / "handoff.sqlite3").exists()
    emulator = subprocess.Popen([*manage, "run_emulator", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([str(BIN / "celery"), "-A", "dashboard", "worker", "--concurrency=2", "--loglevel=WARNING"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        plain = call("start_run", "--model", "gemini-3-flash-preview", "--input", "Hello", "--wait", "--timeout", "90")
        order = call("start_run", "--model", "gemini-3-flash-preview", "--tool", "lookup_order", "--tool",
                     "issue_refund", "--input", "Refund order A-1001 please", "--wait", "--timeout", "90")
        database = sqlite3.connect(tmp_path / "handoff.sqlite3")
        [(approval_id,)] = database.execute(
            "SELECT id FROM approvals_approval WHERE run_id = ? AND function_name = 'issue_refund'", [order[-1]]
        ).fetchall()
        decided = call("decide", str(approval_id), "--approve", "--as", "alice")
        deadline = time.monotonic() + 60
        while database.execute("SELECT status FROM runs_run WHERE id = ?", [order[-1]]).fetchone()[0] != "completed":
            assert time.monotonic() < deadline, "the approved run did not complete"
            time.sleep(0.2)
    finally:
        worker.terminate()
        emulator.terminate()
        worker.wait(timeout=30)
        emulator.wait(timeout=30)

    assert plain[-2] == "completed"
    assert order[-2] == "waiting_for_approval"
    assert decided[-1] == f"approved {approval_id}"
    assert list((tmp_path / "broker").iterdir())
