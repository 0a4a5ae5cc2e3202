"""The overview page and the start-a-run page (it lists the registered tools, so it lives above
both runs and approvals)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe
from django.views.decorators.vary import vary_on_headers

from approvals.models import is_auditor
from dashboard.forms import StartRunForm
from runs import execution
from runs.forms import TrackForm
from runs.models import Run

RECENT_FAILURES = 5


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
        "can_export_audit": is_auditor(request.user),
        "by_status": by_status,
        "total_runs": sum(count for _, _, count in by_status),
        "active_runs": sum(totals[status] for status in Run.ACTIVE_STATUSES),
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
    instruction); a valid POST starts it and redirects to its page. Also offers tracking an
    interaction started elsewhere (the form posts to ``runs:track``)."""
    form = StartRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        run = execution.create_run(created_by=request.user, **form.run_options())
        return redirect(run)
    return render(
        request, "dashboard/start_run.html",
        {"form": form, "track_form": TrackForm()},
        status=400 if form.is_bound else 200,
    )
