from celery import shared_task

from dashboard import idempotency


@shared_task(name="dashboard.tasks.prune_idempotency_keys")
def prune_idempotency_keys() -> int:
    """Forget the API answers kept for ``Idempotency-Key`` retries once they are a day old."""
    return idempotency.prune()
