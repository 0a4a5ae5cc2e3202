"""``python manage.py seed_demo``: demo users and demo runs for a first local look.

Creates (once) the users alice and dave (reviewers; alice is also an admin), bob (engineer),
carol (auditor) and erin (finance lead), each in the groups of their roles (``audit.roles``),
and, when there are no runs yet, queues one run of each emulator scenario: a
plain answer, the order-support refund that waits for a reviewer, a refund over $1,000 that
needs two, a background agent run, and a failing interaction. Local use
only: the passwords are printed.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from approvals import tools
from approvals.models import AUDITORS_GROUP, REVIEWERS_GROUP
from approvals.policies import FINANCE_LEADS_GROUP
from audit import roles
from runs import execution
from runs.models import Run

DEMO_PASSWORD = "handoff-demo"
DEMO_USERS = {
    "alice": ("Reviewer and admin: decides function calls", [REVIEWERS_GROUP]),
    "bob": ("Engineer: starts runs, cancels and continues his own", list(roles.ROLE_GROUPS[roles.ENGINEER])),
    "carol": ("Auditor: exports the audit log", [AUDITORS_GROUP]),
    "dave": ("Reviewer: the second pair of eyes", [REVIEWERS_GROUP]),
    "erin": ("Finance lead: decides escalated refunds", [REVIEWERS_GROUP, FINANCE_LEADS_GROUP]),
}
MODEL = "gemini-3-flash-preview"


class Command(BaseCommand):
    help = "Create demo users and queue demo runs (local use only)."

    def handle(self, *args, **options):
        User = get_user_model()
        for username, (role, groups) in DEMO_USERS.items():
            user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
            if created:
                user.set_password(DEMO_PASSWORD)
                user.is_staff = username == "alice"
                user.is_superuser = username == "alice"
                user.save()
            # Every time, so demo users made before a role's group existed get it too.
            user.groups.add(*[Group.objects.get_or_create(name=g)[0] for g in groups])
            self.stdout.write(f"  {username:<6} / {DEMO_PASSWORD}   {role}")

        if Run.objects.exists():
            self.stdout.write("Runs exist already: no demo runs queued.")
            return
        if not {"lookup_order", "issue_refund"} <= tools.registry.keys():
            self.stdout.write("The demo's tools are not loaded (HANDOFF_TOOL_MODULES=approvals.demo, as `make run` "
                              "sets it): no demo runs queued.")
            return
        order_tools = tools.declarations(["lookup_order", "issue_refund"])
        bob = User.objects.get(username="bob")
        execution.create_run(
            model=MODEL, input="In two sentences: why do agents need human approval for refunds?",
            created_by=bob,
        )
        execution.create_run(
            model=MODEL, tools=order_tools, created_by=bob,
            system_instruction="You are the order-support agent of an electronics shop.",
            input="Hi, my order A-1001 arrived with a cracked headband. I'd like a refund please.",
        )
        execution.create_run(
            model=MODEL, tools=order_tools, created_by=bob,
            system_instruction="You are the order-support agent of an electronics shop.",
            input="Order A-1003 (the 4K monitor) arrived with a shattered panel. Full refund, please.",
        )
        execution.create_run(
            agent="deep-research-pro-preview-12-2025", background=True, created_by=bob,
            input="Research how support teams gate refunds issued by AI agents.",
        )
        execution.create_run(
            model=MODEL, created_by=bob, input="Summarise yesterday's tickets. [fault:failed]",
        )
        self.stdout.write("Queued 5 demo runs.")
