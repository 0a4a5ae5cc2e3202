from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        # Registers approvals' tasks in every process: the models name them (EXECUTE_TASK).
        from approvals import tasks  # noqa: F401
        from approvals import tools
        from approvals.models import expire_for_cancelled_run, settle_function_calls
        from runs import execution

        # The two hand-overs from runs, which may not import approvals (runs.execution, "Hooks").
        execution.register_hooks(
            handle_requires_action=settle_function_calls,
            run_cancelled=expire_for_cancelled_run,
        )
        # The team's tools and policies (HANDOFF_TOOL_MODULES): a module that fails stops start-up.
        tools.load_modules(settings.HANDOFF_TOOL_MODULES)
