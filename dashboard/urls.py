from django.contrib import admin
from django.urls import include, path

from dashboard import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("runs/new/", views.start_run, name="start_run"),
    path("runs/<int:pk>/evidence.zip", views.evidence_bundle, name="evidence_bundle"),
    path("audit/", views.audit_log, name="audit"),
    path("audit/verify/", views.audit_verify, name="audit_verify"),
    path("audit/download/", views.audit_download, name="audit_download"),
    # The old address of the full download: the same recorded export, so no download goes unrecorded.
    path("approvals/audit.csv", views.audit_download),
    path("audit/exports/", views.audit_export_start, name="audit_export_start"),
    path("audit/exports/<int:pk>/", views.audit_export, name="audit_export"),
    path("audit/exports/<int:pk>/file/", views.audit_export_file, name="audit_export_file"),
    path("runs/", include("runs.urls")),
    path("approvals/", include("approvals.urls")),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]
