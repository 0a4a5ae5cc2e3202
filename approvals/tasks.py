"""Celery tasks for function calls. Thin: they take ids and call model methods."""

from celery import shared_task

from approvals import notifications
from approvals.models import Approval, StillExecuting
from runs import execution
from runs.tasks import TRANSIENT_ERRORS, retry_send

# Seconds: the longest countdown a task here is given (see dashboard/settings.py, the broker's
# visibility timeout, which must stay above it).
RECHECK_CAP = 60.0


@shared_task
def execute_function_call(approval_pk: int) -> None:
    """Run the tool body of a settled-to-run call (``Approval.execute``) and, when that settled
    the interaction's last call, send the follow-up interaction right here.

    Sending inline saves the follow-up a trip through the broker (the time from a reviewer's
    click to the API). The send task queued when the follow-up was recorded still runs: the
    claim on the intent makes one of the two send. When the inline send meets a transient error
    it queues the retry itself, with backoff (``runs.tasks.retry_send``): the queued task may be
    waiting out this send's claim for the whole lease."""
    approval = Approval.objects.get(pk=approval_pk)
    try:
        ran = approval.execute()
    except StillExecuting as exc:
        # A redelivery while the first worker may still run the body: come back when its claim
        # has run out, to settle the call if that worker died. Never later than RECHECK_CAP
        # seconds: a task waiting on its countdown is held unacknowledged, and Redis hands it to
        # another worker once the broker's visibility timeout passes.
        execute_function_call.apply_async((approval_pk,), countdown=min(exc.seconds, RECHECK_CAP))
        return
    if not ran or approval.follow_up is None:
        return
    try:
        execution.send(approval.follow_up.pk)
    except execution.StillSending:
        pass  # the queued send task holds the claim; it retries its own errors
    except TRANSIENT_ERRORS:
        retry_send(approval.follow_up.pk)  # the intent is back to pending: the backoff starts here


@shared_task(bind=True, max_retries=5)
def send_notifications(self, approval_pk: int, event: str) -> None:
    """Email the deciding group and call the webhook about an approval (``notifications``).
    The webhook is retried with backoff; email goes through Django's backend once."""
    approval = Approval.objects.select_related("run").get(pk=approval_pk)
    if self.request.retries == 0:
        notifications.email(approval, event)
    try:
        notifications.webhook(approval, event)
    except OSError as exc:
        raise self.retry(exc=exc, countdown=2 ** self.request.retries)


@shared_task
def enforce_deadlines() -> None:
    """The periodic job (Celery beat): reminders, escalations and expiries of approvals, and
    calls whose execution was lost with its worker."""
    Approval.enforce_deadlines()
    Approval.recover_stalled()
