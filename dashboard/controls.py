"""The controls a logged-in operator may apply, checked at this edge, then sent to the gateway.

Each control takes the operator's :class:`Session` (its actor goes to the gateway's audit
log), checks its input with a clear message, calls the gateway through the client, kicks the
poller (the page shows the effect at once) and answers ``{"ok": bool, "message": str, ...}``.
Nothing raises to the caller: a refusal by the gateway is an answer too.

Launching a task goes through the client's session like any call; the gateway does not
audit submissions, so the dashboard records launches in its own audit entries. A launched
token's outcome is handed to ``on_outcome`` (the page that launched it shows it); its result
value only when payloads are shown.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from tokengate.dashboard import model
from tokengate.dashboard.auth import Session
from tokengate.dashboard.metrics import DashboardMetrics
from tokengate.dashboard.poller import Poller
from tokengate.dashboard.source import Source, token_data
from tokengate.shared.errors import BadRequest, TokenGateError, UnknownTask
from tokengate.shared.token import TaskToken

logger = logging.getLogger(__name__)

MAX_REASON = 512
MAX_NAME = 300
MAX_JSON = 64 * 1024
QUARANTINE_ACTIONS = ("replay", "drop")
Outcome = Callable[[Session, dict[str, Any]], None]


class ControlError(BadRequest):
    """Bad input to a control, answered to the page (never sent to the gateway)."""


def _text(payload: dict[str, Any], name: str, limit: int, *, required: bool = True) -> str:
    value = payload.get(name, "")
    if not isinstance(value, str):
        raise ControlError(f"{name} must be text")
    value = value.strip()
    if required and not value:
        raise ControlError(f"{name} is required")
    if len(value) > limit:
        raise ControlError(f"{name} is longer than {limit} characters")
    return value


def parse_arguments(args_text: str, kwargs_text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """JSON arguments of a launch: a list of positional ones, an object of keyword ones."""
    if len(args_text) + len(kwargs_text) > MAX_JSON:
        raise ControlError(f"arguments are larger than {MAX_JSON // 1024} KiB")
    try:
        args = json.loads(args_text) if args_text.strip() else []
        kwargs = json.loads(kwargs_text) if kwargs_text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ControlError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(args, list):
        raise ControlError("positional arguments must be a JSON list, e.g. [1, \"a\"]")
    if not isinstance(kwargs, dict):
        raise ControlError("keyword arguments must be a JSON object, e.g. {\"n\": 3}")
    return tuple(args), kwargs


class Controls:
    """Drain, resume, kill, re-enable, replay/drop, launch, and the token detail."""

    def __init__(self, source: Source, poller: Poller, metrics: DashboardMetrics, *,
                 show_payloads: bool = False, on_outcome: Outcome | None = None) -> None:
        self.source = source
        self.poller = poller
        self.metrics = metrics
        self.show_payloads = show_payloads
        self.on_outcome = on_outcome

    def run(self, action: str, session: Session, payload: Any) -> dict[str, Any]:
        """Apply ``action`` for ``session``; always answers a dict."""
        handler = getattr(self, f"_{action}", None)
        if handler is None or action not in ACTIONS:
            return {"ok": False, "message": f"unknown control {action!r}"}
        try:
            answer = handler(session, payload if isinstance(payload, dict) else {})
        except ControlError as exc:
            answer = {"ok": False, "message": str(exc)}
        except TokenGateError as exc:
            answer = {"ok": False, "message": f"{type(exc).__name__}: {exc}"}
        self.metrics.controls.labels(action, "ok" if answer["ok"] else "refused").inc()
        if action != "token":
            logger.info("control %s by %s: %s", action, session.actor, answer["message"])
            self.poller.kick()
        return answer

    def _drain(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        node = _text(payload, "node", MAX_NAME, required=False)
        reason = _text(payload, "reason", MAX_REASON, required=False)
        message = self.source.operator.drain(node, reason, actor=session.actor)
        return {"ok": True, "message": message}

    def _resume(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        node = _text(payload, "node", MAX_NAME, required=False)
        return {"ok": True, "message": self.source.operator.resume(node, actor=session.actor)}

    def _kill(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        token_id = _text(payload, "token_id", MAX_NAME)
        reply = self.source.operator.kill(token_id, actor=session.actor)
        return {"ok": reply.ok, "message": f"{reply.outcome}: {reply.message}",
                "outcome": reply.outcome}

    def _reenable(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        function = _text(payload, "function", MAX_NAME)
        reply = self.source.operator.reenable(function, actor=session.actor)
        return {"ok": reply.ok, "message": reply.message or f"{function} re-enabled"}

    def _quarantine(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        quarantine_id = _text(payload, "id", MAX_NAME)
        action = _text(payload, "action", 16)
        if action not in QUARANTINE_ACTIONS:
            raise ControlError("action must be replay or drop")
        node = _text(payload, "node", MAX_NAME, required=False)
        reply = self.source.operator.quarantine(quarantine_id, action, node=node,
                                              actor=session.actor)
        return {"ok": reply.ok, "message": reply.message or f"{action} {quarantine_id}"}

    def _token(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        token_id = _text(payload, "token_id", MAX_NAME)
        detail = token_data(self.source.operator.token_detail(token_id))  # unredacted
        return {"ok": True, "message": "", "token": model.token_view(detail, self.show_payloads)}

    def _launch(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        task = _text(payload, "task", MAX_NAME)
        if ":" not in task:
            raise ControlError("task must be a registered name like module:function")
        args, kwargs = parse_arguments(_text(payload, "args", MAX_JSON, required=False),
                                       _text(payload, "kwargs", MAX_JSON, required=False))
        tags = self._tags_of(task)  # checks the name when the agents' tasks are known
        token = self.source.client.submit_by_name(task, args, kwargs, tags=tags)
        self.poller.note_control({"at": time.time(), "actor": session.actor, "action": "launch",
                                  "target": f"{task} -> {token.token_id}", "ok": True,
                                  "result": "submitted"})
        token.add_done_callback(lambda done: self._launched(session, task, done))
        return {"ok": True, "message": f"launched {task} as {token.token_id}",
                "token_id": token.token_id}

    def _tags_of(self, task: str) -> dict[str, Any] | None:
        """The task's weight as its agents registered it (None: the client's default).

        When the gateway reports the agents' tasks, a name none of them registered is
        refused here, with the names that are."""
        view = self.poller.view or {}
        choices = {c["name"]: c for c in view.get("panels", {}).get("tasks", [])}
        if choices and task not in choices:
            names = ", ".join(sorted(choices)[:8])
            raise UnknownTask(f"no agent registered {task} (registered: {names}"
                              f"{', ...' if len(choices) > 8 else ''})")
        weight = choices.get(task, {}).get("weight")
        return {"weight": weight} if weight else None

    def _launched(self, session: Session, task: str, token: TaskToken) -> None:
        outcome: dict[str, Any] = {"token_id": token.token_id, "task": task,
                                   "state": token.state.value, "error_type": token.error_type,
                                   "error_message": token.error_message}
        if self.show_payloads and token.state.value == "completed":
            outcome["result"] = repr(token.result)[:500]
        if self.on_outcome is not None:
            self.on_outcome(session, outcome)


ACTIONS = ("drain", "resume", "kill", "reenable", "quarantine", "token", "launch")
MUTATING = frozenset(ACTIONS) - {"token"}
