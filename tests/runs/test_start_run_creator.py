"""Who started a run from the command line (``start_run --as USERNAME``, or the system without
it), as the run records it and the run page and run list name it."""

import importlib
import io

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from runs.models import Run
from tests.factories import make_run


def start_run(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("start_run", "--model", "gemini-3-flash-preview", "--input", "Hello", *args, stdout=out)
    return out.getvalue().splitlines()


def test_as_a_user_the_run_is_theirs_and_the_id_is_the_last_line(client, alice, bob):
    lines = start_run("--as", "bob")

    run = Run.objects.get(pk=int(lines[-1]))
    assert run.created_by == bob and run.created_by_system == ""
    assert run.creator_name == "bob"
    assert AuditEvent.objects.get(verb="run.started", run_id=run.pk).actor == "bob"
    client.force_login(alice)
    assert '<dt>Created by</dt><dd class="creator">bob</dd>' in client.get(run.get_absolute_url()).content.decode()


def test_without_as_the_run_is_the_systems_and_says_so(client, alice):
    lines = start_run()

    run = Run.objects.get(pk=int(lines[-1]))
    assert run.created_by is None and run.created_by_system == "system:cli"
    assert run.creator_name == "system (command line)"
    assert AuditEvent.objects.get(verb="run.started", run_id=run.pk).actor == "system:cli"
    client.force_login(alice)
    body = client.get(run.get_absolute_url()).content.decode()
    assert ">system (command line)</span></dd>" in body
    assert "Created by</dt><dd>—" not in body


def test_an_unknown_user_is_refused_and_no_run_is_made(db):
    with pytest.raises(CommandError, match=r"^No user named 'nobody'\.$"):
        start_run("--as", "nobody")
    assert not Run.objects.exists()


def test_the_run_list_names_who_started_each_run(client, alice, bob):
    start_run("--as", "bob")
    start_run()
    deleted = make_run()  # a creator since deleted: no one to name
    client.force_login(alice)
    body = client.get("/runs/").content.decode()
    assert "<th>Created by</th>" in body
    assert '<td class="nowrap creator">bob</td>' in body
    assert '<td class="nowrap creator">system (command line)</td>' in body
    row = body[body.index(f'href="/runs/{deleted.pk}/"'):]
    assert row[:row.index("</tr>")].count('<td class="nowrap creator">—</td>') == 1


def test_the_migration_names_the_system_on_runs_it_started_before(db, bob):
    system = Run.objects.get(pk=int(start_run()[-1]))
    Run.objects.filter(pk=system.pk).update(created_by_system="")  # as recorded before the field
    users = Run.objects.get(pk=int(start_run("--as", "bob")[-1]))
    deleted = make_run()

    migration = importlib.import_module("runs.migrations.0011_run_created_by_system")
    migration.name_the_system(apps, None)

    assert Run.objects.get(pk=system.pk).created_by_system == "system:cli"
    assert Run.objects.get(pk=users.pk).created_by_system == ""
    assert Run.objects.get(pk=deleted.pk).created_by_system == ""
