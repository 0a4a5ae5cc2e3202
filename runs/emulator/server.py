"""A local HTTP emulator of the Gemini Interactions API (standard library only).

The real ``google-genai`` SDK talks to it over HTTP, exactly as it talks to
Google: point the SDK at it with ``GOOGLE_GEMINI_BASE_URL=http://HOST:PORT``
(any non-empty ``GEMINI_API_KEY``) or ``HttpOptions(base_url=...)``. The wire
protocol follows ``docs/interactions-api.md`` §10-11:

* ``POST   /{ver}/interactions``: create; JSON, or SSE when the body has
  ``"stream": true``
* ``GET    /{ver}/interactions/{id}``: get; ``?stream=true|false``,
  ``include_input``, ``last_event_id``
* ``POST   /{ver}/interactions/{id}/cancel``: cancel a background interaction
  still in progress
* ``DELETE /{ver}/interactions/{id}``: delete; answers ``{}``

Any version segment (``v1``, ``v1beta``, ...) or none at all is accepted, as is
a base-URL path prefix. Bodies are snake_case JSON; errors are
``{"error": {"code": "<string>", "message": "..."}}`` with the HTTP status. A
missing or empty ``x-goog-api-key`` header gets 401; any other key is accepted.

A ``background: true`` create answers ``in_progress`` with no steps; the
interaction finishes on its ``background_polls``-th ``get`` (a streamed create
or get runs it to the end at once). Streams are ``text/event-stream`` events
``interaction.created``, ``step.start``/``step.delta``/``step.stop`` per step,
``interaction.completed``, then ``data: [DONE]``.

Interactions are kept in memory, or with ``state_path`` in a SQLite file
(``store.py``) that is loaded at ``start()``: a restart on the same file
changes nothing a client can see. Every change is written before the request
is answered. What the file keeps: every stored interaction as it stands
(status, steps, which calls were answered, and for a background interaction
still in progress the number of gets it has answered), the id counters and
the counted HTTP faults. A background interaction in progress therefore
resumes where it was: it finishes on the ``background_polls``-th get counted
over both lifetimes, as the restarted server is configured. The request log
and a held create are not kept.

Two control routes serve tests running in another process (no key needed,
and not recorded in the request log):

* ``GET  /_emulator/requests``  the request log as a JSON list
* ``POST /_emulator/reset``     forget interactions and the request log

What each create answers is decided by ``scenarios.py``; this module adds the
envelope (id, timestamps, ``model``/``agent``), checks the request the way a
strict server would, applies transport faults (HTTP errors, delays, broken
bodies), stores interactions and runs background interactions forward one
``get`` at a time.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import scenarios
from .scenarios import ScenarioError
from .store import Store

logger = logging.getLogger(__name__)

# Any prefix (version segment and/or base-URL path), then the collection.
_INTERACTIONS_ROUTE = re.compile(
    r"^(?:/[^/]+)*?/interactions(?:/(?P<id>[^/]+?)(?P<cancel>/cancel)?)?/?$"
)

_HTTP_FAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry.",
    502: "Bad gateway.",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}

# A 200 body that is not JSON at all, for [fault:garbage].
_GARBAGE_BODY = (
    b"<html><body><h1>502 Bad Gateway</h1>upstream sent an invalid response</body></html>"
)


def _now_iso() -> str:
    """The current UTC time as the API writes it: ``YYYY-MM-DDThh:mm:ssZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _zero_usage() -> dict:
    return {
        "total_input_tokens": 0,
        "total_output_tokens": 0,
        "total_thought_tokens": 0,
        "total_cached_tokens": 0,
        "total_tool_use_tokens": 0,
        "total_tokens": 0,
        "input_tokens_by_modality": [{"modality": "text", "tokens": 0}],
    }


class _Reply:
    """What a route answers: a JSON document, raw bytes, or a list of SSE events."""

    def __init__(self, status: int = 200, document: Any = None, raw: bytes | None = None,
                 events: list[dict] | None = None):
        self.status = status
        self.document = document
        self.raw = raw
        self.events = events

    @classmethod
    def error(cls, status: int, message: str) -> "_Reply":
        code = scenarios.ERROR_CODES.get(status, "unknown")
        return cls(status, {"error": {"code": code, "message": message}})


class EmulatorServer:
    """The Interactions API emulator, served from a daemon thread.

    ``port=0`` picks a free port. ``background_polls`` is how many ``get``
    calls a ``background: true`` interaction answers before it is finished:
    the Nth ``get`` returns the final status. ``id_tag`` is put into every id
    (``v1_emu{tag}0000000001``, ``call_{tag}00001``) so that ids stay unique
    across emulator restarts against one database; leave it empty for fully
    deterministic ids. ``state_path`` names a SQLite file to keep the
    interactions in across restarts (created when missing; see ``store.py``);
    ``None`` keeps them in memory only. One server serves a file at a time:
    ``start()`` raises ``store.StoreInUse`` while another holds it.

    >>> server = EmulatorServer(port=0).start()
    >>> server.url                                   # doctest: +SKIP
    'http://127.0.0.1:54321'
    >>> server.stop()
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, background_polls: int = 3,
                 id_tag: str = "", state_path: str | os.PathLike | None = None):
        self.host = host
        self.port = port
        self.background_polls = background_polls
        self.id_tag = id_tag
        self.state_path = state_path
        self._store = Store(None)
        # One lock guards the store, the request log, the fault counters, the
        # id counters and the held-create slot.
        self._lock = threading.Lock()
        self._records: dict[str, dict] = {}
        self._log: list[dict] = []
        self._fault_counts: dict[str, int] = {}
        # Counters survive reset() so an id is never handed out twice by one server.
        self._interaction_counter = 0
        self._tool_counter = 0
        self._held_create: threading.Event | None = None
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> "EmulatorServer":
        """Bind the port and serve in a daemon thread; returns ``self``.

        Raises ``OSError`` when the port cannot be bound, and
        ``store.StoreInUse`` when another server holds ``state_path``.
        """
        if self.state_path is not None and not self._store.is_open:
            store = Store(self.state_path)
            records, counters, fault_counts = store.load()
            with self._lock:
                self._store = store
                self._records = records
                self._fault_counts = fault_counts
                self._interaction_counter = counters.get("interaction", 0)
                self._tool_counter = counters.get("tool", 0)
        try:
            httpd = _HTTPServer((self.host, self.port), _Handler)
        except OSError:
            self._close_store()
            raise
        httpd.emulator = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"interactions-emulator-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection. Safe to call twice."""
        self._stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        # Keep-alive connections would otherwise go on being served by their
        # handler threads after the listening socket is gone.
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_store()

    def _close_store(self) -> None:
        # A request still being handled after this gets an error rather than
        # an answer the file would not hold.
        with self._lock:
            self._store.close()

    def wait(self) -> None:
        """Block until ``stop()`` is called (from another thread or a signal handler)."""
        while not self._stopping.wait(0.5):
            pass

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give the SDK, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    # -- inspection ----------------------------------------------------------

    @property
    def requests(self) -> list[dict]:
        """Every HTTP request received, oldest first (a copy).

        Each is ``{"method", "path", "query": {name: value}, "headers":
        {lower-case name: value}, "body": parsed JSON or None, "received_at":
        epoch seconds}``; a non-empty ``x-goog-api-key`` reads ``"<redacted>"``.
        The ``/_emulator/`` control routes are not recorded.
        """
        with self._lock:
            return copy.deepcopy(self._log)

    def requests_for(self, method: str | None = None, path_suffix: str | None = None) -> list[dict]:
        """The logged requests with this method and/or whose path ends with ``path_suffix``."""
        return [
            entry
            for entry in self.requests
            if (method is None or entry["method"] == method.upper())
            and (path_suffix is None or entry["path"].endswith(path_suffix))
        ]

    def interaction(self, interaction_id: str) -> dict | None:
        """The stored interaction as ``get(include_input=True)`` shows it, or None.

        Unlike an HTTP ``get`` this does not count as a poll.
        """
        with self._lock:
            record = self._records.get(interaction_id)
            return None if record is None else self._document(record, include_input=True)

    @property
    def interaction_ids(self) -> list[str]:
        """Ids of the stored interactions, in creation order."""
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        """Forget every interaction, the request log and the fault counters (in the state
        file too); the id counters stay, so no id is handed out twice."""
        with self._lock:
            self._store.clear()
            self._records.clear()
            self._log.clear()
            self._fault_counts.clear()
            self._held_create = None

    def hold_next_create(self, event: threading.Event) -> None:
        """Make the next ``POST .../interactions`` wait until ``event`` is set.

        The request is logged when it arrives and processed (and stored) only
        once released, even if its client has gone away in the meantime. This
        lets a test kill a client mid-request.
        """
        with self._lock:
            self._held_create = event

    # -- HTTP entry point (called by _Handler) --------------------------------

    def _handle(self, method: str, target: str, headers: dict[str, str], raw_body: bytes) -> _Reply:
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body, body_ok = _parse_body(raw_body)

        if path.startswith("/_emulator/"):
            return self._control(method, path)

        logged_headers = dict(headers)
        if logged_headers.get("x-goog-api-key"):
            logged_headers["x-goog-api-key"] = "<redacted>"
        with self._lock:
            self._log.append({
                "method": method,
                "path": path,
                "query": query,
                "headers": logged_headers,
                "body": body,
                "received_at": time.time(),
            })

        match = _INTERACTIONS_ROUTE.match(path)
        is_create = bool(match) and match.group("id") is None and method == "POST"
        if is_create:
            self._wait_if_held()
            if self._stopping.is_set():
                return _Reply.error(503, "The server is shutting down.")

        if not headers.get("x-goog-api-key", "").strip():
            return _Reply.error(401, "Method doesn't allow unregistered callers. "
                                     "Provide a valid API key in the x-goog-api-key header.")
        if match is None:
            return _Reply.error(404, f"No route for {method} {path}.")

        interaction_id, cancel = match.group("id"), match.group("cancel")
        wants_stream = "text/event-stream" in headers.get("accept", "")
        try:
            if interaction_id is None:
                if method != "POST":
                    return _Reply.error(405, f"{method} is not supported on {path}.")
                if not body_ok:
                    return _Reply.error(400, "Invalid JSON payload received.")
                return self._create(body, wants_stream)
            if cancel:
                if method != "POST":
                    return _Reply.error(405, f"{method} is not supported on {path}.")
                return self._cancel(interaction_id)
            if method == "GET":
                stream = query.get("stream", "false").lower() == "true" or wants_stream
                return self._get(interaction_id, stream=stream,
                                 include_input=query.get("include_input", "").lower() == "true",
                                 last_event_id=query.get("last_event_id"))
            if method == "DELETE":
                return self._delete(interaction_id)
            return _Reply.error(405, f"{method} is not supported on {path}.")
        except ScenarioError as error:
            return _Reply.error(error.status, error.message)

    def _control(self, method: str, path: str) -> _Reply:
        if path.rstrip("/") == "/_emulator/requests" and method == "GET":
            return _Reply(200, self.requests)
        if path.rstrip("/") == "/_emulator/reset" and method == "POST":
            self.reset()
            return _Reply(200, {})
        return _Reply.error(404, f"No control route for {method} {path}.")

    def _wait_if_held(self) -> None:
        with self._lock:
            event, self._held_create = self._held_create, None
        if event is None:
            return
        while not event.wait(0.05):
            if self._stopping.is_set():
                return

    # -- routes ----------------------------------------------------------------

    def _create(self, body: Any, wants_stream: bool) -> _Reply:
        _check_create_body(body)
        faults = scenarios.find_faults(body)

        if faults.slow_seconds:
            time.sleep(faults.slow_seconds)
        if faults.http_status:
            key = json.dumps(body, sort_keys=True, separators=(",", ":"))
            with self._lock:
                seen = self._fault_counts.get(key, 0) + 1
                self._store.save(fault_counts={key: seen})
                self._fault_counts[key] = seen
            if faults.http_times is None or seen <= faults.http_times:
                status = faults.http_status
                return _Reply.error(status, _HTTP_FAULT_MESSAGES.get(status, f"HTTP {status}."))
        if faults.garbage:
            return _Reply(200, raw=_GARBAGE_BODY)
        if faults.malformed:
            with self._lock:
                interaction_id = self._new_interaction_id()
                self._store.save(counters=self._counters())
            return _Reply(200, {"id": interaction_id, "steps": "not-a-list"})

        stream = body.get("stream") is True or wants_stream
        with self._lock:
            # Validation, the scenario and storing happen under one lock so two
            # identical follow-ups racing each other cannot both be accepted.
            previous_id = body.get("previous_interaction_id")
            history = self._history(previous_id) if previous_id is not None else []
            _check_function_results(body, history[-1] if history else None, previous_id)
            history_view = [
                {"request": record["request"], "status": _status(record),
                 "steps": record["outcome"]["steps"], "usage": record["outcome"]["usage"]}
                for record in history
            ]
            outcome = scenarios.respond(body, history_view, self._new_tool_id)
            now = _now_iso()
            record = {
                "id": self._new_interaction_id(),
                "request": body,
                "outcome": outcome,
                "background": body.get("background") is True,
                "state": "running" if body.get("background") is True and not stream else "finished",
                "polls": 0,
                "created": now,
                "updated": now,
                "answered_call_ids": set(),
                "statusless_gets": faults.statusless_gets,
            }
            changed = []
            if history:
                answered = {result["call_id"]
                            for result in scenarios.function_results(body.get("input"))}
                previous = history[-1]
                changed.append({**previous,
                                "answered_call_ids": previous["answered_call_ids"] | answered})
            if body.get("store", True) is not False:
                changed.append(record)
            # Written before anything changes in memory: a failed write leaves
            # the server as it was, and the client gets an error, not an id.
            self._store.save(changed, counters=self._counters())
            for changed_record in changed:
                self._records[changed_record["id"]] = changed_record
            if stream:
                return _Reply(200, events=self._events(record))
            return _Reply(200, self._document(record))

    def _get(self, interaction_id: str, *, stream: bool, include_input: bool,
             last_event_id: str | None) -> _Reply:
        with self._lock:
            record = self._records.get(interaction_id)
            if record is None:
                raise ScenarioError(404, f"Interaction {interaction_id} was not found.")
            changes: dict[str, Any] = {}
            if record["state"] == "running":
                if stream:
                    # A streamed get stays open until the interaction finishes,
                    # so there is nothing to poll: finish it now.
                    changes.update(self._finished())
                else:
                    changes["polls"] = record["polls"] + 1
                    if changes["polls"] >= self.background_polls:
                        changes.update(self._finished())
            statusless = not stream and _takes_fault(record.get("statusless_gets", 0))
            if statusless and record["statusless_gets"] is not None:
                changes["statusless_gets"] = record["statusless_gets"] - 1
            if changes:
                record = {**record, **changes}
                self._store.save([record])
                self._records[interaction_id] = record
            if statusless:
                # [fault:statusless_get]: the body a lenient client half-parses
                # into status=None (docs/interactions-api.md §10.4).
                document = self._document(record, include_input=include_input)
                del document["status"]
                return _Reply(200, document)
            if stream:
                events = self._events(record)
                if last_event_id:
                    ids = [event.get("event_id") for event in events]
                    if last_event_id in ids:
                        events = events[ids.index(last_event_id) + 1:]
                return _Reply(200, events=events)
            return _Reply(200, self._document(record, include_input=include_input))

    def _cancel(self, interaction_id: str) -> _Reply:
        with self._lock:
            record = self._records.get(interaction_id)
            if record is None:
                raise ScenarioError(404, f"Interaction {interaction_id} was not found.")
            if not (record["background"] and record["state"] == "running"):
                raise ScenarioError(
                    400,
                    f"Interaction {interaction_id} cannot be cancelled: only background "
                    f"interactions that are in progress can be cancelled (status is "
                    f"{_status(record)}).",
                )
            record = {**record, "state": "cancelled", "updated": _now_iso()}
            self._store.save([record])
            self._records[interaction_id] = record
            return _Reply(200, self._document(record))

    def _delete(self, interaction_id: str) -> _Reply:
        with self._lock:
            if interaction_id not in self._records:
                raise ScenarioError(404, f"Interaction {interaction_id} was not found.")
            self._store.delete(interaction_id)
            del self._records[interaction_id]
        return _Reply(200, {})

    # -- storage helpers (call with the lock held) --------------------------------

    def _new_interaction_id(self) -> str:
        self._interaction_counter += 1
        return f"v1_emu{self.id_tag}{self._interaction_counter:010d}"

    def _new_tool_id(self, kind: str) -> str:
        self._tool_counter += 1
        return f"{kind}_{self.id_tag}{self._tool_counter:05d}"

    def _history(self, previous_id: Any) -> list[dict]:
        """The stored chain ending at ``previous_id``, oldest first; 404 when unknown."""
        if not isinstance(previous_id, str) or previous_id not in self._records:
            raise ScenarioError(404, f"Interaction {previous_id} was not found.")
        chain = []
        current: Any = previous_id
        while isinstance(current, str) and current in self._records and len(chain) < 1000:
            record = self._records[current]
            chain.append(record)
            current = record["request"].get("previous_interaction_id")
        chain.reverse()
        return chain

    def _counters(self) -> dict[str, int]:
        return {"interaction": self._interaction_counter, "tool": self._tool_counter}

    @staticmethod
    def _finished() -> dict:
        """The changes that finish a background interaction."""
        return {"state": "finished", "updated": _now_iso()}

    def _document(self, record: dict, include_input: bool = False) -> dict:
        """The interaction JSON for ``record`` in its current state."""
        request = record["request"]
        document: dict[str, Any] = {"id": record["id"], "object": "interaction",
                                    "status": _status(record)}
        if request.get("agent"):
            document["agent"] = request["agent"]
        else:
            document["model"] = request.get("model")
        if request.get("previous_interaction_id") is not None:
            document["previous_interaction_id"] = request["previous_interaction_id"]
        document["created"] = record["created"]
        document["updated"] = record["updated"]
        if record["state"] == "finished":
            outcome = record["outcome"]
            document["steps"] = copy.deepcopy(outcome["steps"])
            document["usage"] = copy.deepcopy(outcome["usage"])
            if outcome.get("errors"):
                document["errors"] = copy.deepcopy(outcome["errors"])
        else:
            document["steps"] = []
            document["usage"] = _zero_usage()
        if include_input and "input" in request:
            document["input"] = copy.deepcopy(request["input"])
        return document

    def _events(self, record: dict) -> list[dict]:
        """The SSE events of ``record`` from start to its current status.

        Order: ``interaction.created``, then ``step.start`` / ``step.delta`` /
        ``step.stop`` per output step, then ``interaction.completed`` with the
        final status and usage (no steps). ``event_id`` values are
        ``evt_0001``... per interaction, so ``last_event_id`` can resume.
        """
        document = self._document(record)
        head = {key: document[key] for key in ("id", "status", "object", "model", "agent",
                                               "created", "updated") if key in document}
        events: list[dict] = [{"event_type": "interaction.created",
                               "interaction": {**head, "status": "in_progress"}}]
        for index, step in enumerate(document["steps"]):
            events.extend(_step_events(index, step))
        closing = {**head, "usage": document["usage"]}
        if document.get("errors"):
            closing["errors"] = document["errors"]
        events.append({"event_type": "interaction.completed", "interaction": closing})
        for number, event in enumerate(events, start=1):
            event["event_id"] = f"evt_{number:04d}"
        return events


def _takes_fault(remaining: int | None) -> bool:
    """Whether a fault with ``remaining`` uses left (``None``: unlimited) applies now."""
    return remaining is None or remaining > 0


def _status(record: dict) -> str:
    if record["state"] == "running":
        return "in_progress"
    if record["state"] == "cancelled":
        return "cancelled"
    return record["outcome"]["status"]


def _parse_body(raw_body: bytes) -> tuple[Any, bool]:
    """``(parsed JSON or None, whether the body was valid JSON or empty)``."""
    if not raw_body.strip():
        return None, True
    try:
        return json.loads(raw_body), True
    except (ValueError, UnicodeDecodeError):
        return None, False


def _check_create_body(body: Any) -> None:
    """Reject a create body a strict server would reject (raises ``ScenarioError`` 400)."""
    if not isinstance(body, dict):
        raise ScenarioError(400, "The request body must be a JSON object.")
    model, agent = body.get("model"), body.get("agent")
    if (model is None) == (agent is None):
        raise ScenarioError(400, "Exactly one of 'model' or 'agent' must be set.")
    if not isinstance(model or agent, str) or not (model or agent).strip():
        raise ScenarioError(400, "'model' or 'agent' must be a non-empty string.")
    if agent is not None and (body.get("generation_config") or body.get("cached_content")):
        raise ScenarioError(
            400, "'generation_config' and 'cached_content' are not allowed with 'agent'.")
    input_value = body.get("input")
    if input_value is not None and not isinstance(input_value, (str, dict, list)):
        raise ScenarioError(400, "'input' must be a string, a content object or a list.")
    if isinstance(input_value, list) and not all(isinstance(item, dict) for item in input_value):
        raise ScenarioError(400, "Every item of 'input' must be an object.")
    for result in scenarios.function_results(input_value):
        if not isinstance(result.get("call_id"), str) or "result" not in result:
            raise ScenarioError(400, "A function_result needs a string 'call_id' and a 'result'.")
    tools = body.get("tools")
    well_formed = isinstance(tools, list) and all(
        isinstance(tool, dict) and "type" in tool for tool in tools)
    if tools is not None and not well_formed:
        raise ScenarioError(400, "'tools' must be a list of objects with a 'type'.")
    if body.get("background") is True and body.get("store") is False:
        raise ScenarioError(400, "Background interactions must be stored; 'store' cannot be false.")
    previous = body.get("previous_interaction_id")
    if previous is not None and not isinstance(previous, str):
        raise ScenarioError(400, "'previous_interaction_id' must be a string.")


def _check_function_results(body: dict, previous: dict | None, previous_id: str | None) -> None:
    """Match the request's function results to the calls they answer (400 on mismatch).

    With ``previous_interaction_id``, every ``call_id`` must be one of the
    previous interaction's function calls, none may have been answered by an
    earlier follow-up, and a ``requires_action`` interaction needs a result for
    every one of its calls. Without it, each result must answer a
    ``function_call`` step earlier in the same input (stateless history).
    """
    input_value = body.get("input")
    call_ids = [result["call_id"] for result in scenarios.function_results(input_value)]
    repeated = sorted({call_id for call_id in call_ids if call_ids.count(call_id) > 1})
    if repeated:
        raise ScenarioError(
            400, f"function_result for call_id {repeated[0]} appears more than once.")

    if previous is None:
        declared = {
            item.get("id")
            for item in (input_value if isinstance(input_value, list) else [])
            if isinstance(item, dict) and item.get("type") == "function_call"
        }
        for call_id in call_ids:
            if call_id not in declared:
                raise ScenarioError(
                    400,
                    f"function_result call_id {call_id} does not match any function_call; "
                    "send it with the previous_interaction_id of the interaction that made "
                    "the call.",
                )
        return

    status = _status(previous)
    if status == "in_progress":
        raise ScenarioError(400, f"Interaction {previous_id} is still in progress; "
                                 "it cannot be continued until it finishes.")
    pending = [
        step["id"]
        for step in previous["outcome"]["steps"]
        if step.get("type") == "function_call"
    ] if status == "requires_action" else []
    for call_id in call_ids:
        if call_id not in pending:
            raise ScenarioError(400, f"function_result call_id {call_id} does not match any "
                                     f"pending function_call of interaction {previous_id}.")
    for call_id in call_ids:
        if call_id in previous["answered_call_ids"]:
            raise ScenarioError(400, f"function_result for call_id {call_id} was already received.")
    missing = [call_id for call_id in pending if call_id not in call_ids]
    if missing:
        raise ScenarioError(400, f"Interaction {previous_id} requires a function_result for "
                                 f"every pending call; missing call_id(s): {', '.join(missing)}.")


def _step_events(index: int, step: dict) -> list[dict]:
    """``step.start`` / ``step.delta`` / ``step.stop`` events for one output step.

    Text streams as ``text`` deltas and thoughts as ``thought_summary`` and
    ``thought_signature`` deltas (STREAM guide payloads 04, 04d). A function
    call starts with empty ``arguments`` and sends them as one
    ``arguments_delta`` JSON string, since the SDK has no function_call delta
    (docs/interactions-api.md §8.3). Other steps arrive whole in ``step.start``.
    """
    kind = step.get("type")
    deltas: list[dict] = []
    if kind == "thought":
        start = {"type": "thought"}
        deltas += [{"type": "thought_summary", "content": block}
                   for block in step.get("summary") or []]
        if step.get("signature"):
            deltas.append({"type": "thought_signature", "signature": step["signature"]})
    elif kind == "model_output":
        start = {"type": "model_output"}
        for block in step.get("content") or []:
            if block.get("type") == "text":
                deltas += [{"type": "text", "text": piece}
                           for piece in _chunks(block.get("text", ""))]
                if block.get("annotations"):
                    deltas.append({"type": "text_annotation_delta",
                                   "annotations": block["annotations"]})
            else:
                deltas.append(dict(block))
    elif kind == "function_call":
        start = {**step, "arguments": {}}
        deltas.append({"type": "arguments_delta",
                       "arguments": json.dumps(step.get("arguments", {}))})
    else:
        start = step
    events = [{"event_type": "step.start", "index": index, "step": start}]
    events += [{"event_type": "step.delta", "index": index, "delta": delta} for delta in deltas]
    events.append({"event_type": "step.stop", "index": index})
    return events


def _chunks(text: str, size: int = 48) -> list[str]:
    """``text`` split at word boundaries into pieces of about ``size`` characters."""
    pieces: list[str] = []
    current = ""
    for word in re.findall(r"\S+\s*|\s+", text):
        if current and len(current) + len(word) > size:
            pieces.append(current)
            current = ""
        current += word
    if current or not pieces:
        pieces.append(current)
    return pieces


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its EmulatorServer."""

    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when many
    # workers call at once (e.g. reviewers approving in parallel).
    request_queue_size = 128
    emulator: EmulatorServer


class _Handler(BaseHTTPRequestHandler):
    """Reads one HTTP request, hands it to the EmulatorServer, writes the reply."""

    # HTTP/1.1 keeps the SDK's pooled connections alive between calls.
    protocol_version = "HTTP/1.1"
    server_version = "InteractionsEmulator/1.0"
    # A reply leaves in one write (status line, headers and body buffered, then flushed), with
    # TCP_NODELAY: written in two sends, the body waited for the client's delayed ACK (Nagle's
    # algorithm), about 40 ms on every request of a reused connection.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        with self.server.emulator._lock:  # type: ignore[attr-defined]
            self.server.emulator._connections.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.server.emulator._lock:  # type: ignore[attr-defined]
            self.server.emulator._connections.discard(self.connection)  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _serve(self) -> None:
        emulator: EmulatorServer = self.server.emulator  # type: ignore[attr-defined]
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw_body = self.rfile.read(length) if length > 0 else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                reply = emulator._handle(self.command, self.path, headers, raw_body)
            except Exception as error:  # noqa: BLE001 - a bug must become a 500, not a hang
                logger.exception("Emulator failed on %s %s", self.command, self.path)
                reply = _Reply.error(500, f"Emulator error: {error}")
            if reply.events is not None:
                self._write_events(reply.events)
            elif reply.raw is not None:
                self._write(reply.status, reply.raw, "application/json")
            else:
                payload = json.dumps(reply.document, ensure_ascii=False, separators=(",", ":"))
                self._write(reply.status, payload.encode("utf-8"),
                            "application/json; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # The client went away (e.g. killed mid-request); the work is done anyway.
            self.close_connection = True

    def _write(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _write_events(self, events: list[dict]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
            self._write_chunk(f"event: {event['event_type']}\ndata: {data}\n\n".encode("utf-8"))
        self._write_chunk(b"event: done\ndata: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()
