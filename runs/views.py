"""Pages for runs: the list, one run's timeline, artifact downloads, images, and the run actions
(cancel, continue, run again, track an interaction). The queries are the models' (``Run.objects``
``.filtered(...).page(...)``) and the run page's assembly is ``runs.timeline``'s."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.functional import SimpleLazyObject
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from google.genai import _interactions as api_errors

from audit import roles
from runs import execution, gemini, images, timeline
from runs.forms import ContinueForm, RunFilterForm, TrackForm
from runs.models import Artifact, Cursor, Interaction, Run, Step, search_is_selective, with_creators

PAGE_SIZE = 50


def _query(form: RunFilterForm) -> dict[str, str]:
    """The valid, non-empty filters and sort of ``form`` as query-string values."""
    query = {}
    for name, value in form.cleaned_data.items():
        if value in ("", None, False) or (name == "sort" and value == "started"):
            continue
        query[name] = "1" if value is True else value.isoformat() if isinstance(value, date) else value
    return query


def _page_url(query: dict[str, str], direction: str, cursor: Cursor | None) -> str:
    """The query string of the page ``direction`` (``after`` or ``before``) ``cursor``, with the
    list's filters ``query``; ``""`` without a cursor (there is no such page)."""
    return f"?{urlencode({**query, direction: str(cursor)})}" if cursor is not None else ""


@login_required
@require_safe
@vary_on_headers("HX-Request")
def run_list(request: HttpRequest) -> HttpResponse:
    """Runs, 50 a page, filtered and sorted by the query string (``RunFilterForm``): newest first
    by default, or ``?sort=duration`` / ``?sort=tokens``. Keyset pagination on ``(sort key, id)``
    (``RunQuerySet.page``): ``?after=<cursor>`` is the page that follows that run in the list's
    order, ``?before=<cursor>`` the one that precedes it. An invalid filter is reported on the
    page (400) and left out. An htmx request gets only the ``run-table`` partial, which polls
    itself while a run on it is active. A fixed number of queries, whatever the page size and
    the table."""
    form = RunFilterForm(request.GET)
    form.is_valid()
    sort = form.cleaned_data.get("sort") or "started"
    errors = [
        f"{form.fields[name].label}: {error}" if name in form.fields else error
        for name, field_errors in form.errors.items() for error in field_errors
    ]
    after = before = None
    if request.GET.get("after"):
        after = Cursor.parse(request.GET["after"], sort)
    elif request.GET.get("before"):
        before = Cursor.parse(request.GET["before"], sort)
    if (request.GET.get("after") or request.GET.get("before")) and after is None and before is None:
        errors.append("That page link is not valid: showing the first page.")

    filters = form.filters()
    page = Run.objects.filtered(**filters).page(
        sort=sort, after=after, before=before, size=PAGE_SIZE,
        # The query's shape (RunQuerySet.page): a selective search, a date range.
        few=bool(filters["text"]) and search_is_selective(filters["text"]),
        dated=bool(filters["since"] or filters["until"]),
    )
    rows = with_creators(page.runs)
    query = _query(form)
    context = {
        "form": form,
        "errors": errors,
        "runs": rows,
        "sort": sort,
        "filtered": any(name != "sort" for name in query),
        "paged": after is not None or before is not None,
        "query": urlencode(query),
        "polling": any(run.is_active for run in rows),
        "previous_url": _page_url(query, "before", page.previous_cursor),
        "next_url": _page_url(query, "after", page.next_cursor),
        # Suggestions for the text filters: the values on this page (the table is too big to
        # list them all).
        "targets": sorted({run.target for run in rows}),
        "tools": sorted({name for run in rows for name in run.tool_names.split(",") if name}),
    }
    template = "runs/run_list.html"
    if request.htmx:
        template += "#run-table"
    return render(request, template, context, status=400 if form.errors else 200)


# --- Run detail ----------------------------------------------------------------------------------


# A partial's context builder: (request, run, the rest of the target's id) -> context.
Build = Callable[[HttpRequest, Run, str], dict]


def _number(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _header(request: HttpRequest, run: Run, target_id: str) -> dict:
    return timeline.header(run)


def _card(request: HttpRequest, run: Run, target_id: str) -> dict:
    # The id as the page writes it, only: "interaction-07" names no card.
    pk = _number(target_id)
    interaction = timeline.card(run, pk) if target_id == str(pk) else None
    if interaction is None:
        raise Http404("No such interaction in this run.")
    return {"interaction": interaction}


def _next_chunk(request: HttpRequest, run: Run, target_id: str) -> dict:
    chunk = timeline.chunk(run, _number(request.GET.get("from")), _number(request.GET.get("i")), user=request.user)
    return {"total_steps": run.step_count, **chunk}


# What an htmx request to the run page gets, by the id of the element it replaces (its
# ``HX-Target``): the partial of runs/run_detail.html of that name, with the context its builder
# adds to the page's own. A name ending in "-" is a prefix, the rest of the id handed to the
# builder. Any other target gets the ``run-detail`` partial (the page without its layout).
# The approval boxes inside the timeline are approvals' and poll approvals:box.
PARTIALS: dict[str, tuple[str, Build]] = {
    # The header (status, usage, cost, timing): polls itself while the run is active.
    "run-header": ("run-header", _header),
    # One interaction's card: polls itself while the interaction is in flight.
    "interaction-": ("interaction-card", _card),
    # The next chunk of rows, appended (``?from=N&i=K``, K the next interaction card to show):
    # "Load more", and the tail that polls for new steps while the run is active.
    "timeline-more": ("timeline-rows", _next_chunk),
    "timeline-tail": ("timeline-rows", _next_chunk),
}


def _partial(target: str) -> tuple[str, Build, str] | None:
    """The partial and context builder ``PARTIALS`` gives ``target``, and the rest of the id
    after a prefix (``""`` for an exact name); ``None`` for any other target."""
    for name, (partial, build) in PARTIALS.items():
        if target == name or (name.endswith("-") and target.startswith(name)):
            return partial, build, target.removeprefix(name)
    return None


def _get_run_for_user(request: HttpRequest, pk: int, *, action: str = "read", queryset=None) -> Run:
    """Run ``pk`` (from ``queryset``, ``Run.objects`` by default), for ``request.user`` to take
    ``action`` on it (an ``audit.roles`` action: ``read`` is every signed-in user's, which
    ``login_required`` checks). Raises ``Http404`` when there is no such run, then
    ``PermissionDenied`` (403) with the reason when the user may not take ``action`` on it."""
    run = get_object_or_404(Run.objects.all() if queryset is None else queryset, pk=pk)
    if action != "read":
        roles.require(request.user, action, run)
    return run


@login_required
@require_safe
@vary_on_headers("HX-Request", "HX-Target")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One run: its header (status, usage, estimated cost, timing chart) and the timeline of its
    interactions and steps, ``timeline.STEPS_PER_CHUNK`` steps at a time: ``?from=N`` opens the
    page at step N. A fixed number of queries whatever the size of the run, each reading only
    what it shows (``runs.timeline``).

    An htmx request gets the partial its ``HX-Target`` names in ``PARTIALS`` (404 for an
    ``interaction-<pk>`` of no interaction of this run), or else ``run-detail``.
    """
    run = _get_run_for_user(request, pk, queryset=Run.objects.select_related("created_by", "cancelled_by"))
    template = "runs/run_detail.html"
    context = {
        "run": run, "run_url": run.get_absolute_url(), "polling": run.is_active,
        # The actions the header offers (the views check again): read only if shown.
        "may": SimpleLazyObject(lambda: roles.allowed(request.user, run)),
        "unknown_risk": execution.UNKNOWN_RISK,
        # The durations as every part of the page names them (header, timing, cards).
        "definitions": timeline.DEFINITIONS,
    }
    if request.htmx:
        found = _partial(request.htmx.target or "")
        if found is not None:
            partial, build, target_id = found
            return render(request, f"{template}#{partial}", {**context, **build(request, run, target_id)})
        template += "#run-detail"
    context.update(timeline.header(run))
    context.update(timeline.chunk(run, _number(request.GET.get("from")), user=request.user))
    return render(request, template, context)


@login_required
@require_safe
def artifact(request: HttpRequest, pk: int, artifact_pk: int) -> HttpResponse:
    """One artifact of run ``pk`` (404 when it belongs to another run): a download, or with
    ``?view=1`` shown in the browser. Served as JSON or plain text only (and ``nosniff`` from
    the security middleware), so nothing the API sent is ever rendered as HTML."""
    artifact = get_object_or_404(
        Artifact.objects.select_related("interaction"), pk=artifact_pk, interaction__run_id=pk
    )
    is_json = artifact.media_type == "application/json"
    response = HttpResponse(
        artifact.content,
        content_type=("application/json" if is_json else "text/plain") + "; charset=utf-8",
    )
    filename = f"run-{pk}-interaction-{artifact.interaction.sequence}-{artifact.kind}.{'json' if is_json else 'txt'}"
    response["Content-Disposition"] = content_disposition_header(request.GET.get("view") != "1", filename)
    return response


def _image_response(value, number: int, filename: str) -> HttpResponse:
    """Image ``number`` of ``value`` (``runs.images.blocks``) as its decoded bytes, with its own
    PNG, JPEG, GIF or WebP type; 404 when there is no such image or it is not one to show
    (``runs.images.refusal``). ``nosniff`` and ``same-origin``: the browser takes it for the
    type it is declared as, and only Handoff's own pages may embed it."""
    found = images.blocks(value)
    decoded = images.decode(found[number]) if number < len(found) else None
    if decoded is None:
        raise Http404("No image to show there.")
    media_type, data = decoded
    response = HttpResponse(data, content_type=media_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["Content-Disposition"] = content_disposition_header(
        False, f"{filename}.{media_type.removeprefix('image/')}"
    )
    # What was recorded never changes; private, so no shared cache keeps it.
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_safe
def step_image(request: HttpRequest, pk: int, step_pk: int, number: int) -> HttpResponse:
    """Image ``number`` (from 0, in document order: ``runs.images.blocks``) of recorded step
    ``step_pk`` of run ``pk``, decoded from the step's stored data, for the run page's
    ``<img>``. As the run page: 404 for a missing run, a step of another run, no such image or
    one not to show."""
    run = _get_run_for_user(request, pk)
    step = get_object_or_404(Step.objects.only("data"), pk=step_pk, interaction__run=run)
    return _image_response(step.data, number, f"run-{run.pk}-step-{step.pk}-image-{number}")


@login_required
@require_safe
def sent_image(request: HttpRequest, pk: int, interaction_pk: int, number: int) -> HttpResponse:
    """Image ``number`` (from 0, in document order: ``runs.images.blocks``) of what interaction
    ``interaction_pk`` of run ``pk`` sent as ``input`` (its stored request), for the run page's
    ``<img>``. 404 as ``step_image``."""
    run = _get_run_for_user(request, pk)
    interaction = get_object_or_404(Interaction.objects.only("request", "sequence", "run_id"), pk=interaction_pk, run=run)
    sent = interaction.request.get("input") if isinstance(interaction.request, dict) else None
    return _image_response(sent, number, f"run-{run.pk}-interaction-{interaction.sequence}-sent-image-{number}")


# --- Actions ---------------------------------------------------------------------------------
# Plain POST forms: redirect after POST, a message says what happened; they work without
# JavaScript.


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel an active run (``execution.cancel_run``); the run records who cancelled it. 403
    unless the user may cancel this run (``audit.roles``: an engineer their own, an admin any)."""
    run = _get_run_for_user(request, pk, action="cancel")
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
    """Continue a completed run with a new user message (``previous_interaction_id``). 403
    unless the user may continue this run (``audit.roles``: an engineer their own, an admin any)."""
    run = _get_run_for_user(request, pk, action="continue")
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
    """Start a new run, the user's own, with the same request as this one. 403 unless the
    user may run runs again (``audit.roles``)."""
    source = _get_run_for_user(request, pk, action="rerun")
    run = execution.rerun(source.pk, by=request.user)
    messages.success(request, f"Run {run.pk} started with the request of run {source.pk}.")
    return redirect(run)


def _unknown_send_action(request: HttpRequest, pk: int, interaction_pk: int, act, done: str) -> HttpResponse:
    run = _get_run_for_user(request, pk, action="administer")
    interaction = get_object_or_404(Interaction, pk=interaction_pk, run=run)
    try:
        act(interaction.pk, by=request.user)
    except execution.CannotDoThat as exc:
        # Another admin decided first, or the run moved on: a lost race, not an error.
        return render(request, "runs/action_refused.html", {"run": run, "message": str(exc)}, status=409)
    messages.success(request, done)
    return redirect(run)


@login_required
@require_POST
def resend(request: HttpRequest, pk: int, interaction_pk: int) -> HttpResponse:
    """Send again an interaction of run ``pk`` whose send has an unknown outcome
    (``execution.resend_unknown``: the risk is recorded with the decision). Admins only (403);
    409 when it is not, or no longer, of unknown outcome."""
    return _unknown_send_action(request, pk, interaction_pk, execution.resend_unknown,
                                "Sent again: the run goes on. The audit log records the risk you took.")


@login_required
@require_POST
def close(request: HttpRequest, pk: int, interaction_pk: int) -> HttpResponse:
    """Close an interaction of run ``pk`` whose send has an unknown outcome as failed
    (``execution.close_unknown``). Admins only (403); 409 as ``resend``."""
    return _unknown_send_action(request, pk, interaction_pk, execution.close_unknown,
                                "Closed as failed: it is not sent again.")


@login_required
@require_POST
def track(request: HttpRequest) -> HttpResponse:
    """Track an interaction started elsewhere: fetch it with ``interactions.get``, record it as
    a run, poll it if it is still running. 403 unless the user may track (``audit.roles``); a
    malformed id, an unknown one or the API down go back to the form (400)."""
    roles.require(request.user, "track")
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
