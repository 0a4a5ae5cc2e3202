"""``Run.pending_approvals`` follows the run's pending approvals through every path that
changes one, because a database trigger keeps it, not the code of each path."""

from django.db import connection, transaction

from approvals.models import Approval, expire_for_cancelled_run
from runs.models import Interaction, Run
from tests.conftest import on_sqlite
from tests.factories import (
    function_call, make_approval, make_interaction, make_pending_approval, make_run, make_step, requested_call,
)


def pending_of(run: Run) -> int:
    run.refresh_from_db(fields=["pending_approvals"])
    return run.pending_approvals


def counted(run: Run) -> int:
    return Approval.objects.filter(run=run, status=Approval.Status.PENDING).count()


def test_a_call_that_waits_for_a_person_counts_on_its_run_and_one_that_runs_at_once_does_not(db):
    waiting = requested_call("issue_refund", {"order_id": "A-1", "amount": 900.0, "reason": "Damaged"})
    at_once = requested_call("lookup_order", {"order_id": "A-1"})

    assert waiting.status == Approval.Status.PENDING and pending_of(waiting.run) == 1
    assert pending_of(at_once.run) == 0 == counted(at_once.run)


def test_a_decision_takes_the_call_off_the_count(db, alice):
    approval = requested_call("issue_refund", {"order_id": "A-1", "amount": 900.0, "reason": "Damaged"})

    assert approval.reject(by=alice, shown_hash=approval.arguments_hash, reason="No photos.")

    assert pending_of(approval.run) == 0 == counted(approval.run)


def test_parallel_calls_count_one_each_and_a_cancel_clears_them_all(db):
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    interaction = make_interaction(run, status=Interaction.Status.REQUIRES_ACTION)
    for order in ("A-1", "A-2", "A-3"):
        make_approval(interaction, make_step(interaction, function_call(arguments={"order_id": order, "amount": 300.0})))
    assert pending_of(run) == 3

    with transaction.atomic():
        expire_for_cancelled_run(run=run, by=None)

    assert pending_of(run) == 0 == counted(run)


def test_writes_around_the_models_keep_the_count_too(db):
    """SQL, a queryset update, a delete: the trigger sees them all."""
    first, second = make_pending_approval(), make_pending_approval()
    Approval.objects.filter(pk=first.pk).update(status=Approval.Status.EXPIRED)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE approvals_approval SET status = 'pending' WHERE id = %s", [first.pk])
        cursor.execute("UPDATE approvals_approval SET run_id = %s WHERE id = %s", [second.run_id, first.pk])
    assert (pending_of(first.run), pending_of(second.run)) == (0, 2)

    Approval.objects.filter(pk=first.pk).delete()

    assert pending_of(second.run) == 1 == counted(second.run)


def test_saving_a_pending_approval_without_changing_its_status_changes_nothing(db):
    approval = make_pending_approval()
    approval.reason = "still waiting"
    approval.save()

    assert pending_of(approval.run) == 1


SQLITE_SCRIPT = """
import json
from approvals.models import Approval
from tests.factories import make_pending_approval
approval = make_pending_approval()
after_create = type(approval.run).objects.get(pk=approval.run_id).pending_approvals
Approval.objects.filter(pk=approval.pk).update(status="expired")
after_expire = type(approval.run).objects.get(pk=approval.run_id).pending_approvals
print(json.dumps([after_create, after_expire]))
"""


def test_on_sqlite_the_embedded_default_the_count_is_kept_the_same_way(tmp_path):
    assert on_sqlite(tmp_path, SQLITE_SCRIPT) == [1, 0]
