"""The email backend used when no mail server is configured (``DJANGO_EMAIL_BACKEND`` unset).

Nothing is sent: each message is appended to a file in ``EMAIL_FILE_PATH`` (the data folder's
``mail/`` by default; Django's file backend, one file per connection) and logged as one INFO line
naming its recipients, its subject and that file. Django's console backend, the default before,
wrote every message whole to standard output, which a Celery worker logs as WARNING lines.
"""

from __future__ import annotations

import logging

from django.core.mail.backends import filebased

log = logging.getLogger(__name__)


class EmailBackend(filebased.EmailBackend):
    def write_message(self, message) -> None:
        super().write_message(message)
        log.info(
            "Email not sent (no mail server configured) to %s: %r, kept in %s",
            ", ".join(message.recipients()), message.subject, self._fname,
        )
