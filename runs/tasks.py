"""Celery tasks that drive interactions. Thin: they take ids and call ``runs.execution``."""

import random

from celery import shared_task
from django.conf import settings
from google.genai import _interactions as api_errors

from runs import execution, gemini

TRANSIENT_ERRORS = (api_errors.APIConnectionError, api_errors.APIStatusError)


def retry_delay(retries: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds before retry number ``retries + 1``: exponential backoff with full jitter, so
    workers that failed together do not retry together."""
    return random.uniform(base / 2, min(cap, base * 2**retries))


@shared_task(bind=True, max_retries=settings.GEMINI_TASK_MAX_RETRIES)
def send_interaction(self, interaction_pk: int) -> None:
    """Send one recorded interaction intent (see ``execution.send``)."""
    try:
        execution.send(interaction_pk)
    except execution.StillSending as exc:
        # Another delivery holds the claim; come back when it runs out. Not counted as a retry.
        send_interaction.apply_async((interaction_pk,), countdown=exc.seconds)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            execution.give_up(interaction_pk, exc)
            return
        raise self.retry(exc=exc, countdown=retry_delay(self.request.retries))


def retry_send(interaction_pk: int) -> None:
    """Queue ``send_interaction`` after the first backoff delay, for a caller that called
    ``execution.send`` itself and met a retryable error (the intent is back to ``pending``).

    The send task queued when the intent was recorded is no retry path for such a caller: if it
    ran while that caller held the claim, it met ``StillSending`` and sleeps until the whole
    sending lease is over (``execution.sending_lease()``, 90 s by default). The claim still
    makes exactly one of them send."""
    send_interaction.apply_async((interaction_pk,), countdown=retry_delay(0))


@shared_task(bind=True, max_retries=settings.GEMINI_TASK_MAX_RETRIES)
def poll_interaction(self, interaction_pk: int) -> None:
    """``interactions.get`` a background interaction (see ``execution.poll``)."""
    try:
        execution.poll(interaction_pk)
    except gemini.MalformedResponse as exc:
        # ``retries`` counts the polls of this task that failed before this one, odd bodies and
        # transient errors alike; a poll that gets an interaction queues a fresh task, so these
        # are polls in a row that got none.
        polls = self.request.retries + 1
        if polls >= settings.POLL_MALFORMED_LIMIT:
            execution.give_up(interaction_pk, exc, polls=polls)
            return
        raise self.retry(exc=exc, countdown=retry_delay(self.request.retries),
                         max_retries=settings.POLL_MALFORMED_LIMIT)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            execution.give_up(interaction_pk, exc)
            return
        raise self.retry(exc=exc, countdown=retry_delay(self.request.retries))


@shared_task(bind=True, max_retries=settings.GEMINI_TASK_MAX_RETRIES)
def cancel_interaction(self, interaction_pk: int) -> None:
    """``interactions.cancel`` a background interaction of a cancelled run (see
    ``execution.cancel_remote``)."""
    try:
        execution.cancel_remote(interaction_pk)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            return  # the run is cancelled on Handoff's side already; the API lets it finish
        raise self.retry(exc=exc, countdown=retry_delay(self.request.retries))


@shared_task
def recover_stalled_interactions() -> None:
    """Periodic (Celery beat): see ``execution.recover_stalled``."""
    execution.recover_stalled()
