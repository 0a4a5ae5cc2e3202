"""``python manage.py create_api_token --user USERNAME [--name NAME] [--scope SCOPE ...]
[--expires-days N]``

Creates an API token for USERNAME (``dashboard.models.ApiToken.issue``) and prints it as the last
line of its output: the only time it is shown. ``--scope`` is repeatable (read, run, decide,
audit; default read); the token may never do more than its user's roles allow. Audited as
``api_token.created`` by ``system:command``.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit import roles
from dashboard.models import DEFAULT_EXPIRY_DAYS, ApiToken


class Command(BaseCommand):
    help = "Create an API token for a user and print it (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="The token's user (a username).")
        parser.add_argument("--name", default="", help="What the token is for (default: command line <date>).")
        parser.add_argument("--scope", action="append", choices=roles.SCOPES, default=[],
                            help="read, run, decide or audit (repeatable; default read).")
        parser.add_argument("--expires-days", type=int, default=DEFAULT_EXPIRY_DAYS,
                            help=f"Days until it expires (default {DEFAULT_EXPIRY_DAYS}).")

    def handle(self, *args, **options):
        try:
            user = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {options['user']!r}.") from None
        name = options["name"] or f"command line {timezone.now():%Y-%m-%d %H:%M:%S}"
        try:
            token, secret = ApiToken.issue(user, name=name, scopes=options["scope"] or ["read"],
                                           expires_days=options["expires_days"], by="system:command")
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Token {token.name!r} for {user.get_username()}: scopes {', '.join(token.scopes)}, "
                          f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC. It is shown once:")
        self.stdout.write(secret)
