from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from audit import views as audit_views
from dashboard import views
from dashboard.api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/tokens/", views.api_tokens, name="api_tokens"),
    path("account/tokens/<int:pk>/revoke/", views.revoke_api_token, name="revoke_api_token"),
    path("runs/new/", views.start_run, name="start_run"),
    path("runs/<int:pk>/evidence.zip", views.evidence_bundle, name="evidence_bundle"),
    path("audit/", include("audit.urls")),
    # The old address of the full download: the same recorded export, so no download goes unrecorded.
    path("approvals/audit.csv", audit_views.audit_download),
    path("runs/", include("runs.urls")),
    path("approvals/", include("approvals.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    # Browsers ask for /favicon.ico whatever the page links; lazy: the static URL is resolved
    # on the first request, once the static files storage is ready.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("img/favicon.svg"), permanent=True)),
]
