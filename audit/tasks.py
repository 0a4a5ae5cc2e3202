"""Celery tasks of the audit log. Thin: they take ids and call the audit modules."""

from celery import shared_task

from audit import chain, exports, log
from audit.models import ChainVerification


@shared_task
def seal_audit_chain() -> None:
    """Seal audit events whose writer stopped before it could (periodic, Celery beat)."""
    log.seal()


@shared_task
def checkpoint_audit_chain() -> None:
    """Sign a checkpoint of the audit chain's head when it moved (periodic, Celery beat). A
    chain that does not verify since the last checkpoint is not signed over: the task fails
    with ``audit.chain.ChainBroken`` naming the problem, in the worker's log, until someone looks."""
    chain.checkpoint(only_if_moved=True)


@shared_task
def write_audit_export(export_pk: int) -> None:
    """Write a large audit export to a file in the data folder, reporting progress as it goes
    (``AuditExport.rows_done``); the page offers the download once it is done."""
    exports.write_export(export_pk)


@shared_task
def verify_audit_chain(verification_pk: int) -> None:
    """Verify the audit chain for a verification asked for on the audit page."""
    verification = ChainVerification.objects.filter(pk=verification_pk, ok__isnull=True).first()
    if verification is not None:
        log.seal()
        chain.verify_and_record(verification=verification)
