"""A build killed midway leaves the last good build (or none) visible, never a partial one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffbench.synth import vismin as synth

# Builds from SOURCE in a process of its own; after the builder has written a few batches it
# touches MARKER and waits, so the test interrupts it at a known point in the middle of writing.
BUILD_THEN_HANG = """
import sys, time
from pathlib import Path
from diffbench import building

source, marker = sys.argv[1], Path(sys.argv[2])
cls = building.builder_class("vismin")
original = cls._bench_table
written = []

def slow_bench_table(self, *args, **kwargs):
    written.append(1)
    if len(written) == 3:
        marker.touch()
        time.sleep(600)
    return original(self, *args, **kwargs)

cls._bench_table = slow_bench_table
building.build("vismin", "bench", source=source)
"""

LOAD = """
import json
from datasets import load_dataset
try:
    print(json.dumps({"rows": load_dataset("vismin", split="test").num_rows}))
except Exception as err:
    print(json.dumps({"error": type(err).__name__, "message": str(err)}))
"""


def _run(code, env, cwd, *args):
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "previous_build"), [(signal.SIGINT, True), (signal.SIGKILL, False)],
                         ids=["sigint-after-a-good-build", "sigkill-first-build"])
def test_interrupted_build_is_never_visible(signum, previous_build, tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    small = synth.write_bench(tmp_path / "small", n=8, image_size=(32, 32))
    # Several record batches, so the interruption falls between two written batches.
    big = synth.write_bench(tmp_path / "big", n=450, image_size=(32, 32))
    if previous_build:
        done = subprocess.run([sys.executable, "-m", "diffbench", "build", "vismin", "--source", str(small)],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr

    marker = tmp_path / "marker"
    build = subprocess.Popen([sys.executable, "-c", BUILD_THEN_HANG, str(big), str(marker)], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert build.poll() is None, build.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the build never reached its third batch"
        time.sleep(0.05)
    staging = tmp_path / "hf" / "datasets" / ".diffbench_staging"
    assert list(staging.glob(f"{build.pid}-*/final")) or list(staging.glob(f"{build.pid}-*")), "no build in progress"
    build.send_signal(signum)
    _, stderr = build.communicate(timeout=60)
    assert build.returncode != 0
    if signum == signal.SIGINT:
        assert "KeyboardInterrupt" in stderr
        assert not list(staging.glob(f"{build.pid}-*")), "an interrupted build cleans its staging folder"

    loaded = _run(LOAD, env, tmp_path)
    if previous_build:
        assert loaded == {"rows": 8}
    else:
        # datasets' own answer when no build exists (offline): names the dataset, loads nothing.
        assert loaded["error"] in ("ConnectionError", "FileNotFoundError") and "'vismin'" in loaded["message"], loaded
    assert not list((tmp_path / "hf" / "datasets").glob("vismin/*/*/*.incomplete"))

    done = subprocess.run([sys.executable, "-m", "diffbench", "build", "vismin", "--source", str(big)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert _run(LOAD, env, tmp_path) == {"rows": 450}
    assert not [p for p in staging.iterdir() if p.is_dir()], "the rebuild removed what the killed build left"
