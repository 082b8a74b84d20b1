"""The page's JavaScript keeps its view by the same rules as ``diff.apply`` (run under node)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from test_dashboard_diff import _random_status, _views
from tokengate.dashboard.diff import diff
from view_factories import NOW, reading

VIEW_JS = Path(__file__).resolve().parents[3] / "dashboard" / "static" / "js" / "view.js"
NODE = shutil.which("node")

SCRIPT = """
import { applyPatch, emptyView } from %s;
import { readFileSync } from "node:fs";
const patches = JSON.parse(readFileSync(0, "utf8"));
let view = emptyView();
for (const patch of patches) applyPatch(view, patch);
process.stdout.write(JSON.stringify(view));
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_page_rebuilds_the_same_view_from_the_patches(tmp_path):
    rng = random.Random(3)
    views = _views([reading(at=NOW + i, status=_random_status(rng, i)) for i in range(40)])
    patches, previous = [], None
    for view in views:
        patches.append(diff(previous, view))
        previous = view
    out = subprocess.run([NODE, "--input-type=module", "-e",
                          SCRIPT % json.dumps(VIEW_JS.as_uri())],
                         input=json.dumps(patches), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(views[-1]))
