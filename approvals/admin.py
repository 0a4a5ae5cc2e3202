"""Admin pages for approvals and the audit log: for looking only. Decisions go through the
approval page (or the ``decide`` command) so they are checked and audited; audit events are
append-only."""

from __future__ import annotations

from django.contrib import admin

from approvals.models import Approval, AuditCheckpoint, AuditEvent
from runs.admin import ReadOnlyAdmin


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ("id", "function_name", "status", "run", "call_id", "decided_by", "decided_at", "created_at")
    list_filter = ("status", "function_name")
    search_fields = ("call_id", "function_name")
    list_select_related = ("run", "decided_by")
    show_full_result_count = False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "actor", "verb", "object_type", "object_id", "run_id")
    list_filter = ("verb", "object_type")
    search_fields = ("actor", "object_id", "request_id")
    show_full_result_count = False


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("number", "created_at", "position", "hash", "key_fingerprint")
    show_full_result_count = False
