"""``python manage.py decide (APPROVAL_ID | --run RUN_ID --call-id CALL_ID)
(--approve [--arguments JSON | --result JSON] | --reject --reason TEXT) --as USERNAME``

Decides one pending approval from a terminal under the same rules as the page: the user must
have the reviewer role (``audit.roles``) and be in the call's approver group, the JSON is read by
the page's own forms (``--arguments`` edits then approves, checked against the tool's schema;
``--result`` answers a call whose tool has no body in Handoff), a rejection needs a reason, and
a call already decided is not decided again. Errors name the thing, for a person.
"""

import json

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from approvals.forms import ApproveForm, EditForm
from approvals.models import Approval, DecisionRefused
from audit import roles


def form_errors(form, options: dict[str, str]) -> str:
    """A form's errors as one line per field, each named by its command-line option."""
    return " ".join(
        f"{options.get(name, name)}: {' '.join(errors)}" for name, errors in form.errors.items()
    )


class Command(BaseCommand):
    help = "Approve (optionally with edited arguments) or reject a pending function call."

    def add_arguments(self, parser):
        parser.add_argument("approval_id", nargs="?", type=int)
        parser.add_argument("--run", type=int, help="The run's id (with --call-id).")
        parser.add_argument("--call-id", help="The function call's call_id (with --run).")
        decision = parser.add_mutually_exclusive_group(required=True)
        decision.add_argument("--approve", action="store_true")
        decision.add_argument("--reject", action="store_true")
        parser.add_argument("--arguments", help="JSON object: edit the call's arguments, then approve them.")
        parser.add_argument("--result", help="JSON result for a call whose tool has no body in Handoff.")
        parser.add_argument("--reason", default="", help="Why the call is rejected (required with --reject).")
        parser.add_argument("--as", dest="username", required=True, help="The reviewer deciding.")

    def handle(self, *args, **options):
        if options["reject"] and (options["arguments"] is not None or options["result"] is not None):
            raise CommandError("--arguments and --result go with --approve.")
        if options["arguments"] is not None and options["result"] is not None:
            raise CommandError("Give --arguments or --result, not both.")
        try:
            user = roles.acting_as(options["username"], "decide")
        except PermissionDenied as exc:
            raise CommandError(str(exc))
        approval = self._approval(options)
        self.stdout.write(
            f"{approval.function_name}({json.dumps(approval.current_arguments, sort_keys=True)}) "
            f"call_id={approval.call_id} run={approval.run_id}"
        )
        try:
            if options["approve"]:
                won = approval.approve(by=user, shown_hash=approval.arguments_hash, **self._approval_input(approval, options))
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

    def _approval_input(self, approval: Approval, options) -> dict:
        """``arguments`` or ``result`` for ``Approval.approve``, cleaned by the forms the page
        posts (same JSON parsing, same schema check); ``CommandError`` naming the option."""
        shown = approval.arguments_hash
        if options["arguments"] is not None:
            form = EditForm({"shown_hash": shown, "arguments": options["arguments"]},
                            function_name=approval.function_name, current=approval.current_arguments)
            if not form.is_valid():
                raise CommandError(form_errors(form, {"arguments": "--arguments"}))
            return {"arguments": form.cleaned_data["arguments"]}
        if options["result"] is not None:
            form = ApproveForm({"shown_hash": shown, "result": options["result"]}, requires_result=True)
            if not form.is_valid():
                raise CommandError(form_errors(form, {"result": "--result"}))
            return {"result": form.cleaned_data["result"]}
        return {}

    def _approval(self, options) -> Approval:
        if options["approval_id"] is not None:
            lookup, name = {"pk": options["approval_id"]}, f"approval {options['approval_id']}"
        elif options["run"] and options["call_id"]:
            lookup = {"run_id": options["run"], "call_id": options["call_id"]}
            name = f"approval for call {options['call_id']} in run {options['run']}"
        else:
            raise CommandError("Give an APPROVAL_ID, or --run and --call-id.")
        try:
            return Approval.objects.select_related("run").get(**lookup)
        except Approval.DoesNotExist:
            raise CommandError(f"No {name}.")
        except Approval.MultipleObjectsReturned:
            raise CommandError(f"Several approvals have call {options['call_id']} in run {options['run']}: give the APPROVAL_ID.")
