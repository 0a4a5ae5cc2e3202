from django.urls import path

from runs import views

app_name = "runs"
urlpatterns = [
    path("", views.run_list, name="list"),
    path("<int:pk>/", views.run_detail, name="detail"),
    path("<int:pk>/artifacts/<int:artifact_pk>/", views.artifact, name="artifact"),
    path("<int:pk>/steps/<int:step_pk>/images/<int:number>/", views.step_image, name="step_image"),
    path("<int:pk>/interactions/<int:interaction_pk>/sent-images/<int:number>/", views.sent_image, name="sent_image"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("<int:pk>/continue/", views.continue_run, name="continue"),
    path("<int:pk>/rerun/", views.rerun, name="rerun"),
    path("<int:pk>/interactions/<int:interaction_pk>/resend/", views.resend, name="resend"),
    path("<int:pk>/interactions/<int:interaction_pk>/close/", views.close, name="close"),
    path("track/", views.track, name="track"),
]
