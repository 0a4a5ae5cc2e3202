"""Sending an interaction intent: exactly once, and an honest record when the outcome is unknown."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import tools
from approvals.models import Approval
from runs import execution, gemini
from runs.models import Artifact, Interaction, Run
from tests.factories import keep_counts


def intent(text: str) -> Interaction:
    run = Run.objects.create(model="gemini-3-flash-preview", input=text)
    interaction = Interaction.objects.create(run=run, sequence=0, request=execution.build_request(run, input=text))
    keep_counts(run)
    return interaction


def test_a_claim_left_by_a_dead_worker_is_marked_unknown_and_never_resent(db, api):
    interaction = intent("Hello")
    Interaction.objects.filter(pk=interaction.pk).update(
        dispatch=Interaction.Dispatch.SENDING, sent_at=timezone.now() - execution.sending_lease() - timedelta(seconds=1)
    )

    execution.send(interaction.pk)

    interaction.refresh_from_db()
    assert interaction.dispatch == Interaction.Dispatch.UNKNOWN
    assert "does not send it again" in interaction.error
    interaction.run.refresh_from_db()
    assert interaction.run.status == Run.Status.FAILED
    assert api.requests_for(method="POST") == []


def test_a_claim_still_within_its_lease_is_left_to_its_worker(db, api):
    interaction = intent("Hello")
    Interaction.objects.filter(pk=interaction.pk).update(dispatch=Interaction.Dispatch.SENDING, sent_at=timezone.now())

    with pytest.raises(execution.StillSending) as raised:
        execution.send(interaction.pk)

    assert 0 < raised.value.seconds <= execution.sending_lease().total_seconds()
    interaction.refresh_from_db()
    assert interaction.dispatch == Interaction.Dispatch.SENDING
    assert api.requests_for(method="POST") == []


@pytest.fixture
def short_timeout(settings):
    settings.GEMINI_TIMEOUT_MS = 500
    gemini.client.cache_clear()
    yield
    gemini.client.cache_clear()


def test_a_timed_out_create_is_recorded_as_unknown_not_retried(db, api, short_timeout):
    interaction = intent("Take your time [fault:slow=1.5]")

    execution.send(interaction.pk)

    interaction.refresh_from_db()
    assert interaction.dispatch == Interaction.Dispatch.UNKNOWN
    assert "timed out after 500 ms" in interaction.error
    interaction.run.refresh_from_db()
    assert interaction.run.status == Run.Status.FAILED
    assert len(api.requests_for(method="POST", path_suffix="/interactions")) == 1


def test_a_rate_limited_create_goes_back_to_pending_for_a_retry(db, api):
    interaction = intent("Busy [fault:429]")

    with pytest.raises(Exception) as raised:
        execution.send(interaction.pk)

    assert execution.is_retryable(raised.value)
    interaction.refresh_from_db()
    assert interaction.dispatch == Interaction.Dispatch.PENDING
    assert "429" in interaction.error


def test_a_client_error_fails_the_run_with_the_api_message(db, api):
    run = Run.objects.create(model="gemini-3-flash-preview", input="x")
    interaction = Interaction.objects.create(
        run=run, sequence=1, request=execution.build_request(run, input="x", previous_interaction_id="v1_missing"),
    )
    keep_counts(run)

    execution.send(interaction.pk)

    interaction.refresh_from_db()
    assert interaction.dispatch == Interaction.Dispatch.ERROR
    assert interaction.error.startswith("HTTP 404")
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED and run.error == interaction.error


def test_raw_payloads_are_kept_only_when_capture_is_on(db, api, settings):
    settings.CAPTURE_RAW_PAYLOADS = True
    interaction = intent("Keep everything")

    execution.send(interaction.pk)

    kinds = set(interaction.artifacts.values_list("kind", flat=True))
    assert {Artifact.Kind.RAW_REQUEST, Artifact.Kind.RAW_RESPONSE, Artifact.Kind.REQUEST_MANIFEST} <= kinds
    raw = interaction.artifacts.get(kind=Artifact.Kind.RAW_RESPONSE).content
    assert '"status": "completed"' in raw or '"status":"completed"' in raw


def test_polling_backs_off_exponentially_up_to_the_cap(settings):
    settings.POLL_INITIAL_DELAY = 1
    settings.POLL_MAX_DELAY = 60

    delays = [execution.poll_delay(n) for n in range(10)]

    assert delays[:7] == [1, 2, 4, 8, 16, 32, 60]
    assert set(delays[6:]) == {60}


def test_the_periodic_recovery_settles_stale_claims_and_requeues_lost_intents(worker, api):
    stale = intent("Stale claim")
    Interaction.objects.filter(pk=stale.pk).update(
        dispatch=Interaction.Dispatch.SENDING, sent_at=timezone.now() - execution.sending_lease() - timedelta(seconds=1)
    )
    lost = intent("Lost message")
    Interaction.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=6))

    counts = execution.recover_stalled()

    assert counts == {"unknown": 1, "requeued": 1}
    stale.refresh_from_db()
    assert stale.dispatch == Interaction.Dispatch.UNKNOWN
    from tests.conftest import wait_for

    wait_for(lambda: Run.objects.filter(pk=lost.run_id, status=Run.Status.COMPLETED).exists())
    assert len(api.requests_for(method="POST", path_suffix="/interactions")) == 1


def test_racing_sends_of_one_intent_make_one_request(transactional_db, api):
    import threading

    from django.db import connection

    for attempt in range(5):
        interaction = intent(f"Race {attempt}")
        barrier = threading.Barrier(3)

        def send():
            barrier.wait()
            try:
                execution.send(interaction.pk)
            except execution.StillSending:
                pass
            finally:
                connection.close()

        threads = [threading.Thread(target=send) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    bodies = [r["body"]["input"] for r in api.requests_for(method="POST", path_suffix="/interactions")]
    assert sorted(bodies) == [f"Race {n}" for n in range(5)]


def test_an_intent_of_a_cancelled_run_is_not_sent(db, api):
    interaction = intent("Too late")
    Run.objects.filter(pk=interaction.run_id).update(status=Run.Status.CANCELLED)

    execution.send(interaction.pk)

    interaction.refresh_from_db()
    assert interaction.dispatch == Interaction.Dispatch.ERROR and "cancelled" in interaction.error
    assert api.requests_for(method="POST") == []



def test_a_follow_up_refused_while_the_api_is_down_goes_out_soon_after_it_is_back_and_once(worker, api, alice):
    from tests.conftest import wait_for

    # Whether the send task queued with the follow-up meets the inline send's claim is a race
    # of a few milliseconds; three refunds give it three chances to show.
    for attempt in range(3):
        run = execution.create_run(
            model="gemini-3-flash-preview", input=f"My order A-1001 arrived damaged ({attempt}). Refund please.",
            tools=tools.declarations(["lookup_order", "issue_refund"]),
        )
        wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.WAITING_FOR_APPROVAL).exists())
        refund = Approval.objects.get(run=run, function_name="issue_refund")
        down_at = time.monotonic()
        api.stop()  # connections to its port are refused until it starts again
        try:
            assert refund.approve(by=alice, shown_hash=refund.arguments_hash)
            wait_for(lambda: Interaction.objects.filter(run=run, sequence=2, error__startswith="Could not reach").exists())
            time.sleep(max(0.0, 2 - (time.monotonic() - down_at)))
        finally:
            api.start()
        back_at = time.time()

        # The sending lease (a 60 s request timeout plus a 30 s margin) is far beyond this bound.
        wait_for(lambda: Run.objects.filter(pk=run.pk, status__in=Run.FINAL_STATUSES).exists(), timeout=20)
        run.refresh_from_db()
        assert run.status == Run.Status.COMPLETED, run.error
        answering = [
            request for request in api.requests_for(method="POST", path_suffix="/interactions")
            if any(isinstance(item, dict) and item.get("call_id") == refund.call_id
                   for item in request["body"].get("input") or [])
        ]
        assert len(answering) == 1
        assert answering[0]["received_at"] - back_at < 20
        assert run.interactions.get(sequence=2).dispatch == Interaction.Dispatch.SENT
