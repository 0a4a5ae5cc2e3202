"""Admin pages for runs: for looking only. What was recorded (runs, interactions, steps,
artifacts) is changed by the worker, never by hand."""

from __future__ import annotations

from django.contrib import admin

from audit.admin import ReadOnlyAdmin
from runs.models import Artifact, Interaction, Run, Step


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("id", "status", "model", "agent", "input_preview", "total_tokens", "created_by", "created_at")
    list_filter = ("status",)
    search_fields = ("input_preview",)
    list_select_related = ("created_by",)
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Interaction)
class InteractionAdmin(ReadOnlyAdmin):
    list_display = ("id", "run", "sequence", "interaction_id", "status", "dispatch", "poll_count", "created_at")
    list_filter = ("status", "dispatch")
    search_fields = ("interaction_id", "previous_interaction_id")
    list_select_related = ("run",)
    show_full_result_count = False


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = ("id", "interaction", "index", "type", "name", "call_id")
    list_filter = ("type",)
    search_fields = ("call_id", "name")
    list_select_related = ("interaction",)
    show_full_result_count = False


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = ("id", "interaction", "kind", "media_type", "size_bytes", "created_at")
    list_filter = ("kind",)
    list_select_related = ("interaction",)
    show_full_result_count = False

    def get_queryset(self, request):
        # The list does not show bodies; the detail page loads its one body.
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match and match.url_name and match.url_name.endswith("_changelist"):
            return queryset.defer("content")
        return queryset
