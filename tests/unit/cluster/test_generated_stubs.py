"""The committed gRPC stubs are exactly what scripts/gen_proto.sh makes from proto/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
STUBS = ("tokengate_pb2.py", "tokengate_pb2.pyi", "tokengate_pb2_grpc.py")


def test_regenerating_the_stubs_changes_nothing(tmp_path):
    pytest.importorskip("grpc_tools")
    out = tmp_path / "tokengate" / "shared" / "rpc"
    out.mkdir(parents=True)
    shutil.copy(ROOT / "proto" / "tokengate.proto", out)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Itokengate/shared/rpc=tokengate/shared/rpc",
         "--python_out=.", "--grpc_python_out=.", "--pyi_out=.",
         "tokengate/shared/rpc/tokengate.proto"],
        cwd=tmp_path, check=True)
    for name in STUBS:
        fresh = (out / name).read_text()
        committed = (ROOT / "shared" / "rpc" / name).read_text()
        assert fresh == committed, f"shared/rpc/{name} is stale: run scripts/gen_proto.sh"


def test_every_lua_script_documents_its_keys_and_arguments():
    for script in (ROOT / "gateway" / "lua").glob("*.lua"):
        header = script.read_text().split("\n\n")[0] + script.read_text()[:1500]
        assert "Keys" in header and "ARGV[1]" in header, script.name
