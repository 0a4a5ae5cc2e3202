"""Admin pages for approvals: for looking only. Decisions go through the approval page (or the
``decide`` command) so they are checked and audited."""

from __future__ import annotations

from django.contrib import admin

from approvals.models import Approval
from audit.admin import ReadOnlyAdmin


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ("id", "function_name", "status", "run", "call_id", "decided_by", "decided_at", "created_at")
    list_filter = ("status", "function_name")
    search_fields = ("call_id", "function_name")
    list_select_related = ("run", "decided_by")
    show_full_result_count = False

