"""TokenGate installs under one name: the top-level folders become tokengate.* packages."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"shared": "tokengate/shared", "gateway": "tokengate/gateway",
           "node_agent": "tokengate/node_agent", "dashboard": "tokengate/dashboard",
           "tokengate": "tokengate"}


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def test_installed_names_are_tokengate_only(tmp_path):
    """Outside the repository, ``import shared`` finds nothing and tokengate.* finds all."""
    code = ("import importlib.util, tokengate.shared, tokengate.gateway, tokengate.node_agent\n"
            "assert importlib.util.find_spec('shared') is None, 'shared is importable'\n"
            "assert importlib.util.find_spec('gateway') is None, 'gateway is importable'\n"
            "assert importlib.util.find_spec('node_agent') is None, 'node_agent is importable'\n"
            "print(tokengate.shared.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).parent == ROOT / "shared"


def test_the_wheel_holds_one_top_level_package_with_every_subpackage(tmp_path):
    """Every folder with an ``__init__.py`` lands in the wheel under tokengate/, with the
    Lua scripts and web assets beside the code."""
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                          "--no-build-isolation", "-q", "-w", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    if out.returncode != 0:
        pytest.fail(out.stderr)
    wheel = next(tmp_path.glob("tokengate-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"tokengate", wheel.name.split("-")[0]
                                                      + "-" + wheel.name.split("-")[1]
                                                      + ".dist-info"}
    for folder, installed in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.relative_to(ROOT / folder).as_posix()
            assert f"{installed}/{relative}" in names, f"{folder}/{relative} not packaged"
        for asset in (ROOT / folder).rglob("*"):
            if asset.suffix in (".lua", ".js", ".css", ".html") and "node_modules" not in \
                    asset.parts:
                relative = asset.relative_to(ROOT / folder).as_posix()
                assert f"{installed}/{relative}" in names, f"{folder}/{relative} not packaged"
