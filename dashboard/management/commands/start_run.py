"""``python manage.py start_run (--model NAME | --agent NAME) --input TEXT [--tool NAME ...]
[--background] [--system TEXT] [--wait]``

Creates a run, queues it, and prints the run's id as the last line. With ``--wait`` it returns
once the run is completed, failed, cancelled or waiting for approval, and prints that status on
the line before the id (product.md, "Contracts").
"""

import time

from django.core.management.base import BaseCommand, CommandError

from approvals import tools
from runs import execution
from runs.models import Run

SETTLED = {Run.Status.COMPLETED, Run.Status.FAILED, Run.Status.CANCELLED, Run.Status.WAITING_FOR_APPROVAL}


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

    def handle(self, *args, **options):
        try:
            declarations = tools.declarations(options["tool"])
        except KeyError as exc:
            raise CommandError(exc.args[0]) from exc
        run = execution.create_run(
            model=options["model"] or "", agent=options["agent"] or "", input=options["input"],
            tools=declarations, background=options["background"], system_instruction=options["system"],
        )
        if options["wait"]:
            deadline = time.monotonic() + options["timeout"]
            while True:
                run.refresh_from_db(fields=["status"])
                if run.status in SETTLED:
                    break
                if time.monotonic() > deadline:
                    raise CommandError(f"Run {run.pk} is still {run.status} after {options['timeout']:.0f}s (is a worker running?).")
                time.sleep(0.2)
            self.stdout.write(run.status)
        self.stdout.write(str(run.pk))
