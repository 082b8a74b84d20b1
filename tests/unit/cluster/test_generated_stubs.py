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
    scripts = sorted((ROOT / "gateway" / "ledger" / "lua").glob("*.lua"))
    assert len(scripts) >= 9
    for script in scripts:
        header = script.read_text()[:2000]
        assert "Keys" in header, script.name
        assert script.name == "lib.lua" or "ARGV[1]" in header, script.name


def test_the_docs_show_the_state_table_of_the_code():
    from tokengate.gateway.ledger.transitions import table_markdown

    text = (ROOT / "docs" / "cluster.md").read_text()
    shown = text.split("<!-- state-table -->\n")[1].split("\n<!-- /state-table -->")[0]
    assert shown == table_markdown(), "docs/cluster.md's state table differs from the code's"
