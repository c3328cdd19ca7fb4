"""The README's Python API block runs as written (a fresh process with its own, empty HF home)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


def python_block(section: str) -> str:
    """The first ```python block under the README heading ``section``."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", body, re.S)
    assert match, f"no python block under '## {section}'"
    return match.group(1)


@pytest.mark.slow
def test_python_api_block_runs_as_written(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", python_block("Python API")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    *_, bleu_1, last = done.stdout.strip().splitlines()
    assert 0 < float(bleu_1) < 1  # a caption sharing some words with its references
    assert last.endswith(" synthetic"), last  # the OmniDiff sample's provenance
    assert (tmp_path / "vismin-hub" / "README.md").is_file()
