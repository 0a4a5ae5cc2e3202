from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers runs' Celery tasks in every process, not only in workers (whose start imports
        # every app's tasks): runs.execution queues them by name (see SEND_TASK there).
        from runs import tasks  # noqa: F401
