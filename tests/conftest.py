"""Test set-up: every test session gets its own Hugging Face home and runs offline.

The environment is set at import time, before any test imports `datasets` or `evaluate`
(both read it once at import), and subprocesses started by tests inherit it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SESSION_HF_HOME = Path(tempfile.mkdtemp(prefix="diffbench-tests-hf-"))
os.environ["HF_HOME"] = str(_SESSION_HF_HOME)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
for _var in ("HF_DATASETS_CACHE", "HF_MODULES_CACHE", "HF_HUB_CACHE", "HF_EVALUATE_CACHE"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def hf_home() -> Path:
    return _SESSION_HF_HOME


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_HF_HOME, ignore_errors=True)


VISMIN_SAMPLE_N = 40  # ten a category: small enough for seconds, every category present


@pytest.fixture(scope="session")
def vismin_built(hf_home):
    """The VisMin sample, every configuration built into this session's datasets cache.

    Returns the build summaries; ``load_dataset("vismin")`` and
    ``diffbench.building.load_built("vismin", "bench", "test")`` work once it has run.
    """
    from diffbench.building import build_configs

    return build_configs(
        "vismin", ["bench", "train", "pairs"], "sample", n=VISMIN_SAMPLE_N, seed=0, image_size=(96, 72),
        overwrite=True,  # whichever sample an earlier test built into the session cache
    )
