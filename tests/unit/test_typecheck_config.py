"""The type checker's configuration names modules that exist: mypy ignores an override for
a module it never meets, so a renamed policy module would silently leave strict mode."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _overrides() -> list[dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["mypy"]["overrides"]


def test_every_module_checked_strictly_exists():
    strict = [o for o in _overrides() if o.get("disallow_untyped_defs")]
    assert len(strict) == 1
    modules = strict[0]["module"]
    assert "tokengate.gateway.ledger.*" in modules and "tokengate.gateway.placement" in modules
    missing = [m for m in modules
               if importlib.util.find_spec(m.removesuffix(".*")) is None]
    assert missing == []


def test_lint_and_ci_run_the_type_checker():
    assert "scripts/typecheck.sh" in (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("scripts/typecheck.sh") < ci.index("python3 -m pytest")
