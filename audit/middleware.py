"""The audit log's two middlewares: the request id every event written while serving a request
carries, and an event for every 403 answered to a signed-in user."""

from __future__ import annotations

import re
import uuid

from django.db import transaction

from audit.context import request_id, via
from audit.log import record

# What an incoming X-Request-ID may look like (a UUID, a proxy's or tracer's id): 1 to 64 ASCII
# letters, digits and ``. _ : -``. Anything else (a newline, markup, kilobytes) is replaced, so a
# client cannot write into the audit log or the response headers through it.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestIdMiddleware:
    """Tags audit events written while serving a request with its id (``X-Request-ID`` when a
    proxy set one that matches ``REQUEST_ID``, else a new UUID as 32 hex digits), and returns it
    in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        value = request.headers.get("X-Request-ID", "")
        if not REQUEST_ID.fullmatch(value):
            value = uuid.uuid4().hex
        token = request_id.set(value)
        # An API token sets ``via`` once it is read (dashboard.api); no request inherits another's.
        via_token = via.set("")
        try:
            response = self.get_response(request)
        finally:
            via.reset(via_token)
            request_id.reset(token)
        response["X-Request-ID"] = value
        return response


class AccessDeniedMiddleware:
    """Records every 403 answered to a signed-in user as a ``user.denied`` event (who, which
    path and method)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 403 and request.user.is_authenticated:
            with transaction.atomic():
                record(actor=request.user, verb="user.denied", obj=request.user,
                       after={"path": request.path, "method": request.method})
        return response

