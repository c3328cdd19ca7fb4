"""The release: a versioned wheel and sdist that `twine check` accepts, carrying the Hub folders, with one
version and one Gradio SDK version everywhere. (That the installed wheel and each Hub folder work on their
own, in fresh environments, is tests/release/test_fresh_env.py.)"""

from __future__ import annotations

import email
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile

import pytest

from conftest import REPO_ROOT
from diffbench import __version__

HUB_READMES = ("metrics/vismin_group_score/README.md", "metrics/diff_caption_score/README.md", "space/README.md")
HUB_REQUIREMENTS = ("metrics/vismin_group_score/requirements.txt", "metrics/diff_caption_score/requirements.txt",
                    "space/requirements.txt")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """``python -m build`` (wheel and sdist) without build isolation: hatchling from this environment."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "-o", str(out), str(REPO_ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("diffbench-*.whl")
    (sdist,) = out.glob("diffbench-*.tar.gz")
    return wheel, sdist


def _metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(archive.read(name))


def test_twine_check_passes(dist):
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_wheel_metadata_is_release_ready(dist):
    meta = _metadata(dist[0])
    assert meta["Version"] == __version__
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE"
    assert any(c.startswith("Programming Language :: Python :: 3") for c in meta.get_all("Classifier"))
    assert meta.get_all("Project-URL")
    core = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    heavy = [r for r in core if re.match(r"(torch|transformers|gradio|accelerate)\b", r)]
    assert heavy == [], "the core install must not need torch, transformers or gradio"
    extras = set(meta.get_all("Provides-Extra"))
    assert {"eval", "train", "space", "openclip", "api", "serving", "dev"} <= extras


def test_wheel_carries_the_hub_folders_but_no_top_level_datasets_package(dist):
    names = zipfile.ZipFile(dist[0]).namelist()
    assert "diffbench/_hub/datasets/vismin/vismin.py" in names
    assert "diffbench/_hub/datasets/vismin/README.md" in names
    assert "diffbench/_hub/metrics/vismin_group_score/vismin_group_score.py" in names
    assert "diffbench/_hub/metrics/vismin_group_score/vismin_rule.py" in names  # its local import
    # the lmms-eval task folders (diffbench lmms-eval path), YAML and shared template included
    assert {"diffbench/lmms_eval_tasks/vismin/vismin.yaml", "diffbench/lmms_eval_tasks/vismin/utils.py",
            "diffbench/lmms_eval_tasks/captions/_caption_template_yaml",
            "diffbench/lmms_eval_tasks/captions/clevr_change.yaml"} <= set(names)
    assert "diffbench/_hub/metrics/diff_caption_score/requirements.txt" in names
    assert "diffbench/_hub/space/app.py" in names and "diffbench/_hub/space/requirements.txt" in names
    assert "diffbench/reference/vismin_published_results.csv" in names  # product data never read from ../shared
    assert "diffbench/models/default/model.safetensors" in names
    assert not [n for n in names if n.startswith(("datasets/", "metrics/", "space/"))]
    assert not [n for n in names if n.startswith("diffbench/_hub/") and n.endswith("__init__.py")]
    assert not [n for n in names if "__pycache__" in n]


def test_sdist_builds_the_same_wheel_contents(dist, tmp_path):
    with tarfile.open(dist[1]) as archive:
        names = archive.getnames()
        archive.extractall(tmp_path, filter="data")
    root = f"diffbench-{__version__}"
    for path in ("pyproject.toml", "LICENSE", "README.md", "metrics/diff_caption_score/packages.txt",
                 "space/requirements.txt", "src/diffbench/__init__.py"):
        assert f"{root}/{path}" in names, path
    assert not [n for n in names if "/.venv/" in n or "__pycache__" in n]
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(tmp_path / "out"), str(tmp_path / root)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (rebuilt,) = (tmp_path / "out").glob("*.whl")
    assert sorted(zipfile.ZipFile(rebuilt).namelist()) == sorted(zipfile.ZipFile(dist[0]).namelist())


def test_one_version_everywhere():
    """The package, the wheel and every Hub folder that installs diffbench name the same release."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert "version" in project["dynamic"]  # read from src/diffbench/__init__.py: one place to change
    pins = {}
    for path in HUB_REQUIREMENTS:
        for line in (REPO_ROOT / path).read_text().splitlines():
            match = re.match(r"diffbench(\[[\w,]+\])?\s*(==|>=|~=)?\s*([\w.]+)?", line.strip())
            if match:
                pins[path] = (match.group(2), match.group(3))
    assert pins == {path: ("==", __version__) for path in ("metrics/diff_caption_score/requirements.txt",
                                                            "space/requirements.txt")}


def test_one_gradio_sdk_version_everywhere_and_every_requirement_admits_it():
    import gradio
    from packaging.requirements import Requirement

    versions = {}
    for path in HUB_READMES:
        front = (REPO_ROOT / path).read_text().split("---")[1]
        versions[path] = re.search(r"^sdk_version:\s*(\S+)$", front, re.M).group(1)
    assert set(versions.values()) == {gradio.__version__}, versions  # what the tests run against
    specs = [Requirement(line) for path in HUB_REQUIREMENTS for line in (REPO_ROOT / path).read_text().splitlines()
             if line.strip().startswith("gradio")]
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs += [Requirement(r) for r in project["optional-dependencies"]["space"] if r.startswith("gradio")]
    assert specs and all(s.specifier.contains(gradio.__version__) for s in specs if s.name == "gradio"), specs


def test_extras_module_doctest_and_every_mapped_extra_exists():
    import doctest

    from diffbench import extras

    failures, attempted = doctest.testmod(extras)
    assert attempted > 0 and failures == 0
    declared = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert set(extras.EXTRA_OF_MODULE.values()) | set(extras.EXTRA_OF_COMMAND.values()) <= declared
