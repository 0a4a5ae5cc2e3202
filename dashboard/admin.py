from django.contrib import admin

from audit.admin import ReadOnlyAdmin
from dashboard.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Who holds which tokens; never the tokens themselves (only their hashes are stored).
    Tokens are created and revoked by ``create_api_token`` and ``ApiToken.revoke``, audited."""

    list_display = ("name", "user", "prefix", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "prefix")
    exclude = ("digest",)
