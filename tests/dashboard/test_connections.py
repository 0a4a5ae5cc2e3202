"""``make run``'s web server with the default settings: a browser that keeps its connection open
after a page does not keep a PostgreSQL connection open with it."""

import http.client
import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.conftest import wait_for_port

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connections_to(database: str) -> int:
    """Server processes connected to ``database``, read from another database so that this
    reading is not one of them."""
    with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True) as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]).fetchone()[0]


@pytest.fixture
def runserver(db, tmp_path):
    """``manage.py runserver`` as Procfile.dev starts it, on the test database, with no
    connection setting of its own: the settings' defaults apply."""
    database = connection.settings_dict["NAME"]
    port = free_port()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "HANDOFF_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_DEBUG": "1", "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
    }
    log = open(tmp_path / "runserver.log", "w")
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, server, tmp_path / "runserver.log")
        yield port, database
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_idle_keep_alive_clients_hold_no_database_connection(runserver):
    port, database = runserver
    before = connections_to(database)
    clients = []
    try:
        for _ in range(SESSIONS):
            client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            # A session cookie makes the page read the session table, so each request uses the
            # database.
            client.request("GET", "/accounts/login/", headers={"Cookie": "sessionid=" + "x" * 32})
            response = client.getresponse()
            response.read()
            assert response.status == 200
            assert response.getheader("Connection", "").lower() != "close"
            clients.append(client)

        held = connections_to(database) - before

        assert held <= 1, f"{held} database connections held by {SESSIONS} idle keep-alive clients"
    finally:
        for client in clients:
            client.close()
