"""Sign-ins and failed sign-ins as audit events (Django's ``user_logged_in`` and
``user_login_failed`` signals, connected in ``AuditConfig.ready``)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import transaction
from django.dispatch import receiver

from audit.log import record


@receiver(user_logged_in, dispatch_uid="handoff-audit-signed-in")
def on_signed_in(sender, request, user, **kwargs) -> None:
    with transaction.atomic():
        record(actor=user, verb="user.signed_in", obj=user)


@receiver(user_login_failed, dispatch_uid="handoff-audit-sign-in-failed")
def on_sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    with transaction.atomic():
        record(actor=username or "anonymous", verb="user.sign_in_failed", obj=None, object_type="user",
               object_id=username, after={"path": request.path if request else ""})
