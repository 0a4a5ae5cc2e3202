"""Celery tasks for function calls. Thin: they take ids and call model methods."""

from celery import shared_task

from approvals.models import Approval


@shared_task
def execute_function_call(approval_pk: int) -> None:
    """Run the tool body of a settled-to-run call and send on its result (``Approval.execute``)."""
    Approval.objects.get(pk=approval_pk).execute()
