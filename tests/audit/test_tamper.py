"""Tampering by whoever owns the database: signed checkpoints of the chain's head, the checkpoint
log next to the key, the TRUNCATE triggers, and the application's least-privilege role.

Every attack here runs as the database owner (the suite's superuser connection), past the
append-only triggers (``session_replication_role = replica``), with raw SQL."""

import io
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit import chain, keys, log
from audit.models import AuditCheckpoint, AuditEvent, ChainLink, ChainVerification
from audit.tasks import checkpoint_audit_chain, verify_audit_chain
from runs.models import Run
from tests.audit.test_chain import verify_command
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
AUDIT_TABLES = ("approvals_auditevent", "approvals_chainlink", "approvals_auditcheckpoint")


def write_events(count: int) -> list[AuditEvent]:
    run = Run.objects.create(model="m", input="x")
    with transaction.atomic():
        events = [log.record(actor="system:test", verb="run.status_changed", obj=run, run=run, after={"n": n})
                  for n in range(count)]
    log.seal()
    return events


def as_owner(*statements: tuple[str, list]) -> None:
    """Raw SQL as the database owner, with the append-only triggers skipped for the session."""
    with connection.cursor() as cursor:
        # The test's transaction holds deferred foreign-key checks, which TRUNCATE refuses to skip.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET session_replication_role = replica")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = DEFAULT")


def link_of(event: AuditEvent) -> ChainLink:
    return ChainLink.objects.get(event_id=event.pk)


def test_an_untouched_log_verifies_and_each_verification_signs_a_checkpoint_over_its_own_event(db):
    write_events(5)

    code, output = verify_command()
    again, output_again = verify_command()

    assert code == 0 and again == 0, output_again
    key = keys.fingerprint(keys.signing_key().public_key())
    assert f"Signing key {key}" in output
    first, second = AuditCheckpoint.objects.order_by("number")
    assert second.prev_signature == first.signature and "it matches every signed checkpoint (1)" in output_again
    head = ChainLink.objects.order_by("-position").first()
    assert (second.position, second.hash, second.event_id) == (head.position, head.hash, head.event_id)
    assert AuditEvent.objects.get(pk=head.event_id).verb == "audit.verified"


def test_the_triggers_refuse_truncate_of_every_audit_table(db):
    write_events(1)
    chain.checkpoint()

    for table in AUDIT_TABLES:
        with pytest.raises(DatabaseError, match="append-only: TRUNCATE"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(f"TRUNCATE {table} CASCADE")


def test_checkpoints_refuse_updates_and_deletes_like_the_events(db):
    write_events(1)
    checkpoint = chain.checkpoint()

    for sql in ("UPDATE approvals_auditcheckpoint SET position = 99 WHERE id = %s",
                "DELETE FROM approvals_auditcheckpoint WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [checkpoint.pk])
    with pytest.raises(TypeError):
        AuditCheckpoint.objects.filter(pk=checkpoint.pk).delete()
    with pytest.raises(TypeError):
        checkpoint.save()


def test_truncating_the_events_and_links_is_named_by_the_checkpoint(db):
    write_events(4)
    checkpoint = chain.checkpoint()
    as_owner(("TRUNCATE approvals_auditevent, approvals_chainlink", []))

    code, message = verify_command()

    assert code == 1
    assert "The chain is empty" in message and f"checkpoint {checkpoint.number} " in message
    assert "links #1 to #4" in message and "truncated" in message


def test_truncating_every_audit_table_with_the_checkpoints_is_caught_by_the_log_next_to_the_key(db):
    write_events(3)
    chain.checkpoint()
    checkpoint = chain.checkpoint()
    as_owner(("TRUNCATE approvals_auditevent, approvals_chainlink, approvals_auditcheckpoint", []))

    code, message = verify_command()

    assert code == 1
    assert f"checkpoint {checkpoint.number} " in message and "links #1 to #3" in message
    assert not AuditCheckpoint.objects.exists()


def test_deleting_the_last_events_and_their_links_is_named(db):
    events = write_events(6)
    checkpoint = chain.checkpoint()
    as_owner(("DELETE FROM approvals_chainlink WHERE event_id >= %s", [events[3].pk]),
             ("DELETE FROM approvals_auditevent WHERE id >= %s", [events[3].pk]))

    code, message = verify_command()

    assert code == 1
    assert f"The chain ends at link #3 (event {events[2].pk})" in message
    assert "covers links up to #6" in message and "links #4 to #6" in message and "deleted" in message
    assert checkpoint.event_id == events[5].pk and f"event {events[5].pk})" in message


def test_an_event_altered_with_every_later_link_rehashed_is_caught_and_the_range_named(db):
    events = write_events(3)
    chain.checkpoint()
    events += write_events(3)
    chain.checkpoint()
    altered = events[4]
    statements = [("UPDATE approvals_auditevent SET after = %s WHERE id = %s", [json.dumps({"n": 99}), altered.pk])]
    prev = link_of(events[3]).hash
    for event in events[4:]:
        event = AuditEvent.objects.get(pk=event.pk)
        if event.pk == altered.pk:
            event.after = {"n": 99}
        digest = log.event_hash(prev, event)
        statements.append(("UPDATE approvals_chainlink SET prev_hash = %s, hash = %s WHERE event_id = %s",
                           [prev, digest, event.pk]))
        prev = digest
    as_owner(*statements)
    # The rewrite is consistent link by link: only the signed checkpoint can tell.
    assert all(log.event_hash(l.prev_hash, l.event) == l.hash for l in ChainLink.objects.select_related("event"))

    code, message = verify_command()

    assert code == 1
    assert f"Event {events[5].pk} (link #6) no longer has the hash checkpoint 2" in message
    assert "rewritten" in message and f"from event {events[3].pk} on" in message
    verification = ChainVerification.objects.latest()
    assert verification.first_bad_event_id == events[3].pk


def test_deleting_the_latest_checkpoints_is_caught_by_the_log_next_to_the_key(db):
    write_events(2)
    chain.checkpoint()
    write_events(2)
    chain.checkpoint()
    write_events(2)
    third = chain.checkpoint()
    as_owner(("DELETE FROM approvals_auditcheckpoint WHERE number >= 2", []))

    code, message = verify_command()

    assert code == 1
    assert f"Checkpoint 3 (signed {third.created_at.isoformat(timespec='seconds')}, link #6" in message
    assert "is missing from the database: the newest checkpoints were deleted" in message
    assert str(chain.checkpoint_log_path()) in message


def test_deleting_a_checkpoint_between_others_is_named(db):
    for _ in range(3):
        write_events(1)
        chain.checkpoint()
    as_owner(("DELETE FROM approvals_auditcheckpoint WHERE number = 2", []))

    code, message = verify_command()

    assert code == 1 and "Checkpoint 2 is missing: the checkpoints jump to 3" in message


def test_a_checkpoint_moved_by_the_owner_no_longer_matches_its_signature(db):
    events = write_events(4)
    checkpoint = chain.checkpoint()
    as_owner(("UPDATE approvals_auditcheckpoint SET position = 2, hash = %s, event_id = %s WHERE id = %s",
              [link_of(events[1]).hash, events[1].pk, checkpoint.pk]))

    code, message = verify_command()

    assert code == 1 and f"Checkpoint {checkpoint.number} does not match its signature" in message


def test_no_checkpoint_is_signed_over_a_chain_cut_since_the_last_one(db):
    events = write_events(4)
    chain.checkpoint()
    as_owner(("DELETE FROM approvals_chainlink WHERE event_id = %s", [events[3].pk]),
             ("DELETE FROM approvals_auditevent WHERE id = %s", [events[3].pk]))

    with pytest.raises(chain.ChainBroken, match="Link #4"):
        chain.checkpoint()
    assert AuditCheckpoint.objects.count() == 1


def test_a_replaced_signing_key_is_reported_with_both_fingerprints(db, settings, tmp_path):
    write_events(2)
    checkpoint = chain.checkpoint()
    settings.HANDOFF_AUDIT_SIGNING_KEY_FILE = tmp_path / "other-key.pem"

    code, message = verify_command()

    assert code == 1
    assert f"signed by key {checkpoint.key_fingerprint}, not by this installation's key" in message
    assert keys.fingerprint(keys.signing_key().public_key()) in message


def test_the_key_file_is_created_with_mode_0600_on_first_use_and_then_reused(db, settings, tmp_path):
    settings.HANDOFF_AUDIT_SIGNING_KEY_FILE = tmp_path / "keys" / "audit-signing-key.pem"

    first = keys.fingerprint(keys.signing_key().public_key())

    mode = stat.S_IMODE(os.stat(settings.HANDOFF_AUDIT_SIGNING_KEY_FILE).st_mode)
    assert mode == 0o600
    assert keys.fingerprint(keys.signing_key().public_key()) == first
    assert os.listdir(tmp_path / "keys") == ["audit-signing-key.pem"]


def test_a_first_local_run_creates_the_key_in_the_data_folder_and_verifies(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "HANDOFF_AUDIT_SIGNING_KEY_FILE", "HANDOFF_AUDIT_CHECKPOINT_LOG"}}
    env.update(HANDOFF_DATA_DIR=str(tmp_path), DJANGO_DEBUG="1")

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)

    assert manage("migrate", "--no-input").returncode == 0
    done = manage("verify_audit")

    assert done.returncode == 0, done.stderr
    key = tmp_path / "audit-signing-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert f"({key})" in done.stdout and (tmp_path / "audit-checkpoints.jsonl").exists()


def test_a_key_file_that_holds_no_ed25519_key_gets_a_message_not_a_traceback(db, settings, tmp_path):
    write_events(1)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    settings.HANDOFF_AUDIT_SIGNING_KEY_FILE = bad

    code, message = verify_command()

    assert code == 1 and f"{bad} does not hold an unencrypted PEM private key" in message


def test_the_periodic_job_signs_a_checkpoint_in_the_worker_only_when_the_head_moved(worker):
    assert django_settings.CELERY_BEAT_SCHEDULE["checkpoint-audit-chain"]["task"] == \
        "audit.tasks.checkpoint_audit_chain"
    write_events(3)

    checkpoint_audit_chain.delay()
    first = wait_for(lambda: AuditCheckpoint.objects.first())
    assert first.position == ChainLink.objects.count() == 3
    # The log line is appended once the row has committed: wait for it too.
    logged = wait_for(chain.newest_logged_checkpoint)
    assert (logged.number, logged.signature) == (first.number, first.signature)
    assert chain.checkpoint(only_if_moved=True) is None


def test_the_audit_pages_verification_in_the_worker_reports_the_same_tampering(worker):
    events = write_events(4)
    chain.checkpoint()
    as_owner(("DELETE FROM approvals_chainlink WHERE event_id >= %s", [events[2].pk]),
             ("DELETE FROM approvals_auditevent WHERE id >= %s", [events[2].pk]))
    verification = ChainVerification.objects.create(ok=None, message="Verifying…", requested_by="carol")

    verify_audit_chain.delay(verification.pk)

    done = wait_for(lambda: ChainVerification.objects.filter(pk=verification.pk, ok__isnull=False).first())
    assert done.ok is False and "links #3 to #4 and their events were deleted" in done.message
    # The task's own event is sealed after its commit; the test ends once the worker is done.
    wait_for(lambda: not AuditEvent.objects.filter(link__isnull=True).exists())
    assert AuditCheckpoint.objects.count() == 1


# --- The application's database role ---------------------------------------------------------


@pytest.fixture
def app_role(transactional_db):
    """A least-privilege role made by ``create_app_db_role --execute`` (its name is unique: roles
    are shared by every database of the server), dropped afterwards."""
    role = f"handoff_app_{uuid.uuid4().hex[:10]}"
    call_command("create_app_db_role", "--role", role, "--execute", stdout=io.StringIO())
    yield role
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {role}")
        cursor.execute(f"DROP ROLE {role}")


def connect_as(role: str) -> psycopg.Connection:
    params = connection.settings_dict
    return psycopg.connect(host=params["HOST"], port=params["PORT"] or 5432, dbname=params["NAME"], user=role,
                           autocommit=True)


def test_the_app_role_writes_events_but_cannot_rewrite_truncate_or_untrigger_the_audit_tables(app_role):
    write_events(2)
    chain.checkpoint()

    with connect_as(app_role) as role:
        (event_id,) = role.execute(
            "INSERT INTO approvals_auditevent (actor, verb, object_type, object_id, tool, request_id, created_at) "
            "VALUES ('system:test', 'run.started', 'run', '1', '', '', now()) RETURNING id").fetchone()
        role.execute("INSERT INTO approvals_chainlink (position, event_id, prev_hash, hash, sealed_at) "
                     "VALUES (99, %s, '', '', now())", [event_id])
        role.execute("UPDATE approvals_chainverification SET message = 'x' WHERE false")
        role.execute("DELETE FROM django_session WHERE false")
        refused = [
            "UPDATE approvals_auditevent SET verb = 'x'",
            "DELETE FROM approvals_auditevent",
            "UPDATE approvals_chainlink SET hash = 'x'",
            "DELETE FROM approvals_chainlink",
            "DELETE FROM approvals_auditcheckpoint",
            "UPDATE approvals_auditcheckpoint SET position = 0",
            *(f"TRUNCATE {table} CASCADE" for table in AUDIT_TABLES),
            *(f"ALTER TABLE {table} DISABLE TRIGGER ALL" for table in AUDIT_TABLES),
            "SET session_replication_role = replica",
        ]
        for sql in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                role.execute(sql)
    assert AuditEvent.objects.filter(pk=event_id).exists()
    assert AuditEvent.objects.count() == 3 and AuditCheckpoint.objects.count() == 1


def test_the_role_command_prints_its_sql_and_refuses_a_bad_name_or_the_owner(db):
    out = io.StringIO()
    call_command("create_app_db_role", "--role", "handoff_app", "--password", "it's secret", stdout=out)

    sql = out.getvalue()
    assert "NOSUPERUSER" in sql and "PASSWORD 'it''s secret'" in sql
    assert 'REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE "approvals_auditevent", ' \
           '"approvals_chainlink", "approvals_auditcheckpoint" FROM "handoff_app"' in sql
    with pytest.raises(CommandError, match="lowercase name"):
        call_command("create_app_db_role", "--role", "x; DROP TABLE y")
    with pytest.raises(CommandError, match="owns the audit tables"):
        call_command("create_app_db_role", "--role", connection.settings_dict["USER"])
