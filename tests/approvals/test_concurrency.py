"""Exactly once under concurrency (issue 4): reviewers racing on one call, four-eyes under race,
``claim_next`` handing out one queue to many reviewers, and 50 reviewers working 500 calls.

PostgreSQL, one thread (and so one database connection) per reviewer, a real Celery worker and the
emulator over HTTP. What counts is what the API received: the emulator's request log must hold
exactly one ``function_result`` per decided call, none missing.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Callable

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.db import connection

from approvals import tools
from approvals.models import Approval, Decision, DecisionRefused
from audit.models import AuditEvent
from runs import execution, gemini
from runs.models import Run
from tests.conftest import make_user, wait_for
from tests.factories import make_pending_approval, parallel_refunds_input

MODEL = "gemini-3-flash-preview"


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run each callable in a thread of its own, all released together by a barrier. Returns
    what each returned, or the exception it raised, in order. Each thread closes its database
    connection when done (Django opens one per thread)."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[index] = call()
        except Exception as exc:  # kept for the test to assert on
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a reviewer thread hung"
    return outcomes


def function_results(api) -> list[dict]:
    """Every ``function_result`` the API received in a follow-up (a create chained with
    ``previous_interaction_id``), in arrival order."""
    return [
        item
        for request in api.requests_for(method="POST", path_suffix="/interactions")
        if (request["body"] or {}).get("previous_interaction_id")
        for item in (request["body"].get("input") or [])
        if isinstance(item, dict) and item.get("type") == "function_result"
    ]


def results_per_call(api) -> Counter:
    return Counter(item["call_id"] for item in function_results(api))


def waiting_refund(text: str) -> Approval:
    """Start the order-support scenario and return its refund call once it waits for people."""
    run = execution.create_run(model=MODEL, input=text, tools=tools.declarations(["lookup_order", "issue_refund"]))
    wait_for(lambda: Run.objects.filter(pk=run.pk, status=Run.Status.WAITING_FOR_APPROVAL).exists())
    return Approval.objects.get(run=run, function_name="issue_refund")


def crowd(count: int) -> list[User]:
    """``count`` reviewers, ``reviewer00``… (no usable password: hashing one takes about half a
    second here, longer than the race itself)."""
    users = User.objects.bulk_create(
        User(username=f"reviewer{i:02d}", email=f"reviewer{i:02d}@example.com", password=make_password(None))
        for i in range(count)
    )
    Group.objects.get_or_create(name="reviewers")[0].user_set.add(*users)
    return users


def completed(run_pk: int) -> Run:
    wait_for(lambda: Run.objects.filter(pk=run_pk, status__in=Run.FINAL_STATUSES).exists())
    run = Run.objects.get(pk=run_pk)
    assert run.status == Run.Status.COMPLETED, run.error
    return run


@pytest.fixture
def dave(transactional_db):
    return make_user("dave", "reviewers")


@pytest.fixture
def erin(transactional_db):
    return make_user("erin", "reviewers")


# --- The SDK client --------------------------------------------------------------------------


def test_sends_racing_on_a_fresh_process_share_one_sdk_client(api):
    # A threaded worker's first sends build the client together; a client built twice was closed
    # under its caller by the garbage collector ("client has been closed"), leaving the
    # interaction claimed and never sent.
    gemini.client.cache_clear()

    outcomes = at_once(*(lambda: gemini.create({"model": MODEL, "input": "Hello"}).status for _ in range(4)))

    assert outcomes == ["completed"] * 4
    assert len(api.requests_for(method="POST", path_suffix="/interactions")) == 4


# --- Two reviewers, one call -------------------------------------------------------------------


def test_two_reviewers_approving_the_same_calls_at_once_send_one_result_each(worker, api, alice, dave):
    refunds = [waiting_refund(f"Order A-1001 arrived broken, refund please ({i}).") for i in range(3)]

    for refund in refunds:
        outcomes = at_once(
            lambda: Approval.objects.get(pk=refund.pk).approve(by=alice, shown_hash=refund.arguments_hash),
            lambda: Approval.objects.get(pk=refund.pk).approve(by=dave, shown_hash=refund.arguments_hash),
        )
        assert sorted(outcomes) == [False, True], outcomes
    for refund in refunds:
        completed(refund.run_id)

    per_call = results_per_call(api)
    for refund in refunds:
        refund.refresh_from_db()
        assert refund.status == Approval.Status.APPROVED
        assert per_call[refund.call_id] == 1
        assert refund.decisions.count() == 1
        assert refund.decided_by == refund.decisions.get().user
        assert AuditEvent.objects.filter(verb="approval.approved", object_id=str(refund.pk)).count() == 1
        assert AuditEvent.objects.filter(verb="function_call.executed", object_id=str(refund.pk)).count() == 1


def test_an_approval_racing_a_rejection_settles_the_call_one_way_only(worker, api, alice, dave):
    refunds = [waiting_refund(f"Order A-1001 arrived broken, refund please ({i}).") for i in range(4)]

    for refund in refunds:
        outcomes = at_once(
            lambda: Approval.objects.get(pk=refund.pk).approve(by=alice, shown_hash=refund.arguments_hash),
            lambda: Approval.objects.get(pk=refund.pk).reject(by=dave, shown_hash=refund.arguments_hash,
                                                               reason="No photo of the damage"),
        )
        assert sorted(outcomes) == [False, True], outcomes
    for refund in refunds:
        completed(refund.run_id)

    sent = {item["call_id"]: item for item in function_results(api)}
    per_call = results_per_call(api)
    for refund in refunds:
        refund.refresh_from_db()
        [decision] = refund.decisions.all()
        assert per_call[refund.call_id] == 1
        # What the model received is what the winning decision says, and nothing of the other.
        if refund.status == Approval.Status.APPROVED:
            assert (decision.user, decision.verdict) == (alice, Decision.Verdict.APPROVE)
            assert sent[refund.call_id]["result"]["status"] == "issued"
            assert "is_error" not in sent[refund.call_id]
        else:
            assert refund.status == Approval.Status.REJECTED
            assert (decision.user, decision.verdict) == (dave, Decision.Verdict.REJECT)
            assert sent[refund.call_id]["is_error"] is True
            assert "No photo of the damage" in sent[refund.call_id]["result"]["error"]
            assert not AuditEvent.objects.filter(verb="function_call.executed", object_id=str(refund.pk)).exists()


# --- Four-eyes -------------------------------------------------------------------------------


def test_three_reviewers_approving_a_four_eyes_refund_at_once_approve_it_once(worker, api, alice, dave, erin):
    refund = waiting_refund("Order A-1003 arrived broken, refund please.")
    assert refund.arguments["amount"] == 1450.0 and refund.approvals_required == 2

    outcomes = at_once(*(
        lambda user=user: Approval.objects.get(pk=refund.pk).approve(by=user, shown_hash=refund.arguments_hash)
        for user in (alice, dave, erin)
    ))
    completed(refund.run_id)

    # Two decisions count (the first leaves it pending, the second approves it); the third finds
    # it decided.
    assert sorted(outcomes) == [False, True, True], outcomes
    refund.refresh_from_db()
    assert refund.status == Approval.Status.APPROVED
    deciders = [d.user for d in refund.decisions.order_by("id")]
    assert len(deciders) == 2 and len(set(deciders)) == 2
    assert refund.decided_by == deciders[1]
    assert results_per_call(api)[refund.call_id] == 1
    assert len([r for r in api.requests_for(method="POST", path_suffix="/interactions")
                if r["body"].get("previous_interaction_id")]) == 2  # after the lookup, after the refund
    assert AuditEvent.objects.filter(verb="function_call.executed", object_id=str(refund.pk)).count() == 1


def test_one_reviewer_clicking_twice_never_counts_as_the_second_pair_of_eyes(worker, api, alice, dave):
    refund = waiting_refund("Order A-1003 arrived broken, refund please.")

    outcomes = at_once(*(
        lambda user=user: Approval.objects.get(pk=refund.pk).approve(by=user, shown_hash=refund.arguments_hash)
        for user in (alice, alice, dave)
    ))
    completed(refund.run_id)

    # Whatever the order, dave's approval counts and alice's counts once: her other click is
    # refused (the pair was not complete yet) or finds the call already decided.
    assert outcomes[2] is True
    clicks = outcomes[:2]
    assert clicks.count(True) == 1, outcomes
    [other] = [o for o in clicks if o is not True]
    assert other is False or isinstance(other, DecisionRefused), outcomes
    refund.refresh_from_db()
    assert refund.status == Approval.Status.APPROVED
    assert {d.user for d in refund.decisions.all()} == {alice, dave} and refund.decisions.count() == 2
    assert results_per_call(api)[refund.call_id] == 1


# --- One queue, many reviewers -----------------------------------------------------------------


def test_claim_next_never_hands_one_call_to_two_of_twenty_reviewers(transactional_db):
    approvals = {make_pending_approval().pk for _ in range(40)}
    reviewers = crowd(20)

    def drain(user) -> list[int]:
        claimed = []
        while (approval := Approval.claim_next(by=user)) is not None:
            claimed.append(approval.pk)
        return claimed

    outcomes = at_once(*(lambda user=user: drain(user) for user in reviewers))

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    claims = [(pk, user) for user, got in zip(reviewers, outcomes) for pk in got]
    assert len(claims) == 40
    assert {pk for pk, _ in claims} == approvals
    holders = dict(Approval.objects.values_list("pk", "claimed_by"))
    assert all(holders[pk] == user.pk for pk, user in claims)
    assert AuditEvent.objects.filter(verb="approval.claimed").count() == 40


RUNS, CALLS_PER_RUN, REVIEWERS = 100, 5, 50


def rejects(approval: Approval) -> bool:
    """One call in ten is rejected: the first of every second run (order ids end in 0)."""
    order = approval.arguments["order_id"]
    return order.endswith("0") and int(order[2:5]) % 2 == 0


def test_fifty_reviewers_working_one_queue_of_500_calls_answer_each_exactly_once(worker, api):
    reviewers = crowd(REVIEWERS)
    declarations = tools.declarations(["lookup_order", "issue_refund"])
    runs = [execution.create_run(model=MODEL, tools=declarations,
                                 input=parallel_refunds_input([f"B-{i:03d}{n}" for n in range(CALLS_PER_RUN)],
                                                              first_total=201 + i)).pk
            for i in range(RUNS)]
    wait_for(lambda: Approval.objects.filter(status=Approval.Status.PENDING).count() == RUNS * CALLS_PER_RUN,
             timeout=90)
    assert Run.objects.filter(pk__in=runs, status=Run.Status.WAITING_FOR_APPROVAL).count() == RUNS

    def work(user) -> list[tuple[int, str, bool]]:
        done = []
        while (approval := Approval.claim_next(by=user)) is not None:
            if rejects(approval):
                won = approval.reject(by=user, shown_hash=approval.arguments_hash, reason="Over the monthly limit")
                done.append((approval.pk, Decision.Verdict.REJECT, won))
            else:
                won = approval.approve(by=user, shown_hash=approval.arguments_hash)
                done.append((approval.pk, Decision.Verdict.APPROVE, won))
        return done

    outcomes = at_once(*(lambda user=user: work(user) for user in reviewers))
    wait_for(lambda: Run.objects.filter(pk__in=runs, status__in=Run.FINAL_STATUSES).count() == RUNS, timeout=120)

    # Every reviewer finished without an error, and every decision it took counted.
    assert not [o for o in outcomes if isinstance(o, Exception)], [o for o in outcomes if isinstance(o, Exception)]
    taken = {pk: (user, verdict) for user, done in zip(reviewers, outcomes) for pk, verdict, won in done if won}
    assert all(won for done in outcomes for _, _, won in done)
    assert sum(len(done) for done in outcomes) == len(taken) == RUNS * CALLS_PER_RUN

    # The database agrees: one decision per call, by the reviewer that took it, none pending.
    approvals = list(Approval.objects.filter(run_id__in=runs))
    assert len(approvals) == RUNS * CALLS_PER_RUN
    decisions = Counter(Decision.objects.values_list("approval_id", flat=True))
    assert set(decisions.values()) == {1} and set(decisions) == {a.pk for a in approvals}
    for approval in approvals:
        user, verdict = taken[approval.pk]
        expected = Approval.Status.REJECTED if verdict == Decision.Verdict.REJECT else Approval.Status.APPROVED
        assert (approval.status, approval.decided_by_id) == (expected, user.pk)
        assert approval.settled_at is not None
        assert (verdict == Decision.Verdict.REJECT) == rejects(approval)
    assert sum(a.status == Approval.Status.REJECTED for a in approvals) == RUNS * CALLS_PER_RUN // 10

    # The API's side: exactly one function_result per call, none missing, none for anything else,
    # one follow-up per run; every run completed.
    per_call = results_per_call(api)
    assert set(per_call) == {a.call_id for a in approvals}
    assert [c for c, n in per_call.items() if n != 1] == []
    follow_ups = [r for r in api.requests_for(method="POST", path_suffix="/interactions")
                  if r["body"].get("previous_interaction_id")]
    assert len(follow_ups) == RUNS
    unfinished = Run.objects.filter(pk__in=runs).exclude(status=Run.Status.COMPLETED)
    assert not unfinished.exists(), list(unfinished.values_list("pk", "status", "error"))
    sent = AuditEvent.objects.filter(verb="function_result.sent", after__name="issue_refund")
    assert sent.count() == RUNS * CALLS_PER_RUN
