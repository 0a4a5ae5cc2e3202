"""The audit log's move from approvals to its own app (approvals 0011, audit 0001), run forward
over a database that holds the old schema with data in it: the rows stay, the chain seals and
verifies over them, the triggers still guard the tables, and the content types follow."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from audit import chain, log
from audit.models import AuditEvent, ChainLink, UnsealedEvent

BEFORE = [("approvals", "0010_queue_unsealed_events"), ("audit", None)]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


def latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_moving_the_models_keeps_every_event_and_the_chain_verifies_over_them():
    old = migrate(BEFORE)
    OldEvent = old.get_model("approvals", "AuditEvent")
    with transaction.atomic():
        written = [OldEvent.objects.create(actor="alice", verb="approval.approved", object_type="approval",
                                           object_id=str(n), run_id=n, tool="issue_refund", after={"n": n, "note": "né"})
                   for n in range(1, 4)]
    assert not ContentType.objects.filter(app_label="audit", model="auditevent").exists()
    ContentType.objects.get_or_create(app_label="approvals", model="auditevent")

    migrate(latest())

    moved = list(AuditEvent.objects.order_by("id"))
    assert [(e.pk, e.actor, e.run_id, e.after) for e in moved] == [
        (e.pk, "alice", e.run_id, {"n": e.run_id, "note": "né"}) for e in written
    ]
    # The queue trigger of the old schema had queued them; the new code seals what it queued.
    assert set(UnsealedEvent.objects.values_list("event_id", flat=True)) == {e.pk for e in written}
    assert log.seal() == 3
    assert ChainLink.objects.count() == 3
    result = chain.verify()
    assert result.ok, result.message
    assert ContentType.objects.get(app_label="audit", model="auditevent")
    assert not ContentType.objects.filter(app_label="approvals", model="auditevent").exists()


@pytest.mark.django_db(transaction=True)
def test_after_the_move_the_triggers_still_guard_the_tables_and_queue_new_events():
    migrate(BEFORE)
    migrate(latest())

    with transaction.atomic():
        event = log.record(actor="system:test", verb="test.written", obj=None, object_type="test", object_id="1")
    assert UnsealedEvent.objects.filter(event_id=event.pk).exists() or ChainLink.objects.filter(event=event).exists()
    if connection.vendor != "postgresql":
        return
    for sql in ("UPDATE approvals_auditevent SET actor = 'mallory' WHERE id = %s",
                "DELETE FROM approvals_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE approvals_auditevent, approvals_chainlink")
