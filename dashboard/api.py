"""The REST API, ``/api/v1/``: django-ninja (pydantic schemas, OpenAPI 3.1 at
``/api/v1/openapi.json``, Swagger UI at ``/api/v1/docs`` from django-ninja's own static files).

Every request carries ``Authorization: Bearer <token>`` (``dashboard.models.ApiToken``): it acts
as the token's user, with the user's roles limited to the token's scopes, and the audit events it
writes carry ``via = "api:<token name>"``. Decisions go through the same model methods as the
pages (``Approval.approve``, ``reject``, ``claim``, ``release``), so the same rules hold: rights,
policy, four-eyes, the arguments hash, exactly once.

Errors are ``application/problem+json`` (RFC 9457): ``{"type", "title", "status", "detail"}``,
plus ``errors: [{"field", "message"}]`` for invalid input. 401 for a missing, unknown, revoked or
expired token; 403 for a refusal (the reason in ``detail``); 404; 409 when the call was decided
or changed first (a lost race, stale arguments); 422 for invalid input.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.http import urlencode
from google.genai import _interactions as api_errors
from ninja import NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.security import HttpBearer
from ninja.throttling import SimpleRateThrottle

from approvals.forms import QueueFilterForm
from approvals.models import Approval, DecisionRefused
from audit import context, exports, log, roles
from audit.forms import AuditFilterForm
from audit.models import AuditEvent, ChainVerification
from dashboard.forms import StartRunForm
from dashboard.models import ApiToken
from runs import execution, gemini
from runs.models import Run, Step

PROBLEM = "application/problem+json"


class BearerToken(HttpBearer):
    """``Authorization: Bearer <token>``: the request then acts as the token's user, limited to
    its scopes (``ApiToken.act_as``); ``None`` (a 401) for any token that is not usable."""

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        # The Idempotency-Key middleware may have read it already (dashboard.idempotency).
        checked = getattr(request, "bearer_checked", None)
        api_token = checked[1] if checked and checked[0] == token else ApiToken.authenticate(token)
        if api_token is None:
            return None
        request.user = api_token.act_as()
        request.api_token = api_token
        # Reset at the end of the request by audit.middleware.RequestIdMiddleware.
        context.via.set(api_token.via)
        return api_token


def _per_thread(name: str) -> property:
    return property(lambda self: getattr(self._local, name), lambda self, value: setattr(self._local, name, value))


class TokenRateThrottle(SimpleRateThrottle):
    """At most ``HANDOFF_API_RATE`` requests (e.g. ``600/m``) per token, counted in the
    ``api`` cache (the database: shared by every web process); past it, 429 with
    ``Retry-After``. django-ninja keeps one throttle per endpoint for all requests and writes
    what it read on the instance, so that state is kept per thread here (gunicorn's threads
    serve requests side by side)."""

    history = _per_thread("history")
    now = _per_thread("now")
    key = _per_thread("key")

    def __init__(self, rate: str):
        self._local = threading.local()
        super().__init__(rate)
        self.cache = caches["api"]

    def get_cache_key(self, request: HttpRequest) -> str | None:
        token = getattr(request, "api_token", None)
        return None if token is None else f"throttle_token_{token.pk}"


class HandoffAPI(NinjaAPI):
    def get_openapi_schema(self, *args, **kwargs):
        """django-ninja's schema, with the error answers documented as what they are:
        ``application/problem+json``."""
        schema = super().get_openapi_schema(*args, **kwargs)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if str(code)[:1] in "45" and "application/json" in content:
                        content[PROBLEM] = content.pop("application/json")
        return schema


api = HandoffAPI(
    title="Handoff API",
    version="1",
    description="Runs, approvals and the audit log of a Handoff desk. Authenticate with "
                "`Authorization: Bearer <token>` (create one with `python manage.py create_api_token`).",
    urls_namespace="api",
    auth=BearerToken(),
    throttle=[TokenRateThrottle(settings.HANDOFF_API_RATE)],
    openapi_url="/openapi.json",
    docs_url="/docs",
)


# --- Errors: application/problem+json (RFC 9457) ---------------------------------------------------

class FieldError(Schema):
    field: str
    message: str


class Problem(Schema):
    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] = []


def problem(status: int, title: str, detail: str = "", errors: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> JsonResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    response = JsonResponse(body, status=status, content_type=PROBLEM)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def invalid(errors: list[dict[str, str]]) -> JsonResponse:
    """422 naming each field at fault: ``errors`` as ``[{"field", "message"}]``, the detail
    ``"field: message; …"``."""
    return problem(422, "Invalid input", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)


def form_errors(form, rename: dict[str, str] | None = None) -> list[dict[str, str]]:
    """A bound form's errors as ``invalid`` takes them, fields named as the API names them."""
    return [{"field": (rename or {}).get(name, name), "message": " ".join(messages)}
            for name, messages in form.errors.items()]


@api.exception_handler(ValidationError)
def _invalid(request, exc: ValidationError):
    errors = []
    for error in exc.errors:
        # ninja's locations start with where the value came from: ("query" | "path", name, ...)
        # or ("body", <the body parameter>, field, ...); the field is what follows.
        location = [str(part) for part in error.get("loc", ())]
        if location[:1] == ["body"]:
            location = location[2:]
        elif location[:1] in (["query"], ["path"]):
            location = location[1:]
        field = ".".join(location)
        errors.append({"field": field or "body", "message": error.get("msg", "invalid")})
    return invalid(errors)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return problem(401, "Unauthorized", "Send a usable API token: Authorization: Bearer <token>.",
                   headers={"WWW-Authenticate": 'Bearer realm="handoff"'})


@api.exception_handler(PermissionDenied)
def _refused(request, exc):
    return problem(403, "Forbidden", str(exc) or "Not allowed.")


@api.exception_handler(Http404)
def _not_found(request, exc):
    return problem(404, "Not found", str(exc) or "No such object.")


@api.exception_handler(Throttled)
def _throttled(request, exc: Throttled):
    # django-ninja adds Retry-After (whole seconds) to this response.
    return problem(429, "Too many requests", f"This token may send {settings.HANDOFF_API_RATE} requests.")


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    return problem(exc.status_code, {409: "Conflict"}.get(exc.status_code, "Error"), str(exc))


PROBLEMS = {400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem, 422: Problem, 429: Problem}


# --- Approvals ----------------------------------------------------------------------------------------

class ActionsOut(Schema):
    may_decide: bool
    can_approve: bool
    can_edit: bool
    can_respond: bool
    can_reject: bool
    can_claim: bool
    can_release: bool


class ApprovalOut(Schema):
    id: int
    run_id: int
    interaction_id: str
    call_id: str
    name: str  # the function's name (docs/contracts.md), as function_name
    function_name: str
    status: str
    summary: str
    arguments: dict[str, Any]
    edited_arguments: dict[str, Any] | None
    arguments_hash: str
    policy: str
    requires_manual_result: bool
    approvals_required: int
    approvals_so_far: int
    approver_group: str
    claimed_by: str | None
    claimed_until: datetime | None
    deadline_at: datetime | None
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str
    actions: ActionsOut


def approval_out(approval: Approval, user) -> dict[str, Any]:
    actions = approval.actions_for(user)
    return {
        "id": approval.pk,
        "run_id": approval.run_id,
        "interaction_id": approval.interaction.interaction_id,
        "call_id": approval.call_id,
        "name": approval.function_name,
        "function_name": approval.function_name,
        "status": approval.status,
        "summary": approval.summary,
        "arguments": approval.arguments,
        "edited_arguments": approval.edited_arguments,
        "arguments_hash": approval.arguments_hash,
        "policy": approval.policy,
        "requires_manual_result": approval.requires_manual_result,
        "approvals_required": approval.approvals_required,
        "approvals_so_far": (approval.approvals_count if hasattr(approval, "approvals_count")
                             else approval.approvals_so_far()),
        "approver_group": approval.approver_group,
        "claimed_by": approval.claimed_by.get_username() if approval.is_claimed else None,
        "claimed_until": approval.claimed_until if approval.is_claimed else None,
        "deadline_at": approval.deadline_at,
        "created_at": approval.created_at,
        "decided_by": approval.decided_by.get_username() if approval.decided_by_id else None,
        "decided_at": approval.decided_at,
        "reason": approval.reason,
        "actions": {name: getattr(actions, name) for name in ActionsOut.model_fields},
    }


def _approval(pk: int) -> Approval:
    return get_object_or_404(Approval.objects.select_related("run", "interaction", "decided_by", "claimed_by"),
                             pk=pk)


class ApprovalPage(Schema):
    results: list[ApprovalOut]
    next: str | None = None


LIST_LIMIT = 200




@api.get("/approvals", response={200: ApprovalPage, **PROBLEMS}, tags=["approvals"])
def list_approvals(request, status: str = "", state: str = "", tool: str = "", run: int | None = None,
                   age: str = "", assignee: str = "", policy: str = "", requirement: str = "", group: str = "",
                   after: int = 0, limit: int = 50):
    """Calls that waited or wait for people, in id order, ``limit`` (1 to 200) at a time, as
    ``{"results": [...], "next": URL | null}`` (keyset: ``next`` asks for those ``after`` the
    last id). ``status`` (pending, approved, rejected, expired) filters on the call's status;
    ``state`` (the queue's tabs: pending, claimed, decided, expired) on the queue's state,
    pending when neither is given. The queue's filters apply too: ``tool``, ``run``, ``age``
    1h/4h/1d, ``assignee`` a username or ``me``, ``policy``, ``requirement`` four-eyes/single,
    ``group``. 422 names a filter that is not valid."""
    roles.require(request.user, "read")
    raw = {"status": status, "state": state, "tool": tool, "run": run, "age": age, "assignee": assignee,
           "policy": policy, "requirement": requirement, "group": group}
    form = QueueFilterForm({k: v for k, v in raw.items() if v not in (None, "") and k != "status"})
    errors = form_errors(form)
    statuses = [value for value in Approval.Status.values if value != Approval.Status.AUTO]
    if status and status not in statuses:
        errors.append({"field": "status", "message": f"one of {', '.join(statuses)}"})
    if not 1 <= limit <= LIST_LIMIT:
        errors.append({"field": "limit", "message": f"between 1 and {LIST_LIMIT}"})
    if errors:
        return invalid(errors)
    now = timezone.now()
    approvals = Approval.objects.filtered(form.cleaned_data, user=request.user, now=now)
    if status:
        approvals = approvals.filter(status=status)
    if state or not status:
        approvals = approvals.in_state(form.cleaned_data.get("state") or "pending", now=now)
    rows = list(
        approvals.filter(pk__gt=after).with_progress(request.user)
        .select_related("run", "interaction", "decided_by", "claimed_by").order_by("pk")[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    following = None
    if more:
        query = {k: v for k, v in raw.items() if v not in (None, "")} | {"after": rows[-1].pk, "limit": limit}
        following = f"{request.path}?{urlencode(query)}"
    return {"results": [approval_out(a, request.user) for a in rows], "next": following}


@api.get("/approvals/{approval_id}", response={200: ApprovalOut, **PROBLEMS}, tags=["approvals"])
def get_approval(request, approval_id: int):
    """One function call waiting for people, or decided: its arguments (the model's and, if a
    reviewer edited them, the edit in force), the hash a decision must quote, the policy's
    requirement, and what the token's user may do with it now (``actions``)."""
    roles.require(request.user, "read")
    return approval_out(_approval(approval_id), request.user)


class DecisionIn(Schema):
    decision: Literal["approve", "reject", "edit", "respond"]
    arguments_hash: str
    reason: str = ""
    arguments: dict[str, Any] | None = None
    result: Any = None


@api.post("/approvals/{approval_id}/decision", response={200: ApprovalOut, **PROBLEMS}, tags=["approvals"])
def decide(request, approval_id: int, body: DecisionIn):
    """Decide a pending call as the page does: ``approve`` the arguments in force, ``edit`` them
    (``arguments``: validated against the tool's schema, then judged by the policy again),
    ``respond`` with a typed ``result`` (a tool Handoff has no body for), or ``reject`` with a
    ``reason`` the model is told. ``arguments_hash`` is the hash of the arguments the decision
    was made on (``GET`` gives it): a call changed since answers 409.

    200 with the call as it now stands (four-eyes: still pending until enough reviewers
    approve); 403 when the user or the token may not decide it; 409 when it was decided first
    or the decision is refused (stale hash, a claim held by someone else, approving twice);
    422 for a missing ``reason``, ``arguments`` or ``result``."""
    roles.require(request.user, "decide")
    approval = _approval(approval_id)
    approval.check_group(request.user)
    missing = {"reject": ("reason", body.reason.strip()), "edit": ("arguments", body.arguments),
               "respond": ("result", body.result)}.get(body.decision)
    if missing is not None and missing[1] in (None, ""):
        field = missing[0]
        return invalid([{"field": field, "message": f"required to {body.decision}"}])
    try:
        if body.decision == "reject":
            won = approval.reject(by=request.user, shown_hash=body.arguments_hash, reason=body.reason.strip())
        else:
            won = approval.approve(
                by=request.user, shown_hash=body.arguments_hash,
                arguments=body.arguments if body.decision == "edit" else None,
                result=body.result if body.decision == "respond" else None,
            )
    except DecisionRefused as exc:
        raise HttpError(409, str(exc)) from None
    approval = _approval(approval_id)
    if not won:
        who = approval.decided_by.get_username() if approval.decided_by_id else "someone"
        raise HttpError(409, f"Already decided by {who}: {approval.get_status_display()}.")
    return approval_out(approval, request.user)


@api.post("/approvals/{approval_id}/claim", response={200: ApprovalOut, **PROBLEMS}, tags=["approvals"])
def claim(request, approval_id: int):
    """Claim a pending call for the lease the page gives (``approvals.models.CLAIM_LEASE``), or
    renew one's own claim. 403 outside the call's approver group; 409 when someone else holds
    it or it was decided."""
    roles.require(request.user, "decide")
    approval = _approval(approval_id)
    approval.check_group(request.user)
    if not approval.claim(by=request.user):
        approval = _approval(approval_id)
        if approval.is_claimed:
            raise HttpError(409, f"{approval.claimed_by.get_username()} holds this call until "
                                 f"{approval.claimed_until:%H:%M:%S} UTC.")
        raise HttpError(409, f"Already decided: {approval.get_status_display()}. Nothing to claim.")
    return approval_out(_approval(approval_id), request.user)


@api.post("/approvals/{approval_id}/release", response={200: ApprovalOut, **PROBLEMS}, tags=["approvals"])
def release(request, approval_id: int):
    """Give up a claim: its holder, or an admin freeing someone else's (403 otherwise). 409
    when no claim holds the call."""
    approval = _approval(approval_id)
    if not approval.is_claimed:
        raise HttpError(409, "No one holds a claim on this call.")
    if not approval.actions_for(request.user).can_release:
        raise PermissionDenied("Only the holder of a claim, or an admin, may release it.")
    if not approval.release(by=request.user):
        raise HttpError(409, "The claim was released or lapsed first.")
    return approval_out(_approval(approval_id), request.user)


# --- Audit ---------------------------------------------------------------------------------------

@api.get("/audit/events", response={200: str, **PROBLEMS}, tags=["audit"],
         # An int key, as django-ninja's own: "200" beside 200 would be written twice in the JSON.
         openapi_extra={"responses": {200: {"description": "One event per line (``AuditEvent.as_dict``).",
                                              "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}})
def audit_events(request, since: str = "", until: str = "", run: int | None = None, actor: str = "",
                 verb: str = "", tool: str = ""):
    """The audit log as JSON lines, oldest first, streamed in constant memory, with the audit
    page's filters (``since``/``until`` as dates, ``until`` inclusive; ``run``; ``actor``;
    ``verb``, exact or a family such as ``approval``; ``tool``). Each line is what the chain
    hashes (``AuditEvent.as_dict``). The export itself is audited. Needs the ``audit`` scope and
    a role that may export; 422 names a filter that is not valid."""
    roles.require(request.user, "export")
    raw = {"since": since, "until": until, "run": run, "actor": actor, "verb": verb, "tool": tool}
    form = AuditFilterForm({k: v for k, v in raw.items() if v not in (None, "")})
    if not form.is_valid():
        return invalid(form_errors(form))
    filters = form.filters()
    exports.record_export(actor=request.user, fmt="jsonl", filters=filters)
    return StreamingHttpResponse(exports.export_lines(AuditEvent.objects.filtered(**filters), "jsonl"),
                                 content_type="application/x-ndjson; charset=utf-8")


class VerificationOut(Schema):
    state: Literal["never", "running", "holds", "broken"]
    verified_at: datetime | None
    links_checked: int
    first_bad_event_id: int | None
    message: str
    unsealed: int
    unsealed_oldest_seconds: float


@api.get("/audit/verification", response={200: VerificationOut, **PROBLEMS}, tags=["audit"])
def audit_verification(request):
    """The newest verification of the hash chain (``verify_audit``, the audit page's Verify, or
    the periodic checkpoint) and the sealing backlog: events recorded but not linked into the
    chain yet, and the age of the oldest in seconds."""
    roles.require(request.user, "read_audit")
    latest = ChainVerification.objects.order_by("-verified_at", "-id").first()
    unsealed, oldest = log.seal_lag()
    if latest is None:
        state = "never"
    else:
        state = "running" if latest.ok is None else "holds" if latest.ok else "broken"
    return {
        "state": state,
        "verified_at": latest.verified_at if latest else None,
        "links_checked": latest.links_checked if latest else 0,
        "first_bad_event_id": latest.first_bad_event_id if latest else None,
        "message": latest.message if latest else "The chain has not been verified yet.",
        "unsealed": unsealed,
        "unsealed_oldest_seconds": round(oldest, 3),
    }


# --- Runs ----------------------------------------------------------------------------------------

class InteractionOut(Schema):
    sequence: int
    interaction_id: str | None  # none until the API answered
    previous_interaction_id: str
    status: str
    dispatch: str
    usage: dict[str, Any] | None
    output_text: str
    error: str
    step_count: int
    poll_count: int
    created_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None


class RunApprovalOut(Schema):
    id: int
    call_id: str
    function_name: str
    status: str
    summary: str


class RunOut(Schema):
    id: int
    model: str
    agent: str
    status: str
    input_preview: str
    output_text: str
    error: str
    background: bool
    tools: list[str]
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    usage: dict[str, Any]
    total_tokens: int
    pending_approvals: int
    interactions: list[InteractionOut]
    approvals: list[RunApprovalOut]


def run_out(run: Run) -> dict[str, Any]:
    interactions = list(run.interactions.order_by("sequence"))
    return {
        "id": run.pk, "model": run.model, "agent": run.agent, "status": run.status,
        "input_preview": run.input_preview, "output_text": run.output_text, "error": run.error,
        "background": run.background, "tools": [t.get("name", "") for t in run.tools if isinstance(t, dict)],
        "created_by": run.created_by.get_username() if run.created_by_id else None,
        "created_at": run.created_at, "finished_at": run.finished_at, "duration_ms": run.duration_ms,
        "usage": run.usage, "total_tokens": run.total_tokens, "pending_approvals": run.pending_approvals,
        "interactions": [{
            "sequence": i.sequence, "interaction_id": i.interaction_id,
            "previous_interaction_id": i.previous_interaction_id, "status": i.status, "dispatch": i.dispatch,
            "usage": i.usage, "output_text": i.output_text, "error": i.error, "step_count": i.step_count,
            "poll_count": i.poll_count, "created_at": i.created_at, "sent_at": i.sent_at,
            "finished_at": i.finished_at,
        } for i in interactions],
        "approvals": [{"id": a.pk, "call_id": a.call_id, "function_name": a.function_name, "status": a.status,
                       "summary": a.summary} for a in run.approvals.exclude(status=Approval.Status.AUTO).order_by("pk")],
    }


def _run(pk: int) -> Run:
    return get_object_or_404(Run.objects.select_related("created_by"), pk=pk)


class RunIn(Schema):
    model: str = ""
    agent: str = ""
    input: str
    tools: list[str] = []
    background: bool = False
    system_instruction: str = ""


@api.post("/runs", response={201: RunOut, **PROBLEMS}, tags=["runs"])
def create_run(request, body: RunIn):
    """Start a run of a model (``model``) or a managed agent (``agent``), one of the two, with
    registered ``tools`` (models only), as the start page does (``StartRunForm``: the same
    checks, in the same words). 201 with the run, queued; 422 names the field at fault."""
    roles.require(request.user, "start")
    if bool(body.model) == bool(body.agent):
        return problem(422, "Invalid input", "model or agent: give one of the two",
                       [{"field": "model", "message": "give a model or an agent, not both"}])
    form = StartRunForm({"target": "model" if body.model else "agent", "name": body.model or body.agent,
                         "input": body.input, "tools": body.tools, "background": body.background,
                         "system_instruction": body.system_instruction})
    if not form.is_valid():
        return invalid(form_errors(form, {"name": "model" if body.model else "agent"}))
    run = execution.create_run(**form.run_options(), created_by=request.user)
    return Status(201, run_out(_run(run.pk)))


@api.get("/runs/{run_id}", response={200: RunOut, **PROBLEMS}, tags=["runs"])
def get_run(request, run_id: int):
    """A run with its interactions (status, usage, timing) and the calls that waited for people.
    Its steps are at ``/runs/{run_id}/steps``."""
    roles.require(request.user, "read")
    return run_out(_run(run_id))


class StepOut(Schema):
    id: int
    interaction_sequence: int
    index: int
    type: str
    call_id: str
    name: str
    data: Any


class StepPage(Schema):
    results: list[StepOut]
    next: str | None = None


@api.get("/runs/{run_id}/steps", response={200: StepPage, **PROBLEMS}, tags=["runs"])
def run_steps(request, run_id: int, after: int = 0, limit: int = 200):
    """The run's steps as the API sent them, in recorded order, ``limit`` (1 to 1000) at a time;
    ``next`` is the following page's URL (keyset on the step id), ``null`` on the last."""
    roles.require(request.user, "read")
    run = _run(run_id)
    if not 1 <= limit <= 1000:
        return invalid([{"field": "limit", "message": "between 1 and 1000"}])
    steps = list(Step.objects.filter(interaction__run=run, pk__gt=after).select_related("interaction")
                 .order_by("pk")[: limit + 1])
    following = f"{request.path}?{urlencode({'after': steps[limit - 1].pk, 'limit': limit})}" if len(steps) > limit else None
    return {"results": [{"id": s.pk, "interaction_sequence": s.interaction.sequence, "index": s.index, "type": s.type,
                       "call_id": s.call_id, "name": s.name, "data": s.data} for s in steps[:limit]],
            "next": following}


@api.post("/runs/{run_id}/cancel", response={200: RunOut, **PROBLEMS}, tags=["runs"])
def cancel_run(request, run_id: int):
    """Cancel an active run (its pending calls close; a background interaction is cancelled on
    the API). 403 unless the user may cancel it; 409 for a run that is not active."""
    roles.require(request.user, "cancel", _run(run_id))
    try:
        execution.cancel_run(run_id, by=request.user)
    except execution.CannotDoThat as exc:
        raise HttpError(409, str(exc)) from None
    return run_out(_run(run_id))


class ContinueIn(Schema):
    input: str


@api.post("/runs/{run_id}/continue", response={200: RunOut, **PROBLEMS}, tags=["runs"])
def continue_run(request, run_id: int, body: ContinueIn):
    """Continue a completed run with a new user message (``previous_interaction_id`` chains it).
    403 unless the user may continue it; 409 unless the run is completed."""
    roles.require(request.user, "continue", _run(run_id))
    text = body.input.strip()
    if not text:
        return invalid([{"field": "input", "message": "required"}])
    try:
        execution.continue_run(run_id, text=text, by=request.user)
    except execution.CannotDoThat as exc:
        raise HttpError(409, str(exc)) from None
    return run_out(_run(run_id))


class TrackIn(Schema):
    interaction_id: str


@api.post("/interactions", response={201: RunOut, 502: Problem, **PROBLEMS}, tags=["runs"])
def track(request, body: TrackIn):
    """Record an interaction started elsewhere as a new run (``interactions.get``), polled while
    it runs, its function calls settled by policy. 409 for an id tracked already; 422 for one
    that is not an interaction id; 502 when the API cannot give it."""
    roles.require(request.user, "track")
    try:
        run = execution.track_interaction(body.interaction_id, by=request.user)
    except execution.CannotDoThat as exc:
        status = 409 if "already recorded" in str(exc) else 422
        if status == 422:
            return invalid([{"field": "interaction_id", "message": str(exc)}])
        raise HttpError(409, str(exc)) from None
    except (api_errors.APIError, gemini.MalformedResponse) as exc:
        if isinstance(exc, api_errors.NotFoundError):
            raise Http404(f"The API has no interaction {body.interaction_id}.") from None
        return problem(502, "Bad gateway", f"Could not fetch it: {gemini.describe_error(exc)}")
    return Status(201, run_out(_run(run.pk)))
