from django.contrib import admin
from django.urls import include, path

from dashboard import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("runs/new/", views.start_run, name="start_run"),
    path("runs/", include("runs.urls")),
    path("approvals/", include("approvals.urls")),
    path("admin/", admin.site.urls),
]
