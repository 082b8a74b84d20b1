"""The exception tree: every error a user can meet is exported, and every error name the
gateway (or an agent through it) can send maps back to the same class in the client."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from tokengate.dashboard.auth import Session
from tokengate.dashboard.controls import ControlError, Controls
from tokengate.dashboard.metrics import DashboardMetrics
from tokengate.gateway import items
from tokengate.shared import errors, wire
from tokengate.shared.wire_errors import (
    STATUS_OF,
    abort_details,
    error_from_rpc,
    rebuild_exception,
)

import tokengate

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = errors.public_errors()


def test_every_public_error_is_exported_from_the_facade():
    assert len(PUBLIC) > 30
    missing = [cls.__name__ for cls in PUBLIC if cls.__name__ not in tokengate.__all__]
    assert missing == []
    for cls in PUBLIC:
        assert getattr(tokengate, cls.__name__) is cls


def test_every_error_has_a_one_line_docstring():
    assert [cls.__name__ for cls in PUBLIC if not (cls.__doc__ or "").strip()] == []


def test_the_dashboards_control_error_is_in_the_tree():
    assert issubclass(ControlError, errors.TokenGateError)
    assert issubclass(ControlError, errors.BadRequest)


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_a_rejection_of_any_error_comes_back_as_its_class(cls):
    error = cls("why")
    sent = items.rejection("t1", error)
    assert sent.error_type == errors.wire_name(cls) == cls.__name__
    back = rebuild_exception(sent.error_type, sent.error_message)
    if cls is errors.TaskFailed:  # carries the original type: rebuilt around the name
        assert isinstance(back, errors.TaskFailed)
    else:
        assert type(back) is cls and str(back) == "why"


def test_names_are_looked_up_in_the_error_module_only():
    assert errors.by_wire_name("AgentLost") is errors.AgentLost
    assert errors.by_wire_name("ControlError") is None  # a class of another module
    assert errors.by_wire_name("wire_name") is None
    assert errors.by_wire_name("annotations") is None
    assert isinstance(rebuild_exception("Popen", "x"), errors.TaskFailed)


def test_the_wire_constants_name_classes():
    names = {value for key, value in vars(wire).items()
             if key.isupper() and type(value) is str
             and key not in ("SESSION_OPEN", "SHARD", "COMMAND_BUSY")}
    names |= set(wire.NOT_STORED)
    assert {"AgentLost", "TokenKilled", "PlacementTimeout", "GatewayBusy"} <= names
    assert sorted(n for n in names if errors.by_wire_name(n) is None) == []


# Error names written as literals where an outcome is stored or sent: the Lua scripts
# ('$F_ERROR_TYPE', 'AgentLost'), Python keyword arguments (error_type="...") and stored
# fields (ERROR_TYPE: b"..."). Each must name a class the client rebuilds.
LITERALS = (re.compile(r"F_ERROR_TYPE',\s*'(\w+)'"),
            re.compile(r"error_type=\"(\w+)\""),
            re.compile(r"ERROR_TYPE:\s*b\"(\w+)\""))


def _literal_names() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for folder in ("gateway", "node_agent", "shared"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".lua") or "rpc" in path.parts:
                continue
            text = path.read_text()
            for pattern in LITERALS:
                for name in pattern.findall(text):
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_error_name_written_in_the_sources_maps_back_to_a_class():
    unknown = {name: where for name, where in _literal_names().items()
               if errors.by_wire_name(name) is None}
    assert unknown == {}


@pytest.mark.parametrize("cls", sorted(STATUS_OF, key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_an_aborted_call_comes_back_as_its_class(cls):
    class Failed(grpc.RpcError):
        def code(self):
            return STATUS_OF[cls]

        def details(self):
            return abort_details(cls("no room"))

    back = error_from_rpc(Failed(), "submit")
    if STATUS_OF[cls] in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE):
        assert isinstance(back, (errors.Unauthenticated, errors.GatewayUnavailable))
    else:
        assert type(back) is cls and str(back) == "no room"


class _Poller:
    """What a control reads of the poller: the view (the agents' tasks), and its kick."""

    view = {"panels": {"tasks": [{"name": "m:f", "weight": "light"}]}}

    def kick(self) -> None:
        pass


def test_the_dashboard_answers_its_refusals_with_the_error_names_of_the_tree():
    controls = Controls(None, _Poller(), DashboardMetrics())  # type: ignore[arg-type]
    session = Session(sid="s", user="ops", created=0.0, last_used=0.0)
    unknown = controls.run("launch", session, {"task": "m:g"})
    assert unknown == {"ok": False,
                       "message": "UnknownTask: no agent registered m:g (registered: m:f)"}
    bad = controls.run("launch", session, {"task": "nocolon"})
    assert bad["ok"] is False and bad["message"].startswith("task must be a registered name")
