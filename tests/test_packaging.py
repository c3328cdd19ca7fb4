"""`pip install .` (a real wheel, not only -e) gives a CLI that finds the builders and metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("diffbench-*.whl")
    return path


def test_wheel_carries_the_hub_folders_but_no_top_level_datasets_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "diffbench/_hub/datasets/vismin/vismin.py" in names
    assert "diffbench/_hub/datasets/vismin/README.md" in names
    assert "diffbench/_hub/metrics/vismin_group_score/vismin_group_score.py" in names
    assert "diffbench/reference/vismin_published_results.csv" in names  # product data never read from ../shared
    assert not [n for n in names if n.startswith(("datasets/", "metrics/"))]
    assert not [n for n in names if n.startswith("diffbench/_hub/") and n.endswith("__init__.py")]


@pytest.mark.slow
def test_installed_wheel_builds_and_loads_by_bare_name(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Only the wheel's copy of diffbench is importable: not the repository's src/.
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HOME": str(tmp_path / "hf"), "PYTHONNOUSERSITE": "1"}
    code = (
        "import sys; sys.path = [p for p in sys.path if 'src' not in p.split('/')[-1:]];"
        "import diffbench.hub_folders as h; print(h.hub_folder('datasets', 'vismin'));"
        "from diffbench.cli import main; main(['build', 'vismin', '--source', 'sample', '--n', '8', '--image-size', '32x32'])"
    )
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == str(target / "diffbench" / "_hub" / "datasets" / "vismin")
    load = subprocess.run([sys.executable, "-c", "from datasets import load_dataset; print(load_dataset('vismin', split='test').num_rows)"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert load.stdout.strip().splitlines()[-1] == "8", load.stderr[-3000:]
