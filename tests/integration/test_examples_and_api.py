"""The seed's example programs run unchanged but for their imports; API errors are clear."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tokengate.shared.errors import AsyncFunctionRefused, InvalidTags, NoBackend

from tokengate import task_token_guard

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, cwd: Path, **env: str) -> str:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)], cwd=cwd, env=environ,
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_json_writer_example_writes_every_file(tmp_path):
    run_example("json_writer.py", tmp_path)
    for index in range(10):
        record = json.loads((tmp_path / f"output_{index}.json").read_text())
        assert record["index"] == index


def test_mixed_operations_example(tmp_path):
    out = run_example("mixed_operations.py", tmp_path)
    assert "mixed operations: 60 results" in out


def test_series_saturation_example_shows_backpressure(tmp_path):
    out = run_example("series_saturation.py", tmp_path, SERIES_DURATION="0.2")
    assert "SERIES SATURATION PASSED" in out
    spread = float(out.split("Spread (backpressure window):")[1].split("s")[0])
    assert spread > 0.1  # later tokens waited in their mailboxes


def test_demo_command_prints_the_summary(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tokengate.cli", "demo", "--seconds", "1"], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TOKENGATE_DEMO_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "MIXED ORCHESTRATOR COMPLETE" in done.stdout
    assert "Failed : 0" in done.stdout
    assert "Latency p95" in done.stdout
    assert "Core-worker mapping:" in done.stdout  # the banner, before the run
    assert done.stdout.index("Core-worker mapping:") < done.stdout.index("MIXED ORCHESTRATOR")
    assert "EXCELLENT PERFORMERS (>95% success):" in done.stdout  # the Guard House report


def test_async_functions_are_refused():
    with pytest.raises(AsyncFunctionRefused, match="plain 'def'"):
        @task_token_guard(operation_type="nope")
        async def fetch():
            return 1


def test_bad_tags_are_refused_at_decoration():
    with pytest.raises(InvalidTags, match="SLOW, MODERATE, FAST, INSANE"):
        @task_token_guard(tags={"storage_speed": "warp"})
        def write():
            return 1


def test_calling_without_a_backend_is_a_clear_error():
    @task_token_guard(operation_type="lonely")
    def lonely():
        return 1

    with pytest.raises(NoBackend, match="OperationsCoordinator"):
        lonely()
