from django.contrib import admin
from django.urls import include, path

from dashboard import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("runs/", include("runs.urls")),
    path("approvals/", include("approvals.urls")),
    path("admin/", admin.site.urls),
]
