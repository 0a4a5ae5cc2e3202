from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from approvals import audit, policies  # noqa: F401
        from approvals.models import expire_for_cancelled_run, settle_function_calls
        from runs import execution

        execution.register_hooks(
            record_event=audit.record,
            handle_requires_action=settle_function_calls,
            run_cancelled=expire_for_cancelled_run,
        )
