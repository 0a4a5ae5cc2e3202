"""Every page, as every role, on a laptop (1440 px) and a phone (390 px): the page itself never
scrolls sideways (a wide table scrolls inside its card), and axe-core finds no serious or
critical accessibility violation. A page a role may not see is checked all the same: it is the
403 page that role gets.

One test per role (one browser context, one sign-in, data seeded once); each page and width is
a subtest, so a failure names the page, the role and the width. The reviewer's pages are saved
as full-page screenshots, ``every-page-<page>-<width>.png``, and every role's axe findings (all
impacts) in ``test-artifacts/axe/<role>.json``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth.models import Group
from django.utils import timezone

from approvals import tools
from audit import roles
from audit.models import AuditExport
from dashboard.models import ApiToken
from runs import execution
from runs.models import Interaction, Run
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.conftest import make_user, wait_for
from tests.factories import function_call, make_approval, make_interaction, make_run, make_step, text_output

WIDTHS = (1440, 390)
AXE_FINDINGS = Path(__file__).resolve().parents[2] / "test-artifacts" / "axe"
# What fails the check; moderate and minor findings are written to AXE_FINDINGS only.
BLOCKING = {"serious", "critical"}

# The demo roles (audit.roles.ROLES): a username and its groups.
ROLES = {
    "viewer": ("vera", ()),
    "engineer": ("bob", ("engineers",)),
    "reviewer": ("alice", ("reviewers",)),
    "auditor": ("carol", ("auditors",)),
    "admin": ("ada", ("admins",)),
}
SCREENSHOT_ROLE = "reviewer"
# Whose pages are saved as screenshots: the reviewer's, and the pages the reviewer may not see
# (a 403 for them) as the engineer sees them; the signed-out pages.
SCREENSHOTS_OF = {
    "reviewer": {"home", "run-list", "run-steps", "run-waiting", "run-failed", "start-run", "approval-queue",
                 "approval", "approval-unknown-tool", "bulk", "audit-log", "audit-export", "password-change",
                 "login", "not-found", "track", "api-tokens"},
    "engineer": {"start-run", "track"},
    "signed-out": {"login", "login-refused", "not-found-signed-out", "locked-out"},
}

# Long values with no place to break, as agents and APIs produce them: they are what pushes a
# page wider than a phone.
LONG_TOOL = "lookup_order_history_across_every_warehouse_and_carrier_for_the_customer"
LONG_URL = ("https://support.example.com/orders/A-1003/attachments/"
            "photo-of-the-shattered-panel-taken-on-arrival-2026-11-30T18:04:59Z-IMG_20261130_180459.jpg")
LONG_INPUT = (f"Order A-1003 (the 4K monitor) arrived with a shattered panel, see {LONG_URL} "
              "and the courier's note; a full refund to the original card, please.")
LONG_ERROR = ("400 INVALID_ARGUMENT: {'error': {'code': 400, 'message': 'Request contains an invalid "
              "argument: tools[0].function_declarations[0].parameters.properties."
              f"{LONG_TOOL}.items.properties.shipment_tracking_identifiers_by_carrier', "
              "'status': 'INVALID_ARGUMENT'}}\nRetry: no (a permanent error)")
LONG_ARGUMENTS = {
    "order_id": "A-1003",
    "amount": 1450.0,
    "reason": "Damaged in transit: the panel is shattered across the whole width, the stand is bent",
    "evidence": LONG_URL,
    "customer_reference": "CUST-00000000000000000000000000000000000000000000000000000042",
}


def seed(users: dict[str, object], worker_done) -> dict[str, str]:
    """Runs, calls, audit events and export jobs with long values; returns ``{page: path}`` for
    the pages every role visits (the export job is each user's own, looked up per role)."""
    bob = users["engineer"]
    now = timezone.now()
    for i in range(30):
        make_run(input=f"Routine question {i}: where is order A-{2000 + i}? {LONG_URL}" if i % 3 == 0
                 else f"Routine question {i}", output_text="Answered.", total_tokens=100 + i,
                 created_at=now - timedelta(hours=2, minutes=i), created_by=bob,
                 tool_names=f",lookup_order,{LONG_TOOL},")
    failed = make_run(status=Run.Status.FAILED, input=LONG_INPUT, error=LONG_ERROR, created_by=bob,
                      created_at=now - timedelta(minutes=30), tool_names=f",{LONG_TOOL},")
    make_interaction(failed, status=Interaction.Status.FAILED, error=LONG_ERROR)

    # A run waiting for two calls: a registered refund with long arguments, and a tool Handoff
    # does not know, with a long name (answered by hand).
    waiting = make_run(status=Run.Status.WAITING_FOR_APPROVAL, input=LONG_INPUT, created_by=bob,
                       tools=tools.declarations(["lookup_order", "issue_refund"]),
                       tool_names=f",lookup_order,issue_refund,{LONG_TOOL},")
    interaction = make_interaction(waiting, status=Interaction.Status.REQUIRES_ACTION)
    make_step(interaction, {"type": "user_input", "content": [{"type": "text", "text": LONG_INPUT}]})
    make_step(interaction, text_output(f"I will look the order up and refund it. Evidence: {LONG_URL}"))
    refund = make_approval(interaction, make_step(interaction, function_call("issue_refund", LONG_ARGUMENTS)),
                           policy=f"Refunds above $1,000 need two reviewers ($1,450.00). {LONG_URL}")
    unknown = make_approval(interaction, make_step(interaction, function_call(LONG_TOOL, {"customer": LONG_URL})),
                            policy="Not a registered tool: answer it by hand or reject it.")

    # Every step type (the emulator's showcase, through the worker), and a decided call for the
    # audit log.
    showcase = execution.create_run(model="gemini-3-flash-preview", input="Show every step type [showcase:all_steps]",
                                    created_by=bob)
    wait_for(lambda: Run.objects.filter(pk=showcase.pk, status=Run.Status.COMPLETED).exists())
    decided = make_run(status=Run.Status.WAITING_FOR_APPROVAL, input=LONG_INPUT, created_by=bob)
    decided_interaction = make_interaction(decided, status=Interaction.Status.REQUIRES_ACTION)
    decided_call = make_approval(decided_interaction,
                                 make_step(decided_interaction, function_call("issue_refund", LONG_ARGUMENTS | {"amount": 249.0})))
    decided_call.reject(by=users["reviewer"], shown_hash=decided_call.arguments_hash,
                        reason=f"The photo does not show this order: {LONG_URL}")
    worker_done()

    for user in users.values():
        AuditExport.objects.create(requested_by=user, format="csv", status=AuditExport.Status.DONE,
                                   rows_total=1234, rows_done=1234, file_name="handoff-audit.csv",
                                   sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                                   filters={"verb": "approval.", "tool": LONG_TOOL}, finished_at=now)
        # API tokens of their own, one with a long name; and API events in the audit log.
        ApiToken.issue(user, name="refund-bot", scopes=["read"])
        ApiToken.issue(user, name=f"deploy-{LONG_TOOL}"[:100], scopes=list(roles.SCOPES))
    return {
        "home": "/",
        "run-list": "/runs/",
        "run-steps": showcase.get_absolute_url(),
        "run-waiting": waiting.get_absolute_url(),
        "run-failed": failed.get_absolute_url(),
        "start-run": "/runs/new/",
        "approval-queue": "/approvals/",
        "approval": f"/approvals/{refund.pk}/",
        "approval-unknown-tool": f"/approvals/{unknown.pk}/",
        "bulk": f"/approvals/bulk/?ids={refund.pk}&ids={unknown.pk}",
        "audit-log": "/audit/",
        "audit-export": None,  # the user's own job
        "password-change": "/accounts/password_change/",
        "api-tokens": "/account/tokens/",
        "login": "/accounts/login/",
        "not-found": "/runs/999999/",
    }


def post_track_form(page, live_server) -> None:
    """The track page is the answer to a refused track form (400): post an interaction id that
    is long and malformed, as a person pasting the wrong thing would, from the start page's
    form, or (for a role without that page) from a form made on the home page."""
    page.goto(f"{live_server.url}/")
    with page.expect_navigation():
        page.evaluate("""(id) => {
        const form = document.createElement("form");
        form.method = "post"; form.action = "/runs/track/";
        for (const [name, value] of [["interaction_id", id],
             ["csrfmiddlewaretoken", document.querySelector("[name=csrfmiddlewaretoken]").value]]) {
            const input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = value; form.append(input);
        }
        document.body.append(form); form.submit();
    }""", f"v1_{'x' * 120}/{LONG_TOOL}")


# The document's width and, when it is wider than the window, what sticks out past the window's
# right edge: the outermost such elements outside anything that scrolls or clips them (an
# absolutely positioned one escapes the scrollers between it and its containing block), and
# elements whose own content (a long word) runs out of them.
MEASURE = """() => {
    const doc = document.documentElement, limit = window.innerWidth + 0.5;
    const result = {scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, culprits: []};
    if (doc.scrollWidth <= window.innerWidth) return result;
    const edge = (el) => el.getBoundingClientRect().right + window.scrollX;
    const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
        [...el.classList].map((c) => "." + c).join("");
    const clipped = (el) => {
        const positioned = ["absolute", "fixed"].includes(getComputedStyle(el).position);
        let a = positioned ? el.offsetParent : el.parentElement;
        for (; a && a !== doc && a !== document.body; a = a.parentElement) {
            if (getComputedStyle(a).overflowX !== "visible" && edge(a) <= limit) return true;
        }
        return false;
    };
    const boxes = [], texts = [];
    for (const el of document.body.querySelectorAll("*")) {
        if (clipped(el)) continue;
        const right = edge(el), content = el.getBoundingClientRect().left + window.scrollX + el.scrollWidth;
        if (right > limit && edge(el.parentElement) <= limit) {
            boxes.push(`${name(el)} (to ${Math.round(right)} px)`);
        } else if (right <= limit && content > limit && getComputedStyle(el).overflowX === "visible") {
            texts.push([el, `the content of ${name(el)} (to ${Math.round(content)} px)`]);
        }
    }
    // Of the elements whose content runs out, the innermost: their ancestors' runs out with it.
    const innermost = texts.filter(([el]) => !texts.some(([other]) => other !== el && el.contains(other)));
    result.culprits = [...boxes, ...innermost.map(([, text]) => text)].slice(0, 8);
    return result;
}"""


def check_width(page, name: str, role: str, width: int) -> None:
    measured = page.evaluate(MEASURE)
    assert measured["scrollWidth"] <= measured["innerWidth"], (
        f"{name} as {role} at {width} px: the page is {measured['scrollWidth']} px wide in a "
        f"{measured['innerWidth']} px window; sticking out: {', '.join(measured['culprits']) or '?'}"
    )


def blocking_violations(results: dict) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {', '.join(str(n['target']) for n in v['nodes'][:5])}"
        for v in results["violations"] if v["impact"] in BLOCKING
    ]


@pytest.fixture
def users(transactional_db) -> dict[str, object]:
    made = {}
    for role, (username, groups) in ROLES.items():
        made[role] = make_user(username, *groups)
    assert Group.objects.filter(name="admins").exists()
    return made


def visit_at_each_width(page, subtests, role: str, name: str, go, findings: dict[str, list]) -> None:
    """Open page ``name`` (``go()`` navigates to it) at 1440 px, run axe on it, then check its
    width at each width: the window is resized rather than the page loaded again (the layout
    is CSS alone, so it is the same page a phone loads, at half the cost; and a form's answer
    is not posted twice). Saves its screenshots when ``role`` is one they are kept for."""
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    go()
    results = Axe().run(page).response
    findings[name] = [{k: v[k] for k in ("id", "impact", "help")}
                      | {"nodes": [{"target": n["target"], "html": n["html"][:300],
                                    "summary": n.get("failureSummary", "")} for n in v["nodes"][:5]]}
                      for v in results["violations"]]
    with subtests.test(msg="passes axe", page=name, role=role):
        blocked = blocking_violations(results)
        assert not blocked, f"{name} as {role}: " + "; ".join(blocked)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        with subtests.test(msg="fits the window", page=name, role=role, width=width):
            check_width(page, name, role, width)
        if name in SCREENSHOTS_OF.get(role, ()):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            suffix = "" if role == SCREENSHOT_ROLE else f"-{role}"
            page.screenshot(path=str(SCREENSHOTS / f"every-page-{name}{suffix}-{width}.png"), full_page=True)


def save_findings(role: str, findings: dict[str, list]) -> None:
    AXE_FINDINGS.mkdir(parents=True, exist_ok=True)
    (AXE_FINDINGS / f"{role}.json").write_text(json.dumps(findings, indent=1))


@pytest.mark.parametrize("role", list(ROLES))
def test_every_page_fits_the_window_and_passes_axe(worker, live_server, browser, subtests, users, role):
    def worker_done():
        # The showcase run polls once more after it completes; the pages are read once the
        # worker is quiet (the fixture waits too, at the end).
        from celery.worker import state

        wait_for(lambda: not state.active_requests, timeout=30)

    pages = seed(users, worker_done)
    user = users[role]
    pages["audit-export"] = f"/audit/exports/{AuditExport.objects.get(requested_by=user).pk}/"

    findings: dict[str, list] = {}
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, live_server, user)
        for name, path in pages.items():
            visit_at_each_width(page, subtests, role, name, lambda: page.goto(f"{live_server.url}{path}"), findings)
        visit_at_each_width(page, subtests, role, "track", lambda: post_track_form(page, live_server), findings)
    finally:
        context.close()
        save_findings(role, findings)


def test_the_signed_out_pages_fit_the_window_and_pass_axe(live_server, browser, subtests, users):
    role, findings = "signed-out", {}
    user = users["reviewer"]
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)

    def wrong_password(times: int):
        def go():
            for _ in range(times):
                page.goto(f"{live_server.url}/accounts/login/")
                page.get_by_label("Username").fill(user.username)
                page.get_by_label("Password").fill("not the password")
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_load_state()
        return go

    try:
        visit_at_each_width(page, subtests, role, "login", lambda: page.goto(f"{live_server.url}/accounts/login/"),
                            findings)
        visit_at_each_width(page, subtests, role, "login-refused", wrong_password(1), findings)
        visit_at_each_width(page, subtests, role, "not-found-signed-out",
                            lambda: page.goto(f"{live_server.url}/no-such-page/{LONG_TOOL}"), findings)
        # django-axes: the fifth wrong password in a row locks the username out (settings).
        visit_at_each_width(page, subtests, role, "locked-out", wrong_password(4), findings)
        assert "Sign-in locked" in page.content()
    finally:
        context.close()
        save_findings(role, findings)
