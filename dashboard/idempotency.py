"""``Idempotency-Key`` on every POST of the API (the IETF draft "The Idempotency-Key HTTP Header
Field", draft-ietf-httpapi-idempotency-key-header): a client that did not get an answer sends
the same request again with the same key and gets the first answer, while the action is taken
once.

- The first request with a key is served and its answer kept (``IdempotentRequest``) for
  ``KEEP`` (24 hours); a retry gets that answer again, with ``Idempotent-Replayed: true``.
- A retry while the first is still being served gets 409 with ``Retry-After`` (after ``LEASE``
  with no answer, the first is taken as lost and the retry served instead).
- The same key with another request (method, path, query or body) gets 422.
- Answers that say nothing was done are not kept, so a retry runs again: 401 (no usable token),
  429 (rate limited) and 5xx.

Keys belong to the credentials that sent them (the ``Authorization`` header's hash): another
token cannot read or replay an answer, and neither can the same token once revoked or expired. The model methods behind the API are exactly-once
already; this makes a retried POST answer as the first did instead of 409.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone

from dashboard.api import problem
from dashboard.models import ApiToken, IdempotentRequest

API_PREFIX = "/api/v1/"
HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)
LEASE = timedelta(minutes=2)
NOT_KEPT = {401, 429}


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class IdempotencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.headers.get(HEADER)
        if request.method != "POST" or key is None or not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        if not 1 <= len(key) <= 255 or not key.isprintable() or not key.isascii():
            return problem(400, "Bad Idempotency-Key", f"{HEADER}: 1 to 255 printable ASCII characters.")
        authorization = request.headers.get("Authorization", "")
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        token = ApiToken.authenticate(secret) if scheme.lower() == "bearer" else None
        request.bearer_checked = (secret, token)  # read once: dashboard.api.BearerToken takes it
        if token is None:
            # No usable token (revoked, expired, unknown): no answer is kept or given again; the
            # API answers 401.
            return self.get_response(request)
        owner = _sha256(authorization.encode())
        fingerprint = _sha256(request.method.encode(), request.get_full_path().encode(), request.body)
        now = timezone.now()
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(owner=owner, key=key, fingerprint=fingerprint,
                                                          created_at=now)
        except IntegrityError:
            record = self._existing(owner, key, fingerprint, now)
            if isinstance(record, HttpResponse):
                return record
        response = self.get_response(request)
        status = response.status_code
        if status in NOT_KEPT or status >= 500 or response.streaming:
            IdempotentRequest.objects.filter(pk=record.pk, status_code__isnull=True).delete()
            return response
        IdempotentRequest.objects.filter(pk=record.pk).update(
            status_code=status, content_type=response.get("Content-Type", ""), body=response.content)
        return response

    def _existing(self, owner: str, key: str, fingerprint: str, now) -> IdempotentRequest | HttpResponse:
        """The answer for a key seen before: the kept response, a 409 while the first is being
        served, a 422 for another request; or the record to serve anew (its first was lost)."""
        with transaction.atomic():
            record = IdempotentRequest.objects.select_for_update().filter(owner=owner, key=key).first()
            if record is None:  # pruned between the two statements: serve it as a first request
                return IdempotentRequest.objects.create(owner=owner, key=key, fingerprint=fingerprint, created_at=now)
            if record.fingerprint != fingerprint:
                return problem(422, "Idempotency-Key reused",
                               f"This {HEADER} was used for another request: use a new key for a new request.")
            if record.status_code is not None:
                response = HttpResponse(bytes(record.body), status=record.status_code,
                                        content_type=record.content_type or None)
                response["Idempotent-Replayed"] = "true"
                return response
            if now - record.created_at < LEASE:
                return problem(409, "Request in progress",
                               f"A request with this {HEADER} is being served: retry in a moment.",
                               headers={"Retry-After": "1"})
            IdempotentRequest.objects.filter(pk=record.pk).update(created_at=now)  # the first was lost
            return record


def prune(now=None) -> int:
    """Delete the answers kept longer than ``KEEP``; returns how many."""
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=(now or timezone.now()) - KEEP).delete()
    return deleted
