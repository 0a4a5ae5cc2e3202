from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit log: the ground floor every other app writes to (``audit.log.record``) and
    imports, never the other way round."""

    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from audit import signals  # noqa: F401  (connects the sign-in receivers)
