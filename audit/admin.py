"""Admin pages for the audit log: for looking only (events and checkpoints are append-only)."""

from __future__ import annotations

from django.contrib import admin

from audit.models import AuditCheckpoint, AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """No adding, changing or deleting through the admin; viewing stays allowed. The base of
    every admin page of Handoff: what was recorded is changed by the code that records it."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
