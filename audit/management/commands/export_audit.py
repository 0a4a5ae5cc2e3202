"""``python manage.py export_audit --format csv|jsonl [--since ISO8601] [--until ISO8601]
[--run ID] [--actor NAME] [--verb VERB] [--tool NAME] [--as USERNAME]``

Streams the audit log to standard output, oldest first, in constant memory, and records the
export in the log. With ``--as`` the export is that user's, who must be allowed to export
(``audit.roles``); without it, the system's.
"""

from audit.models import AuditEvent
import datetime

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit import exports
from audit import roles


def moment(value: str, option: str) -> datetime.datetime:
    """An ISO 8601 date or date-time (UTC when no zone is given); ``CommandError`` otherwise."""
    parsed = parse_datetime(value)
    if parsed is None and (day := parse_date(value)) is not None:
        parsed = datetime.datetime.combine(day, datetime.time())
    if parsed is None:
        raise CommandError(f"{option} {value!r} is not an ISO 8601 date and time.")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, datetime.timezone.utc)


class Command(BaseCommand):
    help = "Stream the audit log as CSV or JSONL."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
        parser.add_argument("--since", help="Only events at or after this time (ISO 8601).")
        parser.add_argument("--until", help="Only events before this time (ISO 8601).")
        parser.add_argument("--run", type=int, help="Only events of this run.")
        parser.add_argument("--actor", default="", help="Only events by this actor (username or system:…).")
        parser.add_argument("--verb", default="", help="Only this verb (approval.approved), or a family (approval or approval.).")
        parser.add_argument("--tool", default="", help="Only events about calls of this function.")
        parser.add_argument("--as", dest="username", help="Export as this user (default: the system).")

    def handle(self, *args, **options):
        actor = self._actor(options["username"])
        filters = {
            "since": moment(options["since"], "--since") if options["since"] else None,
            "until": moment(options["until"], "--until") if options["until"] else None,
            "run_id": options["run"], "actor": options["actor"], "verb": options["verb"], "tool": options["tool"],
        }
        for line in exports.export_lines(AuditEvent.objects.filtered(**filters), options["format"]):
            self.stdout.write(line, ending="")
        exports.record_export(actor=actor, fmt=options["format"], filters=filters)

    def _actor(self, username: str | None):
        """The user named by ``--as``, who may export the audit log; the system without it."""
        if username is None:
            return "system:export_audit"
        try:
            return roles.acting_as(username, "export")
        except PermissionDenied as exc:
            raise CommandError(str(exc))
