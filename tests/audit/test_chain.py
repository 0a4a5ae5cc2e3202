"""The audit log you can prove: hash chain, append-only trigger, verification, tampering."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit import chain, log
from audit.models import AuditEvent, ChainLink, ChainVerification
from runs.models import Run


def write_events(count: int, run=None) -> list[AuditEvent]:
    run = run or Run.objects.create(model="m", input="x")
    with transaction.atomic():
        events = [log.record(actor="system:test", verb="run.status_changed", obj=run, run=run,
                               after={"n": n, "note": "é ünïcode"}) for n in range(count)]
    log.seal()
    return events


def tamper(sql: str, params=()) -> None:
    """What someone with direct database access could do: switch triggers off for their
    session (``session_replication_role = replica``, a superuser's right), change rows."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = DEFAULT")


def verify_command() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except SystemExit as exit:
        return exit.code, err.getvalue()
    return 0, out.getvalue()


def test_sealing_links_every_event_in_order_from_the_genesis_hash(db):
    events = write_events(5)

    links = list(ChainLink.objects.order_by("position"))
    assert [link.event_id for link in links] == [e.pk for e in events]
    assert links[0].prev_hash == log.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(links, links[1:]))
    assert log.seal() == 0


def test_an_intact_chain_verifies_and_the_command_exits_zero(db):
    write_events(12)

    code, output = verify_command()

    assert code == 0 and "12 events verified" in output
    latest = ChainVerification.objects.latest()
    assert latest.ok and latest.links_checked >= 12


def test_a_changed_event_is_named(db):
    events = write_events(6)
    tamper("UPDATE approvals_auditevent SET after = %s WHERE id = %s", [json.dumps({"n": 99}), events[3].pk])

    code, message = verify_command()

    assert code == 1
    assert f"Event {events[3].pk} " in message and "altered" in message
    assert ChainVerification.objects.latest().first_bad_event_id == events[3].pk


def test_a_deleted_event_is_named(db):
    events = write_events(6)
    tamper("DELETE FROM approvals_auditevent WHERE id = %s", [events[2].pk])

    code, message = verify_command()

    assert code == 1 and f"Event {events[2].pk} " in message and "deleted" in message


def test_reordered_events_are_named(db):
    events = write_events(6)
    first, second = events[1], events[2]
    tamper("UPDATE approvals_auditevent SET created_at = CASE id WHEN %s THEN %s ELSE %s END WHERE id IN (%s, %s)",
           [first.pk, second.created_at, first.created_at, first.pk, second.pk])

    code, message = verify_command()

    assert code == 1 and f"Event {first.pk} " in message


def test_a_removed_link_is_found(db):
    events = write_events(6)
    tamper("DELETE FROM approvals_chainlink WHERE event_id = %s", [events[4].pk])

    code, message = verify_command()

    assert code == 1 and "Link #" in message and "missing" in message


def test_the_trigger_refuses_the_applications_own_updates_and_deletes(db):
    [event] = write_events(1)

    for sql in ("UPDATE approvals_auditevent SET verb = 'x' WHERE id = %s",
                "DELETE FROM approvals_auditevent WHERE id = %s",
                "DELETE FROM approvals_chainlink WHERE event_id = %s"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(verb="x")
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        event.save()


def test_events_written_by_the_worker_are_sealed_after_commit(worker, api):
    from runs import execution
    from tests.conftest import wait_for

    run = execution.create_run(model="gemini-3-flash-preview", input="Seal me")

    wait_for(lambda: Run.objects.filter(pk=run.pk, status="completed").exists())
    wait_for(lambda: not AuditEvent.objects.filter(link__isnull=True).exists())
    assert chain.verify().ok
