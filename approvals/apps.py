from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from approvals import audit
        from approvals.models import expire_for_cancelled_run, settle_function_calls
        from runs import execution

        execution.register_hooks(
            record_event=audit.record,
            handle_requires_action=settle_function_calls,
            run_cancelled=expire_for_cancelled_run,
        )
        user_logged_in.connect(audit.on_signed_in, dispatch_uid="handoff-audit-signed-in")
        user_login_failed.connect(audit.on_sign_in_failed, dispatch_uid="handoff-audit-sign-in-failed")
