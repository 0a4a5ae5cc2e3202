"""API tokens: per user, named, scoped, with an expiry; stored as a hash, shown once.

A token is ``hnd_`` followed by 43 URL-safe characters (32 random bytes); requests send it as
``Authorization: Bearer <token>``. Handoff keeps its SHA-256 only: a token holds 256 random
bits, so a salted slow hash would add nothing but time on every request, and the digest finds
the row with one indexed lookup. The first characters (``prefix``) are kept in clear to tell
tokens apart on the tokens page.

A request made with a token acts as its user with the user's roles, limited to the token's
scopes (``audit.roles.SCOPE_ACTIONS``), and every audit event it writes names the token
(``via = "api:<name>"``).
"""

from __future__ import annotations

import copy
import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from audit import log, roles

TOKEN_PREFIX = "hnd_"
DEFAULT_EXPIRY_DAYS = 90
MAX_EXPIRY_DAYS = 366


def digest(token: str) -> str:
    """SHA-256 (hex) of ``token``: what is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self, now=None):
        """Tokens neither revoked nor expired, of active users."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__gt=now, user__is_active=True)


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="The token's first characters, to tell tokens apart.")
    scopes = models.JSONField(default=list, help_text="Some of read, run, decide, audit.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One live token per name and user, so the audit log's "api:<name>" is unambiguous.
            models.UniqueConstraint(fields=["user", "name"], condition=models.Q(revoked_at__isnull=True),
                                    name="api_token_live_name_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def via(self) -> str:
        """What the audit events written with this token carry (``AuditEvent.via``)."""
        return f"api:{self.name}"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()

    @classmethod
    def issue(cls, user, *, name: str, scopes: list[str], expires_days: int = DEFAULT_EXPIRY_DAYS,
              by=None) -> tuple[ApiToken, str]:
        """Create a token for ``user``: ``(token row, the token itself)``; the token is shown
        once and never stored. ``scopes``: some of ``audit.roles.SCOPES``; ``expires_days``:
        1 to ``MAX_EXPIRY_DAYS``. Audited as ``api_token.created`` by ``by`` (the user by default).
        Raises ``ValueError`` with a message for people on an empty name, an unknown scope, an
        expiry out of range, or a name the user already has a live token for."""
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise ValueError("A token needs a name of 1 to 100 characters.")
        unknown = sorted(set(scopes) - set(roles.SCOPES))
        if unknown or not scopes:
            raise ValueError(f"Scopes are some of {', '.join(roles.SCOPES)}"
                             + (f" (unknown: {', '.join(unknown)})." if unknown else "."))
        if not 1 <= expires_days <= MAX_EXPIRY_DAYS:
            raise ValueError(f"A token expires after 1 to {MAX_EXPIRY_DAYS} days.")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = timezone.now()
        with transaction.atomic():
            if cls.objects.filter(user=user, name=name, revoked_at__isnull=True).exists():
                raise ValueError(f"{user.get_username()} already has a token named {name!r}: revoke it or pick another name.")
            token = cls.objects.create(
                user=user, name=name, digest=digest(secret), prefix=secret[:12],
                scopes=[s for s in roles.SCOPES if s in scopes], created_at=now,
                expires_at=now + timedelta(days=expires_days),
            )
            log.record(actor=by or user, verb="api_token.created", obj=token,
                       after={"user": user.get_username(), "name": name, "scopes": token.scopes,
                              "expires_at": token.expires_at.isoformat()})
        return token, secret

    @classmethod
    def authenticate(cls, secret: str) -> ApiToken | None:
        """The usable token ``secret`` is, with its user, or ``None`` (unknown, revoked, expired,
        or its user deactivated). Marks it used, at most once a minute."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        token = cls.objects.usable().select_related("user").filter(digest=digest(secret)).first()
        if token is None:
            return None
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
            cls.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token

    def revoke(self, *, by) -> bool:
        """Revoke this token (its user's own, or an admin's doing); ``False`` when it was revoked
        already. Audited as ``api_token.revoked``."""
        with transaction.atomic():
            revoked = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
            if revoked:
                log.record(actor=by, verb="api_token.revoked", obj=self,
                           before={"user": self.user.get_username(), "name": self.name})
        self.refresh_from_db()
        return bool(revoked)

    def act_as(self):
        """The token's user, limited to its scopes for every rights check (``audit.roles``): a
        copy, so the user object others hold (``self.user``) keeps its full rights."""
        user = copy.copy(self.user)
        user.api_scopes = frozenset(self.scopes)
        user.api_token = self
        return user


class IdempotentRequest(models.Model):
    """A POST to the API sent with an ``Idempotency-Key`` (``dashboard.idempotency``): the first
    answer, kept so a retry gets it again instead of acting twice. ``owner`` is the SHA-256 of
    the request's ``Authorization`` header, so a key belongs to one token; ``fingerprint`` that
    of the method, path, query and body, so a key reused for another request is refused.
    ``status_code`` is null while the first request is being served."""

    owner = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotent_owner_key_uniq")]
        indexes = [models.Index(fields=["created_at"], name="idempotent_created_idx")]
