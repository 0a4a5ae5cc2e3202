"""Prometheus metrics counted by runs, in whichever process records them: calls to the
Interactions API and the time spent recording an interaction. Served with the others at
``/metrics`` (``dashboard.metrics``, which names them all)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from prometheus_client import Counter, Histogram

API_REQUESTS = Counter(
    "handoff_api_requests",
    "Interactions API calls by SDK method and outcome (HTTP status or error class).",
    ["method", "status"],
)
RECORDING_SECONDS = Histogram(
    "handoff_recording_seconds",
    "Seconds spent recording one interaction (parse, store steps and artifacts, audit, seal).",
    # The target is under 10 ms for 50 steps; large interactions take longer.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)


def api_outcome(exc: BaseException) -> str:
    """The ``status`` label of a failed API call: the HTTP status of an ``APIStatusError``,
    ``timeout``, ``connection_error``, else the exception's class name."""
    from google.genai import _interactions as api_errors

    if isinstance(exc, api_errors.APIStatusError):
        return str(exc.status_code)
    if isinstance(exc, api_errors.APITimeoutError):
        return "timeout"
    if isinstance(exc, api_errors.APIConnectionError):
        return "connection_error"
    return type(exc).__name__


@contextmanager
def api_request(method: str) -> Iterator[Callable[[int | str], None]]:
    """Count one Interactions API call. The block calls the function it is given with the HTTP
    status of the response; an exception raised in the block is counted by ``api_outcome`` and
    raised again::

        with metrics.api_request("create") as answered:
            raw = sdk.create(...)
            answered(raw.status_code)
    """
    seen: list[str] = []
    try:
        yield lambda status: seen.append(str(status))
    except BaseException as exc:
        API_REQUESTS.labels(method, seen[-1] if seen else api_outcome(exc)).inc()
        raise
    API_REQUESTS.labels(method, seen[-1] if seen else "unknown").inc()


def recording():
    """A context manager (and decorator) that observes the seconds its block takes in
    ``handoff_recording_seconds``: ``with metrics.recording(): ...``."""
    return RECORDING_SECONDS.time()
