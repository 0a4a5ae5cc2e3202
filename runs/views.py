"""Pages for runs: the list and one run's timeline, plus artifact downloads."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from runs.models import Artifact, Interaction, Run, Step
# The run actions (cancel, continue, run again, track) below.
from django.contrib import messages  # noqa: E402
from django.shortcuts import redirect  # noqa: E402
from django.views.decorators.http import require_POST  # noqa: E402
from google.genai import _interactions as api_errors  # noqa: E402

from runs import execution, gemini  # noqa: E402
from runs.forms import ContinueForm, TrackForm  # noqa: E402

PAGE_SIZE = 50
# Steps per page of a run's timeline: enough for nearly every run, bounded for the longest.
STEPS_PER_PAGE = 200

# Approvals live in the approvals app, which imports runs (never the other way round): they are
# reached here through the reverse relation ``approvals`` and the status string it stores.
PENDING = "pending"


def _filtered_runs(request: HttpRequest) -> tuple[QuerySet[Run], dict[str, str]]:
    """Runs matching the list's ``?status=`` and ``?q=`` filters, and the filters as applied."""
    runs = Run.objects.all()
    status = request.GET.get("status", "")
    if status in Run.Status.values:
        runs = runs.filter(status=status)
    else:
        status = ""
    q = request.GET.get("q", "").strip()
    if q:
        runs = runs.filter(Q(input_preview__icontains=q) | Q(output_text__icontains=q))
    return runs, {"status": status, "q": q}


def _cursor(value: str | None) -> Run | None:
    """The run a ``?before=`` / ``?after=`` cursor names (only its position is read)."""
    if not value or not value.isdigit():
        return None
    return Run.objects.filter(pk=int(value)).only("pk", "created_at").first()


@login_required
@require_safe
@vary_on_headers("HX-Request")
def run_list(request: HttpRequest) -> HttpResponse:
    """Runs, newest first, 50 a page with a keyset cursor on ``(created_at, id)``: ``?before=<id>``
    shows the runs older than that run, ``?after=<id>`` the ones newer. An htmx request gets
    only the ``run-table`` partial, which polls itself while a run on the page is active."""
    runs, filters = _filtered_runs(request)
    before, after = _cursor(request.GET.get("before")), _cursor(request.GET.get("after"))
    if after is not None:
        # Newer runs: walk up from the cursor, then show them newest first.
        order = ("created_at", "id")
        runs = runs.filter(
            Q(created_at__gte=after.created_at),
            Q(created_at__gt=after.created_at) | Q(pk__gt=after.pk),
        )
    else:
        order = ("-created_at", "-id")
        if before is not None:
            # ``created_at <= c`` gives the index a range to start from; the OR then skips the
            # runs sharing the cursor's timestamp that are not older than it.
            runs = runs.filter(
                Q(created_at__lte=before.created_at),
                Q(created_at__lt=before.created_at) | Q(pk__lt=before.pk),
            )
    # The pending-approvals count is aggregated over this page's runs only (their ids come from
    # a LIMITed subquery), so its cost does not grow with the table.
    page_ids = runs.order_by(*order).values("pk")[: PAGE_SIZE + 1]
    rows = list(
        Run.objects.filter(pk__in=page_ids)
        .annotate(pending_approvals=Count("approvals", filter=Q(approvals__status=PENDING)))
        .defer("input", "output_text", "system_instruction", "generation_config", "tools")
        .order_by(*order)
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if after is not None:
        rows.reverse()
        has_newer, has_older = more, True
    else:
        has_newer, has_older = before is not None, more

    query = {k: v for k, v in filters.items() if v}
    context = {
        "runs": rows,
        "filters": filters,
        "statuses": Run.Status.choices,
        "polling": any(run.is_active for run in rows),
        "newer_url": "?" + urlencode({**query, "after": rows[0].pk}) if has_newer and rows else "",
        "older_url": "?" + urlencode({**query, "before": rows[-1].pk}) if has_older and rows else "",
    }
    template = "runs/run_list.html"
    if request.htmx:
        template += "#run-table"
    return render(request, template, context)


def _timeline_page(run: Run, page: int) -> tuple[list[Interaction], dict[str, int]]:
    """The run's interactions with the steps of one page of its timeline.

    Steps are numbered across the run in (interaction sequence, step index) order and shown
    ``STEPS_PER_PAGE`` at a time, so a run of thousands of steps renders in bounded time. Every
    interaction gets ``step_count``, ``page_steps`` (its steps on this page, each function call
    with its ``approval`` or ``None``), ``on_page``, ``starts_here`` (its request is shown on this
    page), ``continued`` / ``continues`` (its steps run over from / onto another page) and
    ``page`` (where it starts). Four queries whatever the size of the run.
    """
    interactions = list(
        run.interactions.order_by("sequence")
        .annotate(step_count=Count("steps"))
        .prefetch_related(
            # Artifact bodies can be large; the page lists them and links to the download.
            Prefetch("artifacts", queryset=Artifact.objects.defer("content").order_by("kind")),
            "approvals__decided_by",
        )
    )
    total = sum(interaction.step_count for interaction in interactions)
    pages = max(1, -(-total // STEPS_PER_PAGE))
    page = min(max(page, 1), pages)
    first, end = (page - 1) * STEPS_PER_PAGE, page * STEPS_PER_PAGE
    steps = Step.objects.filter(interaction__run=run).order_by("interaction__sequence", "index")[first:end]

    by_pk = {interaction.pk: interaction for interaction in interactions}
    approvals = {}
    position = 0
    for interaction in interactions:
        interaction.page_steps = []
        for approval in interaction.approvals.all():
            approvals[interaction.pk, approval.call_id] = approval
        start, count = position, interaction.step_count
        position += count
        if count:
            interaction.on_page = start < end and start + count > first
        else:
            # A step-less interaction (one still in flight) sits where its first step would.
            interaction.on_page = first <= start < end or (page == pages and start >= first)
        interaction.starts_here = interaction.on_page and start >= first
        interaction.continued = interaction.on_page and start < first
        interaction.continues = interaction.on_page and start + count > end
        interaction.page = min(start // STEPS_PER_PAGE + 1, pages)
    for step in steps:
        if step.type == "function_call":
            step.approval = approvals.get((step.interaction_id, step.call_id))
        by_pk[step.interaction_id].page_steps.append(step)
    pager = {"page": page, "pages": pages, "total": total, "first": first + 1, "last": min(end, total)}
    return interactions, pager


@login_required
@require_safe
@vary_on_headers("HX-Request")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One run: its header and the timeline of its interactions and their steps, ``?page=N``
    for the later steps of a long run, in a fixed number of queries. An htmx request gets only
    the ``run-timeline`` partial, which polls itself while the run is active."""
    run = get_object_or_404(Run.objects.select_related("created_by"), pk=pk)
    page = request.GET.get("page", "1")
    interactions, pager = _timeline_page(run, int(page) if page.isdigit() else 1)
    context = {"run": run, "interactions": interactions, "pager": pager, "polling": run.is_active}
    template = "runs/run_detail.html"
    if request.htmx:
        template += "#run-timeline"
    return render(request, template, context)


@login_required
@require_safe
def artifact(request: HttpRequest, pk: int, artifact_pk: int) -> HttpResponse:
    """Download one artifact of run ``pk`` (404 when it belongs to another run). Served as an
    attachment, as JSON or plain text only, so nothing the API sent is ever rendered as HTML."""
    artifact = get_object_or_404(
        Artifact.objects.select_related("interaction"), pk=artifact_pk, interaction__run_id=pk
    )
    is_json = artifact.media_type == "application/json"
    response = HttpResponse(
        artifact.content,
        content_type=("application/json" if is_json else "text/plain") + "; charset=utf-8",
    )
    filename = f"run-{pk}-interaction-{artifact.interaction.sequence}-{artifact.kind}.{'json' if is_json else 'txt'}"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


# --- Actions ---------------------------------------------------------------------------------
# Plain POST forms: redirect after POST, a message says what happened; they work without
# JavaScript.


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel an active run (``execution.cancel_run``); the run records who cancelled it."""
    run = get_object_or_404(Run, pk=pk)
    try:
        execution.cancel_run(run.pk, by=request.user)
    except execution.CannotDoThat as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run {run.pk} cancelled.")
    return redirect(run)


@login_required
@require_POST
def continue_run(request: HttpRequest, pk: int) -> HttpResponse:
    """Continue a completed run with a new user message (``previous_interaction_id``)."""
    run = get_object_or_404(Run, pk=pk)
    form = ContinueForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Write the message to continue the run with.")
        return redirect(run)
    try:
        execution.continue_run(run.pk, text=form.cleaned_data["text"], by=request.user)
    except execution.CannotDoThat as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Message sent: the run goes on.")
    return redirect(run)


@login_required
@require_POST
def rerun(request: HttpRequest, pk: int) -> HttpResponse:
    """Start a new run with the same request as this one."""
    source = get_object_or_404(Run, pk=pk)
    run = execution.rerun(source.pk, by=request.user)
    messages.success(request, f"Run {run.pk} started with the request of run {source.pk}.")
    return redirect(run)


@login_required
@require_POST
def track(request: HttpRequest) -> HttpResponse:
    """Track an interaction started elsewhere: fetch it with ``interactions.get``, record it as
    a run, poll it if it is still running. Errors (unknown id, API down) go back to the form."""
    form = TrackForm(request.POST)
    if form.is_valid():
        try:
            run = execution.track_interaction(form.cleaned_data["interaction_id"], by=request.user)
        except execution.CannotDoThat as exc:
            form.add_error("interaction_id", str(exc))
        except (api_errors.APIError, gemini.MalformedResponse) as exc:
            form.add_error("interaction_id", f"Could not fetch it: {gemini.describe_error(exc)}")
        else:
            messages.success(request, f"Tracking {run.interactions.get().interaction_id} as run {run.pk}.")
            return redirect(run)
    return render(request, "runs/track.html", {"track_form": form}, status=400)
