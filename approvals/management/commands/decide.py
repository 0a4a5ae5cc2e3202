"""``python manage.py decide (APPROVAL_ID | --run RUN_ID --call-id CALL_ID)
(--approve [--result JSON] | --reject --reason TEXT) --as USERNAME``

Decides one pending approval from a terminal under the same rules as the page: the user must be
a reviewer, a rejection needs a reason, and a call already decided is not decided again.
"""

import json

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from approvals.models import Approval, DecisionRefused


class Command(BaseCommand):
    help = "Approve or reject a pending function call."

    def add_arguments(self, parser):
        parser.add_argument("approval_id", nargs="?", type=int)
        parser.add_argument("--run", type=int, help="The run's id (with --call-id).")
        parser.add_argument("--call-id", help="The function call's call_id (with --run).")
        decision = parser.add_mutually_exclusive_group(required=True)
        decision.add_argument("--approve", action="store_true")
        decision.add_argument("--reject", action="store_true")
        parser.add_argument("--result", help="JSON result for a call whose tool has no body in Handoff.")
        parser.add_argument("--reason", default="", help="Why the call is rejected (required with --reject).")
        parser.add_argument("--as", dest="username", required=True, help="The reviewer deciding.")

    def handle(self, *args, **options):
        approval = self._approval(options)
        try:
            user = get_user_model().objects.get(username=options["username"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {options['username']!r}.")
        result = None
        if options["result"] is not None:
            try:
                result = json.loads(options["result"])
            except ValueError as exc:
                raise CommandError(f"--result is not JSON: {exc}")
        self.stdout.write(
            f"{approval.function_name}({json.dumps(approval.arguments, sort_keys=True)}) "
            f"call_id={approval.call_id} run={approval.run_id}"
        )
        try:
            if options["approve"]:
                won = approval.approve(by=user, shown_hash=approval.arguments_hash, result=result)
            else:
                won = approval.reject(by=user, shown_hash=approval.arguments_hash, reason=options["reason"])
        except (PermissionDenied, DecisionRefused) as exc:
            raise CommandError(str(exc))
        if not won:
            raise CommandError(
                f"Approval {approval.pk} was already {approval.status}"
                + (f" by {approval.decided_by.get_username()}" if approval.decided_by else "") + "."
            )
        if approval.is_pending:
            self.stdout.write(
                f"{approval.approvals_so_far()} of {approval.approvals_required} approvals: waiting for another reviewer"
            )
        self.stdout.write(f"{approval.status} {approval.pk}")

    def _approval(self, options) -> Approval:
        if options["approval_id"] is not None:
            lookup = {"pk": options["approval_id"]}
        elif options["run"] and options["call_id"]:
            lookup = {"run_id": options["run"], "call_id": options["call_id"]}
        else:
            raise CommandError("Give an APPROVAL_ID, or --run and --call-id.")
        try:
            return Approval.objects.select_related("run").get(**lookup)
        except Approval.DoesNotExist:
            raise CommandError(f"No approval matches {lookup}.")
        except Approval.MultipleObjectsReturned:
            raise CommandError(f"Several approvals match {lookup}: give the APPROVAL_ID.")
