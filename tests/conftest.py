"""Test set-up: every test session gets its own Hugging Face home and runs offline.

The environment is set at import time, before any test imports `datasets` or `evaluate`
(both read it once at import), and subprocesses started by tests inherit it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

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
        pytest.skip(f"needs the real upstream files (Spot-the-Diff and Image Editing Request annotations, the "
                    f"published VisMin table) in the project's shared folder, expected at {SHARED}: put that "
                    f"folder beside this checkout to run this test")
    return SHARED


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_HF_HOME, ignore_errors=True)


#: The test files that run longest (a minute or more of one core each), started first: under ``make test``
#: (``-n auto --dist loadfile``, a file a worker) a long file dealt out last leaves one worker running it alone
#: while the other waits.
LONGEST_FIRST = ("release/test_readme.py", "release/test_fresh_env.py", "commands/test_demo.py",
                 "space/test_space.py", "space/test_space_browser.py", "harness/test_eval.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith(name)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: every other test keeps its order


VISMIN_SAMPLE_N = 40  # ten a category: small enough for seconds, every category present


@pytest.fixture(scope="session")
def vismin_built(hf_home):
    """The VisMin sample, every configuration built into this session's datasets cache.

    Returns the build summaries; ``load_dataset("vismin")`` and
    ``diffbench.data.building.load_built("vismin", "bench", "test")`` work once it has run.
    """
    from diffbench.data.building import build_configs

    return build_configs(
        "vismin", ["bench", "train", "pairs"], "sample", n=VISMIN_SAMPLE_N, seed=0, image_size=(96, 72),
        overwrite=True,  # whichever sample an earlier test built into the session cache
    )


class EvalDone(NamedTuple):
    """One ``diffbench eval`` run in this process: its exit code and what it printed (``code, out, err``)."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def eval_cli(capsys):
    """``diffbench eval ARGS --no-progress`` through ``diffbench.cli.main``, as the console script runs it: an
    :class:`EvalDone`; raises, with the end of stderr, when the exit code is not 0 unless ``check=False``.
    (Here, not in tests/harness/conftest.py: a second conftest would take the module name ``conftest`` that
    test files import ``require_module`` and ``REPO_ROOT`` from.)"""
    from diffbench.cli import main

    def run(*args, check=True) -> EvalDone:
        capsys.readouterr()
        code = main(["eval", *map(str, args), "--no-progress"])
        captured = capsys.readouterr()
        if check and code != 0:
            raise AssertionError(f"eval {args} failed ({code}):\n{captured.err[-3000:]}")
        return EvalDone(code, captured.out, captured.err)

    return run


def require_module(name: str, why: str):
    """``pytest.importorskip`` that fails instead of skipping under CI (``CI`` set, as CI runs with CI=true):
    a packaging regression that loses a test dependency must not pass as a skip there."""
    if os.environ.get("CI"):
        import importlib

        try:
            return importlib.import_module(name)
        except ImportError as err:
            pytest.fail(f"{name} does not import under CI ({type(err).__name__}: {err}); {why}", pytrace=False)
    return pytest.importorskip(name, reason=why)


@pytest.fixture(scope="session")
def transformers_server(tmp_path_factory):
    """(base_url, model name) of one ``transformers serve`` (the ``transformers[serving]`` extra) running a
    tiny LLaVA built by ``diffbench.models.tiny`` on 127.0.0.1, shared by the session's API tests.
    Without the serving extra: skipped with the reason, or failed under CI."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    why = "transformers serve needs transformers[serving]"
    require_module("fastapi", why)
    require_module("uvicorn", why)
    found = Path(sys.executable).with_name("transformers")
    cli = str(found) if found.exists() else shutil.which("transformers")
    if cli is None:
        if os.environ.get("CI"):
            pytest.fail("the transformers CLI is not installed under CI", pytrace=False)
        pytest.skip("the transformers CLI is not installed")
    from diffbench.models.tiny import build_tiny_image_text_to_text

    root = tmp_path_factory.mktemp("served")
    model_dir = str(build_tiny_image_text_to_text(root / "tiny-llava", seed=0))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(root / "serve.log", "wb")
    process = subprocess.Popen(
        [cli, "serve", model_dir, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # its own group: ended with all it starts
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "warning"},
    )
    try:
        import httpx

        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited with {process.returncode}: "
                            + (root / "serve.log").read_text(errors="replace")[-2000:])
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not answer /health within 180 s")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", model_dir
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            try:
                os.killpg(process.pid, sig)  # its own session: only what it started
                process.wait(timeout=15)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


@pytest.fixture(scope="session")
def coco_meteor():
    """pycocoevalcap's own Meteor (one JVM for the session: its start costs ~8 s), the parity reference."""
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()
    yield meteor
    meteor.meteor_p.stdin.close()
    meteor.meteor_p.kill()
    meteor.meteor_p.wait()
