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

from diffbench.data.synth import vismin as synth

# Builds from SOURCE in a process of its own; after the builder has written a few batches it
# touches MARKER and waits, so the test interrupts it at a known point in the middle of writing.
BUILD_THEN_HANG = """
import sys, time
from pathlib import Path
from diffbench.data import building

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
building.build("vismin", "bench", source=source, overwrite=True)
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

    done = subprocess.run([sys.executable, "-m", "diffbench", "build", "vismin", "--source", str(big), "--overwrite"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert _run(LOAD, env, tmp_path) == {"rows": 450}
    assert not [p for p in staging.iterdir() if p.is_dir()], "the rebuild removed what the killed build left"


# Builds the sample's `bench` over an earlier build and kills itself (SIGKILL: no clean-up runs) at one
# step of the swap into place.
KILL_AT_SWAP_POINT = """
import os, signal, sys
from diffbench import files
from diffbench.data import building

stage = sys.argv[1]
def kill_at(point):
    if point == stage:
        os.kill(os.getpid(), signal.SIGKILL)
files._swap_point = kill_at
building.build_configs("vismin", ["bench"], "sample", n=12, seed=0, image_size=(32, 32), overwrite=True)
"""

LOAD_BOTH = """
import json
from datasets import load_dataset
out = {}
for config in (None, "bench"):
    try:
        ds = load_dataset("vismin", config, split=None)
        out[str(config)] = {split: d.num_rows for split, d in ds.items()}
    except Exception as err:
        out[str(config)] = type(err).__name__
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["between-renames", "after-exchange"])
def test_a_kill_during_the_swap_leaves_a_good_build_and_the_next_run_restores_or_cleans(stage, tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    if stage == "between-renames":
        env["DIFFBENCH_NO_RENAME_EXCHANGE"] = "1"  # the journaled fallback of file systems without RENAME_EXCHANGE
    build = [sys.executable, "-m", "diffbench", "build", "vismin", "--source", "sample", "--n", "8",
             "--image-size", "32x32"]
    done = subprocess.run([*build, "--config", "all"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _run(LOAD_BOTH, env, tmp_path) == {"None": {"test": 8}, "bench": {"test": 8}}

    killed = subprocess.run([sys.executable, "-c", KILL_AT_SWAP_POINT, stage], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    staging = tmp_path / "hf" / "datasets" / ".diffbench_staging"
    if stage == "after-exchange":
        # One atomic step: the new build is in place, the old one waits in staging.
        assert _run(LOAD_BOTH, env, tmp_path) == {"None": {"test": 12}, "bench": {"test": 12}}
    else:
        # Between the renames the bench build is away (the fallback's one gap); the journal says where.
        assert list(staging.glob("*/restore.json"))
        assert _run(LOAD_BOTH, env, tmp_path)["bench"] != {"test": 12}

    # The next run of any build puts the old build back (or deletes the replaced one), and leaves no leftovers.
    done = subprocess.run([*build, "--config", "pairs"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = 12 if stage == "after-exchange" else 8
    assert _run(LOAD_BOTH, env, tmp_path) == {"None": {"test": rows}, "bench": {"test": rows}}
    assert not [p for p in staging.iterdir() if p.is_dir()]
    assert len(list((tmp_path / "hf" / "datasets" / "vismin" / "bench").glob("*/*"))) == 1


# -- an error (not a kill) between the two renames of the fallback swap ----------------------------------


def _fail_rename_onto(monkeypatch, target: Path) -> None:
    """Make the first ``Path.rename`` onto ``target`` after the old folder left it raise (the swap's second
    rename); a later one (putting the old folder back) succeeds."""
    original = Path.rename
    failed = []

    def rename(self, other):
        if Path(other) == target and not target.exists() and not failed:
            failed.append(self)
            raise OSError(28, "No space left on device (injected)", str(other))
        return original(self, other)

    monkeypatch.setattr(Path, "rename", rename)


def test_a_failing_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    from diffbench import files

    monkeypatch.setenv("DIFFBENCH_NO_RENAME_EXCHANGE", "1")
    destination, new, trash = tmp_path / "dest", tmp_path / "staging" / "new", tmp_path / "staging" / "old"
    destination.mkdir()
    (destination / "data.arrow").write_text("old build")
    new.mkdir(parents=True)
    (new / "data.arrow").write_text("new build")
    _fail_rename_onto(monkeypatch, destination)
    with pytest.raises(OSError, match="injected"):
        files.replace_directory(new, destination, trash)
    assert (destination / "data.arrow").read_text() == "old build"
    assert not trash.exists() and not (trash.parent / files.RESTORE_JOURNAL).exists()


def test_a_build_whose_swap_fails_leaves_the_previous_build(tmp_path, monkeypatch):
    from diffbench.data import building, samples

    monkeypatch.setenv("DIFFBENCH_NO_RENAME_EXCHANGE", "1")
    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    source = samples.write_sample("vismin", tmp_path / "release", n=8, image_size=(32, 32))
    first = building.build("vismin", "bench", source=str(source))
    _fail_rename_onto(monkeypatch, first.path)
    with pytest.raises(OSError, match="injected"):
        building.build("vismin", "bench", source=str(source))
    assert building.load_built("vismin", "bench", "test").num_rows == 8
    assert not [p for p in (root / building.STAGING_DIRNAME).iterdir() if p.is_dir()]


def test_a_publish_whose_swap_fails_leaves_the_previous_folder(tmp_path, monkeypatch):
    from diffbench.data import building, publishing, samples

    monkeypatch.setenv("DIFFBENCH_NO_RENAME_EXCHANGE", "1")
    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    source = samples.write_sample("vismin", tmp_path / "release", n=8, image_size=(32, 32))
    building.build("vismin", "bench", source=str(source))
    out = publishing.publish("vismin", tmp_path / "hub", configs=["bench"])
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    _fail_rename_onto(monkeypatch, out)
    with pytest.raises(OSError, match="injected"):
        publishing.publish("vismin", out, configs=["bench"], overwrite=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "hub", "release"]
