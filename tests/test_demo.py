"""`diffbench demo`: the main job on the embedded sample, offline, in a clean HF home."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_builds_then_loads_by_bare_name_and_summarises(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "diffbench", "demo", "--n", "12"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "bench: 12 samples (320x240 images); pairs: 12 training pairs" in out
    rows = dict(re.findall(r"^\s+(object|attribute|counting|relation)\s+(\d+)\s+\d+\s", out, flags=re.M))
    assert sorted(rows) == ["attribute", "counting", "object", "relation"]
    assert sum(map(int, rows.values())) == 12


def test_cli_lists_its_commands():
    done = subprocess.run([sys.executable, "-m", "diffbench", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for command in ("build", "publish", "demo", "score"):
        assert command in done.stdout
