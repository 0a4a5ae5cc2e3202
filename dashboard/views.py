"""The overview page and the start-a-run page (it lists the registered tools, so it lives above
both runs and approvals)."""

from __future__ import annotations

import hmac
import io
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required, login_required
from django.db.models import Count, Q, Sum
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe
from django.views.decorators.vary import vary_on_headers

from approvals import evidence
from audit import exports, roles
from dashboard.forms import ApiTokenForm, StartRunForm
from dashboard.models import ApiToken
from runs import execution
from runs.forms import TrackForm
from runs.models import Run

RECENT_FAILURES = 5

log = logging.getLogger(__name__)


@login_required
@require_safe
@vary_on_headers("HX-Request")
def home(request: HttpRequest) -> HttpResponse:
    """Runs by status, tokens used in the last 24 hours and the latest failures, in two queries
    (the pending-approvals count comes from the navigation context processor), and the audit
    log download for those who may read it. An htmx request gets only the ``overview``
    partial, which refreshes itself while a run is active."""
    since = timezone.now() - timedelta(hours=24)
    totals = Run.objects.aggregate(
        **{status: Count("pk", filter=Q(status=status)) for status in Run.Status.values},
        tokens_24h=Sum("total_tokens", filter=Q(created_at__gte=since), default=0),
        runs_24h=Count("pk", filter=Q(created_at__gte=since)),
    )
    by_status = [(value, label, totals[value]) for value, label in Run.Status.choices]
    context = {
        "by_status": by_status,
        "total_runs": sum(count for _, _, count in by_status),
        "active_runs": sum(totals[status] for status in Run.ACTIVE_STATUSES),
        "active_by_status": [(label, count) for value, label, count in by_status
                             if value in Run.ACTIVE_STATUSES],
        "tokens_24h": totals["tokens_24h"],
        "runs_24h": totals["runs_24h"],
        "recent_failures": Run.objects.filter(status=Run.Status.FAILED)
        .only("pk", "model", "agent", "status", "error", "input_preview", "created_at", "finished_at")
        .order_by("-created_at", "-id")[:RECENT_FAILURES],
    }
    template = "dashboard/home.html"
    if request.htmx:
        template += "#overview"
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def start_run(request: HttpRequest) -> HttpResponse:
    """A form to start a run (model or agent, input, registered tools, background, system
    instruction); a valid POST starts it and redirects to its page, an invalid one shows the
    errors (400). Also offers tracking an interaction started elsewhere (the form posts to
    ``runs:track``). 403 for someone who may not start runs (``audit.roles``)."""
    roles.require(request.user, "start")
    form = StartRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        run = execution.create_run(created_by=request.user, **form.run_options())
        return redirect(run)
    return render(
        request, "dashboard/start_run.html",
        {"form": form, "track_form": TrackForm()},
        status=400 if form.is_bound else 200,
    )


@login_required
@require_safe
def evidence_bundle(request: HttpRequest, pk: int) -> HttpResponse:
    """A run's evidence bundle (ZIP with SHA256SUMS; verifiable on its own, see its README).
    403 for someone who may not export the audit log."""
    roles.require(request.user, "export")
    run = get_object_or_404(Run, pk=pk)
    buffer = io.BytesIO()
    evidence.write_bundle(run, buffer)
    exports.record_export(actor=request.user, fmt="zip", filters={"run_id": run.pk}, obj=run)
    buffer.seek(0)
    return FileResponse(buffer, as_attachment=True, filename=f"handoff-run-{run.pk}-evidence.zip")


def sign_in_locked(request: HttpRequest, original_response: HttpResponse | None = None,
                   credentials: dict | None = None) -> HttpResponse:
    """The answer to a sign-in django-axes refuses (``settings.AXES_LOCKOUT_CALLABLE``): 429 with
    a page that says why and for how long, and ``Retry-After`` in seconds."""
    cool_off = settings.AXES_COOLOFF_TIME
    response = render(request, "registration/locked_out.html", {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": max(1, round(cool_off.total_seconds() / 60)),
    }, status=429)
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response


# --- Health and metrics ------------------------------------------------------------------------
# For load balancers, orchestrators and Prometheus: no sign-in (``login_not_required`` keeps them
# open should a sign-in middleware be added), no session, no CSRF token, no template.


@login_not_required
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """200 while the process serves requests; touches nothing else (no database), so a
    database outage does not get healthy web processes restarted."""
    return JsonResponse({"status": "ok"})


# What failed goes to the log in full; the answer, open to anyone, names the check only (a
# database error carries the host and user).


def _database_ready() -> str:
    """``""`` when the database answers and every migration is applied, else what is wrong."""
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        log.warning("Not ready: the database is unreachable.", exc_info=True)
        return "unreachable"
    if unapplied:
        names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in unapplied)
        log.warning("Not ready: %d unapplied migration(s): %s", len(unapplied), names)
        return f"{len(unapplied)} unapplied migration(s)"
    return ""


def _broker_ready() -> str:
    """``""`` when the Celery broker accepts a connection within ``HANDOFF_READY_TIMEOUT``."""
    from kombu import Connection

    timeout = settings.HANDOFF_READY_TIMEOUT
    options = {**getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}), "socket_timeout": timeout}
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options=options) as broker:
            broker.ensure_connection(max_retries=0, timeout=timeout)
    except Exception:  # kombu raises the transport's own errors as well as its own
        log.warning("Not ready: the broker is unreachable.", exc_info=True)
        return "unreachable"
    return ""


@login_not_required
@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    """200 when this process can do its work: the database answers, no migration is unapplied
    and the broker accepts a connection; else 503. The body names each check, ``"ok"`` or what
    failed: ``{"status": "ok", "checks": {"database": "ok", "broker": "ok"}}``. Each check waits
    ``HANDOFF_READY_TIMEOUT`` seconds at most."""
    checks = {"database": _database_ready() or "ok", "broker": _broker_ready() or "ok"}
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


@login_not_required
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics (``dashboard.metrics``) in the text exposition format. Open unless
    ``HANDOFF_METRICS_TOKEN`` is set; then 401 without ``Authorization: Bearer <that token>``."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from dashboard import metrics as exported

    token = settings.HANDOFF_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            response = HttpResponse("A bearer token is required.", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(exported.exposition(), content_type=CONTENT_TYPE_LATEST)


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    """The signed-in user's API tokens: create one (its value shown on this answer only, never
    again) and revoke any. Creating and revoking are audited. 400 for an invalid form."""
    form = ApiTokenForm(request.POST or None)
    created = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                token, secret = ApiToken.issue(request.user, name=form.cleaned_data["name"],
                                               scopes=form.cleaned_data["scopes"],
                                               expires_days=form.cleaned_data["expires_days"])
            except ValueError as exc:
                form.add_error("name", str(exc))
            else:
                created = {"token": token, "secret": secret}
                form = ApiTokenForm()
        if created is None:
            status = 400
    tokens = ApiToken.objects.filter(user=request.user)
    response = render(request, "dashboard/api_tokens.html",
                      {"form": form, "created": created, "tokens": tokens, "now": timezone.now()}, status=status)
    if created:
        response["Cache-Control"] = "no-store"  # the token's only showing: keep it out of every cache
    return response


@login_required
@require_http_methods(["POST"])
def revoke_api_token(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the signed-in user's tokens (404 for anyone else's)."""
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token.revoke(by=request.user)
    return redirect("api_tokens")
