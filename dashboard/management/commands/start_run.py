"""``python manage.py start_run (--model NAME | --agent NAME) --input TEXT [--tool NAME ...]
[--background] [--system TEXT] [--wait] [--as USERNAME]``

Creates a run, queues it, and prints the run's id as the last line. The options are checked by
the page's own form (``dashboard.forms.StartRunForm``), so the command refuses what the page
refuses, in the page's words. With ``--as`` the run is that user's, who must be allowed to
start runs (``audit.roles``); without it the run is the system's (``Run.created_by_system``,
"system (command line)" on the pages). With ``--wait`` it returns once
the run is completed, failed, cancelled or waiting for approval, prints that status on the line
before the id (docs/contracts.md, "Contracts"), and exits non-zero when the run failed or was
cancelled.
"""

import time

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from dashboard.forms import StartRunForm
from audit import roles
from runs import execution
from runs.models import Run

SETTLED = {Run.Status.COMPLETED, Run.Status.FAILED, Run.Status.CANCELLED, Run.Status.WAITING_FOR_APPROVAL}
UNSUCCESSFUL = {Run.Status.FAILED, Run.Status.CANCELLED}
# The form's fields as the command's options name them.
OPTIONS = {"target": "--model/--agent", "name": "--model/--agent", "input": "--input", "tools": "--tool",
           "background": "--background", "system_instruction": "--system"}


class Command(BaseCommand):
    help = "Start a Gemini run (a model or an agent) and print its id."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--model", help="A model name, e.g. gemini-3-flash-preview.")
        target.add_argument("--agent", help="A managed agent, e.g. deep-research-pro-preview-12-2025.")
        parser.add_argument("--input", required=True, help="The user input text.")
        parser.add_argument("--tool", action="append", default=[], help="A registered tool name (repeatable).")
        parser.add_argument("--background", action="store_true", help="Run in the background and poll.")
        parser.add_argument("--system", default="", help="The system instruction.")
        parser.add_argument("--wait", action="store_true", help="Wait until the run settles; print its status.")
        parser.add_argument("--timeout", type=float, default=600, help="Seconds --wait waits (default 600).")
        parser.add_argument("--as", dest="username",
                            help="Start the run as this user, an existing one who may start runs "
                                 "(default: the system, named \"system (command line)\" on the pages).")

    def handle(self, *args, **options):
        user = self._user(options["username"])
        form = StartRunForm({
            "target": "agent" if options["agent"] is not None else "model",
            "name": options["agent"] if options["agent"] is not None else options["model"],
            "input": options["input"], "tools": options["tool"],
            "background": options["background"], "system_instruction": options["system"],
        })
        if not form.is_valid():
            raise CommandError(" ".join(
                f"{OPTIONS.get(name, name)}: {' '.join(errors)}" for name, errors in form.errors.items()
            ))
        run = execution.create_run(created_by=user, **form.run_options())
        if not options["wait"]:
            self.stdout.write(str(run.pk))
            return
        deadline = time.monotonic() + options["timeout"]
        while True:
            run.refresh_from_db(fields=["status", "error"])
            if run.status in SETTLED:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"Run {run.pk} is still {run.status} after {options['timeout']:.0f}s (is a worker running?).")
            time.sleep(0.2)
        self.stdout.write(run.status)
        self.stdout.write(str(run.pk))
        if run.status in UNSUCCESSFUL:
            raise CommandError(f"Run {run.pk} {run.status}" + (f": {run.error}" if run.error else "."))

    def _user(self, username: str | None):
        """The user named by ``--as``, who may start runs; ``None`` (the system, which
        ``execution.create_run`` records as such) without it. ``CommandError`` for an unknown
        name or a user who may not start runs."""
        if username is None:
            return None
        try:
            return roles.acting_as(username, "start")
        except PermissionDenied as exc:
            raise CommandError(str(exc))
