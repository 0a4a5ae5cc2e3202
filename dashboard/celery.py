"""The Celery app: ``celery -A dashboard worker`` and ``celery -A dashboard beat``."""

import os

from billiard.process import current_process
from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger
from celery.signals import task_postrun, task_prerun, worker_process_init

from dashboard import logs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

app = Celery("dashboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _json_lines(logger, **kwargs) -> None:
    """HANDOFF_LOG_FORMAT=json: Celery's own handlers (the root logger's and ``celery.task``'s,
    which Celery sets up itself, level and log file included) write JSON lines, with the task's
    id and name while a task runs."""
    if logs.json_enabled():
        logs.use_json(logger)


@worker_process_init.connect
def _keep_database_connection(**kwargs) -> None:
    """A prefork child runs one task at a time: it keeps its connection for
    ``WORKER_CONN_MAX_AGE`` seconds (see settings), which the web's ``CONN_MAX_AGE`` default (0,
    right for a thread per client) would forbid."""
    from django.conf import settings
    from django.db import connections

    for alias in connections:
        connections[alias].settings_dict["CONN_MAX_AGE"] = settings.WORKER_CONN_MAX_AGE


@worker_process_init.connect
def _leave_process_group(**kwargs) -> None:
    """A prefork child takes its stop from the worker, not from the signal a process manager
    sends to the whole process group (honcho's stop, a terminal's Ctrl-C): on the worker's warm
    shutdown it finishes its task and exits, where the group's SIGTERM killed it mid-task (Celery
    logged "Process 'ForkPoolWorker-2' exited with 'signal 15 (SIGTERM)'" as an ERROR). The
    worker still ends it by its pid for a cold shutdown or a time limit. The solo pool sends this
    signal in the worker's own process (a test's, too), which stays where it is."""
    if current_process().name != "MainProcess":
        os.setpgid(0, 0)


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(**kwargs) -> None:
    """What Django does around a request: drop a connection that errored or outlived its max
    age, keep the others (Celery's fixup leaves them, ``CELERY_DB_REUSE_MAX``)."""
    from django.db import close_old_connections

    close_old_connections()
