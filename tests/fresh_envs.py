"""Fresh virtual environments for the tests, made in seconds.

The third-party wheels are fetched once into a *wheelhouse* kept between test sessions
(``~/.cache/diffbench/test-wheelhouse/<key>``; ``DIFFBENCH_TEST_WHEELHOUSE`` moves it), keyed by
everything that decides its contents: the project's requirements, every Hub folder's requirements.txt,
the torch pin and the Python. ``pip wheel`` fills it (pip's own configuration applies, so the torch
build on this machine's disk is taken, pinned to the version installed here: a plain ``torch`` would
be a multi-GB CUDA build). Each environment is then made by uv, offline, from the wheelhouse and the
project's freshly built wheel (uv keeps the unpacked wheels in its cache and links them: about 2 s for
the core install, 10 s the first time torch is unpacked); without uv, by venv and pip, slower.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: the Hub folders that install with a requirements.txt of their own
HUB_FOLDERS = ("metrics/vismin_group_score", "metrics/diff_caption_score", "space")
#: extras the wheelhouse covers besides the core (the Space's)
EXTRAS = "space,eval"


def project_version() -> str:
    import diffbench

    return diffbench.__version__


def build_wheel(out: Path) -> Path:
    """The project's wheel, built from this checkout (hatchling from the running environment)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("diffbench-*.whl")
    return wheel


def _torch_pin() -> str:
    """``torch==X.Y.Z``: the release installed here (its local label dropped), so pip takes the same build."""
    try:
        return "torch==" + importlib.metadata.version("torch").split("+")[0]
    except importlib.metadata.PackageNotFoundError:
        return ""


def _folder_requirements() -> list[Path]:
    return [REPO_ROOT / folder / "requirements.txt" for folder in HUB_FOLDERS]


def wheelhouse_key() -> str:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    parts = [repr(project["dependencies"]), repr(project["optional-dependencies"]), _torch_pin(),
             sys.version.split()[0], platform.machine()]
    parts += [path.read_text() for path in _folder_requirements()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def wheelhouse(dist: Path) -> Path:
    """The folder of third-party wheels every fresh environment installs from (made once, then reused)."""
    base = Path(os.environ.get("DIFFBENCH_TEST_WHEELHOUSE") or Path.home() / ".cache" / "diffbench" / "test-wheelhouse")
    folder = base / wheelhouse_key()
    if (folder / ".complete").is_file():
        return folder
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
    constraints = staging / "constraints.txt"
    constraints.write_text(_torch_pin() + "\n")
    requirements = [arg for path in _folder_requirements() for arg in ("-r", str(path))]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(staging), "--find-links", str(dist), "-c", str(constraints),
         f"diffbench[{EXTRAS}]=={project_version()}", *requirements],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, f"filling the test wheelhouse failed:\n{done.stderr[-3000:]}"
    for stale in [*staging.glob("diffbench-*"), constraints]:
        stale.unlink()  # the project's own wheel comes fresh from each session
    (staging / ".complete").touch()
    try:
        staging.rename(folder)
    except OSError:  # another session finished first
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _uv() -> list[str] | None:
    if importlib.util.find_spec("uv") is None:
        return None
    return [sys.executable, "-m", "uv"]


def make_venv(path: Path, requirements: list[str], find_links: list[Path]) -> Path:
    """A new virtual environment at ``path`` with ``requirements`` (pip syntax, ``-r FILE`` allowed) installed
    offline from ``find_links`` only; returns its ``bin`` folder."""
    links = [arg for folder in find_links for arg in ("--find-links", str(folder))]
    uv = _uv()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
    if uv:
        steps = [[*uv, "venv", "-q", "--python", sys.executable, str(path)],
                 [*uv, "pip", "install", "-q", "--python", str(path / "bin" / "python"), "--offline", "--no-index",
                  *links, *requirements]]
    else:
        steps = [[sys.executable, "-m", "venv", str(path)],
                 [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", *links, *requirements]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, f"{' '.join(step)}\n{done.stderr[-3000:]}"
    return path / "bin"


def clean_env(bin_dir: Path, hf_home: Path) -> dict:
    """The environment of a process in a fresh venv: its own bin first, an empty HF home, offline, no
    PYTHONPATH, no user site: nothing of the development install leaks in."""
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "JAVA_HOME")}
    return {**keep, "PATH": f"{bin_dir}{os.pathsep}/usr/local/bin:/usr/bin:/bin", "HF_HOME": str(hf_home),
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "PYTHONNOUSERSITE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False", "VIRTUAL_ENV": str(bin_dir.parent)}
