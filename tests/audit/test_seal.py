"""Sealing reads only the backlog of unsealed events, whatever the log's size, and still seals
every event, in whichever order their transactions commit; verification shows its progress."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit import chain, log
from audit.models import AuditEvent, ChainLink, ChainVerification, UnsealedEvent
from runs.models import Run
from tests.audit.test_chain import tamper, write_events


def test_an_event_is_queued_in_its_own_transaction_and_leaves_the_backlog_when_sealed(db):
    run = Run.objects.create(model="m", input="x")
    with transaction.atomic():
        event = log.record(actor="system:test", verb="run.status_changed", obj=run, run=run)
        assert UnsealedEvent.objects.filter(event_id=event.pk).exists()
    log.seal()

    assert not UnsealedEvent.objects.exists()
    assert ChainLink.objects.get(event_id=event.pk).position == 1
    assert log.seal_lag() == (0, 0.0)


def test_an_event_rolled_back_leaves_nothing_in_the_backlog(db):
    run = Run.objects.create(model="m", input="x")
    with pytest.raises(RuntimeError), transaction.atomic():
        log.record(actor="system:test", verb="run.status_changed", obj=run, run=run)
        raise RuntimeError("the change failed")

    assert not UnsealedEvent.objects.exists() and not AuditEvent.objects.exists()


def test_sealing_never_joins_the_whole_log_against_the_chain(db):
    write_events(300)
    run = Run.objects.create(model="m", input="x")
    with transaction.atomic():
        log.record(actor="system:test", verb="run.status_changed", obj=run, run=run)

    with CaptureQueriesContext(connection) as queries:
        assert log.seal() == 1

    for query in queries.captured_queries:
        sql = query["sql"].lower()
        # The old seal found its work with events LEFT JOIN links WHERE link IS NULL: a walk
        # of the whole log on every commit.
        assert not ("approvals_auditevent" in sql and "approvals_chainlink" in sql and "join" in sql), sql
        if sql.startswith("select") and "from \"approvals_auditevent\"" in sql:
            assert " in (" in sql, f"reads events beyond the backlog: {sql}"


def test_seal_lag_counts_the_backlog_and_the_age_of_its_oldest_event(db):
    run = Run.objects.create(model="m", input="x")
    with transaction.atomic():
        for _ in range(3):
            log.record(actor="system:test", verb="run.status_changed", obj=run, run=run)
    # (Inside the test's transaction nothing was sealed on commit.) What a process killed
    # between its commit and its seal leaves: an event, 90 s old, queued.
    with transaction.atomic():
        # bulk_create, past AuditEvent.save: the database's trigger queues it all the same.
        AuditEvent.objects.bulk_create([AuditEvent(actor="system:test", verb="x", object_type="run", object_id="1",
                                                   created_at=timezone.now() - timedelta(seconds=90))])

    count, age = log.seal_lag()

    assert count == 4 and 85 <= age < 600
    assert log.seal() == 4 and log.seal_lag() == (0, 0.0)


@pytest.mark.django_db(transaction=True)
def test_an_event_that_commits_after_a_later_one_was_sealed_is_still_sealed():
    """Two writers: the first takes the lower id but commits last. Sealing by "ids above the
    last sealed one" would skip it for good; the backlog does not."""
    run = Run.objects.create(model="m", input="x")
    first_written, release = threading.Event(), threading.Event()
    ids: dict[str, int] = {}

    def slow_writer():
        try:
            with transaction.atomic():
                ids["slow"] = log.record(actor="system:slow", verb="run.status_changed", obj=run, run=run).pk
                first_written.set()
                assert release.wait(20)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert first_written.wait(20)
    with transaction.atomic():
        ids["fast"] = log.record(actor="system:fast", verb="run.status_changed", obj=run, run=run).pk
    assert ids["fast"] > ids["slow"]
    assert ChainLink.objects.filter(event_id=ids["fast"]).exists()  # sealed on commit
    release.set()
    thread.join(20)

    assert [link.event_id for link in ChainLink.objects.order_by("position")] == [ids["fast"], ids["slow"]]
    assert chain.verify().ok


def test_a_backlog_row_for_an_event_already_linked_does_not_stop_the_chain(db):
    events = write_events(3)
    tamper("INSERT INTO approvals_unsealedevent (event_id) VALUES (%s)", [events[0].pk])
    run = Run.objects.create(model="m", input="x")
    with transaction.atomic():
        later = log.record(actor="system:test", verb="run.status_changed", obj=run, run=run)
    log.seal()

    assert ChainLink.objects.get(event_id=later.pk).position == 4
    assert ChainLink.objects.filter(event_id=events[0].pk).count() == 1
    assert not UnsealedEvent.objects.exists()
    assert chain.verify().ok


def test_a_backlog_row_deleted_by_the_database_owner_shows_as_an_event_with_no_link(db):
    run = Run.objects.create(model="m", input="x")
    with transaction.atomic():
        event = log.record(actor="system:test", verb="run.status_changed", obj=run, run=run)
        # Removed before the commit hook seals it: the event now never gets a link.
        tamper("DELETE FROM approvals_unsealedevent WHERE event_id = %s", [event.pk])

    result = chain.verify(grace=timedelta(0))

    assert not result.ok and result.first_bad_event_id == event.pk and "no link" in result.message


def test_verification_reports_its_progress_after_each_chunk(db):
    write_events(35)
    seen: list[int] = []

    result = chain.verify(chunk=10, progress=seen.append)

    assert result.ok and seen == [10, 20, 30, 35]


def test_a_verification_records_the_chains_length_and_how_far_it_got(db):
    write_events(7)

    verification = chain.verify_and_record(requested_by="alice")

    verification.refresh_from_db()
    assert verification.ok and verification.links_total == 7 and verification.links_checked == 7
    assert ChainVerification.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_commit_never_waits_for_another_sealer_and_its_event_is_sealed_by_the_next_seal():
    import psycopg

    run = Run.objects.create(model="m", input="x")
    settings_dict = connection.settings_dict
    other = psycopg.connect(host=settings_dict["HOST"] or "127.0.0.1", port=settings_dict["PORT"] or 5432,
                            user=settings_dict["USER"], dbname=settings_dict["NAME"], autocommit=True)
    other.execute("SELECT pg_advisory_lock(%s)", [log.SEAL_LOCK])  # another process, sealing
    try:
        with transaction.atomic():
            event = log.record(actor="system:test", verb="run.status_changed", obj=run, run=run)
        # The commit's seal found the lock taken and left: the event waits in the backlog.
        assert UnsealedEvent.objects.filter(event_id=event.pk).exists()
        assert not ChainLink.objects.filter(event_id=event.pk).exists()
    finally:
        other.execute("SELECT pg_advisory_unlock(%s)", [log.SEAL_LOCK])
        other.close()
    with transaction.atomic():
        later = log.record(actor="system:test", verb="run.status_changed", obj=run, run=run)

    assert [link.event_id for link in ChainLink.objects.order_by("position")] == [event.pk, later.pk]
    assert not UnsealedEvent.objects.exists() and chain.verify().ok
