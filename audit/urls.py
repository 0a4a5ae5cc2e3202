from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.audit_log, name="log"),
    path("verify/", views.audit_verify, name="verify"),
    path("download/", views.audit_download, name="download"),
    path("exports/", views.audit_export_start, name="export_start"),
    path("exports/<int:pk>/", views.audit_export, name="export"),
    path("exports/<int:pk>/file/", views.audit_export_file, name="export_file"),
]
