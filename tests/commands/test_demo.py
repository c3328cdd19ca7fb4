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
    assert "metrics: vismin_group_score, diff_caption_score" in out  # loaded by bare name, fresh interpreter
    run_row = re.search(r"^\s+\| .*diffbench-tiny-clip \(this run\) \|(.*)\|$", out, flags=re.M)
    assert run_row, out[-3000:]
    avg = float(run_row.group(1).split("|")[-1].split("±")[0])  # "83.33 ±12.50": the value, then half its interval
    assert avg > 22.22, "the embedded default model scores above chance on the sample bench"
    assert (tmp_path / "runs" / "demo-vismin-diffbench-tiny-clip" / "vismin_scores.csv").is_file()
    # Step 4: CLEVR-Change's official parts, the total on top (the report `diffbench score captions` gives).
    table = re.findall(r"^\s+\| (total|semantic\\_change|color|material|add|drop|move|distractor) \| (\d+) \|", out,
                       flags=re.M)
    parts = [part for part, _ in table]
    counts = {part: int(n) for part, n in table}
    assert parts[:2] == ["total", "semantic\\_change"] and parts[-1] == "distractor" and len(parts) > 3, out[-2000:]
    assert counts["total"] == counts["semantic\\_change"] + counts["distractor"]
    assert sum(counts[part] for part in parts[2:-1]) == counts["semantic\\_change"]  # one change type a pair


def test_cli_lists_its_commands():
    done = subprocess.run([sys.executable, "-m", "diffbench", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = re.findall(r"^    ([a-z][a-z-]*)", done.stdout, flags=re.M)  # the command column of the help
    assert {"build", "publish", "demo", "score"} <= set(listed)
    from diffbench import cli

    assert sorted(listed) == sorted(m.rsplit(".", 1)[1].replace("_", "-") for m in cli.command_modules())


@pytest.mark.slow
def test_demo_never_replaces_a_users_build_of_another_source(tmp_path, monkeypatch):
    """A user's VisMin build from a local release survives `diffbench demo`; the demo builds into its own cache."""
    from datasets import load_dataset

    from diffbench import cli
    from diffbench.data import building, provenance, samples

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    cache = tmp_path / "hf" / "datasets"  # the datasets cache of that HF home, which the demo's process uses
    monkeypatch.setattr(building, "cache_root", lambda: cache)
    release = samples.write_sample("vismin", tmp_path / "release", n=8, seed=5, image_size=(32, 32))
    assert cli.main(["build", "vismin", "--source", str(release)]) == 0
    done = subprocess.run([sys.executable, "-m", "diffbench", "demo", "--n", "12"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Kept: vismin/bench is already built from the folder {release.resolve()}" in done.stdout
    assert "diffbench-demo-datasets" in done.stdout
    assert "bench: 12 samples (320x240 images)" in done.stdout  # the demo ran on its own sample
    assert "synthetic sample: not comparable to published results" in done.stdout
    # The user's build is still what the bare name gives from the user's cache.
    monkeypatch.chdir(tmp_path)  # holds no folder named vismin
    loaded = load_dataset("vismin", split="test", cache_dir=str(cache))
    record = provenance.of_dataset(loaded)
    assert (loaded.num_rows, record["source"], record["folder"]) == (8, "local", str(release.resolve()))


def test_the_demos_samples_are_what_build_source_sample_builds(tmp_path, monkeypatch):
    """`diffbench build clevr_change --source sample` after the demo (README order) is the same build, not another
    source: the demo builds the samples at the CLI's default size (at 160x120 the build exited 2 after it)."""
    from diffbench import cli
    from diffbench.commands import demo
    from diffbench.data import building

    monkeypatch.setattr(building, "cache_root", lambda: tmp_path / "cache")
    assert cli.main(["build", "clevr_change", "--source", "sample"]) == 0
    assert demo.conflicting_builds(None, 0) == []
    assert cli.main(["build", "clevr_change", "--source", "sample", "--image-size", "160x120"]) == 2  # still refused
