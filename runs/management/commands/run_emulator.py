"""``python manage.py run_emulator``: serve the Interactions API emulator until stopped.

Point the SDK at it with ``GEMINI_API_KEY=anything`` and
``GOOGLE_GEMINI_BASE_URL=http://HOST:PORT``. The emulator keeps its interactions
in a SQLite file in the data folder (``DATA_DIR/emulator/interactions.sqlite3``;
``--state FILE`` names another, ``--state=`` keeps them in memory only), so a
restart changes nothing: a follow-up chained onto an interaction created before
it still finds it. It touches neither the database nor any model.
"""

from __future__ import annotations

import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.emulator import EmulatorServer, StoreInUse


def _time_tag() -> str:
    """Seconds since the epoch in base 36 (e.g. ``"t3m5q1k"``): a per-start id tag."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    value, tag = int(time.time()), ""
    while value:
        value, remainder = divmod(value, 36)
        tag = digits[remainder] + tag
    return "t" + tag


class Command(BaseCommand):
    help = "Serve the local Gemini Interactions API emulator until interrupted."
    # The emulator depends on neither the database nor the project's models,
    # so a half-configured project must not keep it from starting.
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1",
                            help="Address to bind (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8765,
                            help="Port to bind; 0 picks a free one (default 8765).")
        parser.add_argument(
            "--background-polls", type=int, default=3,
            help="How many gets a background interaction answers before it finishes (default 3).",
        )
        parser.add_argument(
            "--id-tag", default=None,
            help="Text put into every interaction and call id. Defaults to a tag derived from the "
                 "start time, so ids never repeat across restarts against the same database; "
                 "pass --id-tag= for fully deterministic ids.",
        )
        parser.add_argument(
            "--state", default=None,
            help="SQLite file the interactions are kept in across restarts (default: "
                 "emulator/interactions.sqlite3 in the data folder); --state= keeps them in "
                 "memory only.",
        )

    def handle(self, *args, **options) -> None:
        id_tag = _time_tag() if options["id_tag"] is None else options["id_tag"]
        state = options["state"]
        if state is None:
            state = settings.DATA_DIR / "emulator" / "interactions.sqlite3"
        try:
            server = EmulatorServer(
                host=options["host"], port=options["port"],
                background_polls=options["background_polls"], id_tag=id_tag,
                state_path=state or None,
            ).start()
        except StoreInUse as error:
            raise CommandError(str(error)) from error
        # Signal handlers can only be installed from the main thread; elsewhere
        # (e.g. call_command in a test thread) the caller stops the process. Installed before the
        # "listening" line: whoever waits for that line may send SIGTERM at once (honcho, a test).
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda signum, frame: server.stop())
        self.stdout.write(f"Interactions API emulator listening on {server.url}")
        self.stdout.write(f"Interactions kept in {state}" if state else "Interactions kept in memory only")
        self.stdout.flush()
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
