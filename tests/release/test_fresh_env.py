"""Each install works with only what its own files bring, in a fresh virtual environment:

- the core wheel (no torch, transformers or gradio) builds the datasets, loads both metrics by bare name
  in a fresh interpreter from another directory, scores submissions and publishes;
- each Hub folder (``metrics/NAME``, ``space``) copied alone installs its requirements.txt (the project's
  wheel offered with ``--find-links``, as a wheel on PyPI would be), computes its metric and serves its
  Gradio app (``/gradio_api/info``);
- a published dataset folder loads with ``datasets`` alone.

Slow: each test makes a virtual environment and starts processes (JVMs, Gradio servers). The wheels
come from a wheelhouse filled once and kept between sessions (``fresh_envs.py``), so a venv costs
seconds and PyPI is asked only when a requirement changes.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from fresh_envs import REPO_ROOT, build_wheel, clean_env, make_venv, project_version, wheelhouse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build_wheel(out)
    return out


@pytest.fixture(scope="module")
def find_links(dist) -> list[Path]:
    return [dist, wheelhouse(dist)]


def run(bin_dir: Path, args: list[str], cwd: Path, hf_home: Path, timeout: int = 300, ok: bool = True):
    done = subprocess.run(args, cwd=cwd, env=clean_env(bin_dir, hf_home), capture_output=True, text=True, timeout=timeout)
    if ok:
        assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def core(tmp_path_factory, find_links):
    """The core install in a fresh venv, with the VisMin and Spot-the-Diff samples built in its own HF home."""
    root = tmp_path_factory.mktemp("core")
    bin_dir = make_venv(root / "venv", [f"diffbench=={project_version()}"], find_links)
    hf_home, work = root / "hf", root / "work"
    work.mkdir()
    diffbench = str(bin_dir / "diffbench")
    run(bin_dir, [diffbench, "build", "vismin", "--config", "all", "--source", "sample", "--n", "8",
                  "--image-size", "32x32"], work, hf_home)
    run(bin_dir, [diffbench, "build", "spot_the_diff", "--source", "sample"], work, hf_home)
    run(bin_dir, [diffbench, "install-metrics"], work, hf_home)
    elsewhere = root / "elsewhere"  # a fresh interpreter in a directory that holds no dataset or metric folder
    elsewhere.mkdir()
    out = run(bin_dir, [str(bin_dir / "python"), "-c", LOAD_BY_BARE_NAME], elsewhere, hf_home).stdout
    return bin_dir, hf_home, work, elsewhere, json.loads(out.strip().splitlines()[-1])


LOAD_BY_BARE_NAME = """
import csv, json
import evaluate
from datasets import load_dataset

bench = load_dataset("vismin", "bench", split="test")
vismin = evaluate.load("vismin_group_score")
right = vismin.compute(T0_I0=[0.9, 0.5], T0_I1=[0.2, 0.5], T1_I0=[0.1, 0.1], T1_I1=[0.8, 0.9], categories=["object", "object"])
captions = evaluate.load("diff_caption_score")
scores = captions.compute(predictions=["the car moved", "a man left"], references=[["the car has moved"], ["a man left"]])
with open("submission.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "T0_I0", "T0_I1", "T1_I0", "T1_I1"])
    writer.writerows([row["id"], 1, 0, 0, 1] for row in bench)
pairs = load_dataset("spot_the_diff", split="test")
json.dump({row["id"]: " ".join(row["captions"]) for row in pairs}, open("predictions.json", "w"))
print(json.dumps({"bench_rows": bench.num_rows, "vismin": right["per_category"]["object"], "bleu_1": scores["Bleu_1"],
                  "meteor": scores["METEOR"]}))
"""


def test_core_install_has_no_torch_transformers_or_gradio(core):
    bin_dir, hf_home, work, *_ = core
    code = "import importlib.util as u, json; print(json.dumps([m for m in ('torch', 'transformers', 'gradio', 'accelerate') if u.find_spec(m)]))"
    assert json.loads(run(bin_dir, [str(bin_dir / "python"), "-c", code], work, hf_home).stdout) == []


def test_core_install_loads_data_and_metrics_by_bare_name_from_another_directory(core):
    """The one test of "loads by bare name in a fresh interpreter": here, on the installed wheel."""
    *_, loaded = core
    assert loaded["bench_rows"] == 8
    # sample 1 is right, sample 2 ties T0_I0 == T0_I1 (strict >: image wrong)
    assert loaded["vismin"] == {"text_score": 100.0, "image_score": 50.0, "group_score": 50.0, "num_samples": 2}
    assert 0 < loaded["bleu_1"] < 1 and 0 < loaded["meteor"] < 1  # the Java pipeline ran


def test_core_install_scores_submissions_and_publishes(core, tmp_path):
    bin_dir, hf_home, _, elsewhere, _ = core
    diffbench = str(bin_dir / "diffbench")
    for name in ("submission.csv", "predictions.json"):  # written by the bare-name script from the loaded data
        shutil.copy(elsewhere / name, tmp_path / name)
    run(bin_dir, [diffbench, "score", "vismin", "submission.csv", "--out", "vismin-results"], tmp_path, hf_home)
    results = json.loads((tmp_path / "vismin-results" / "results.json").read_text())
    assert results["samples"] == 8 and results["scores"]["group"] == 100.0
    run(bin_dir, [diffbench, "score", "captions", "predictions.json", "--dataset", "spot_the_diff",
                  "--out", "caption-results"], tmp_path, hf_home)
    assert (tmp_path / "caption-results" / "results.json").is_file()
    run(bin_dir, [diffbench, "publish", "vismin", "--out", "vismin-hub"], tmp_path, hf_home)
    assert (tmp_path / "vismin-hub" / "README.md").is_file() and list((tmp_path / "vismin-hub").rglob("*.parquet"))


def test_core_install_names_the_extra_a_command_needs(core, tmp_path):
    bin_dir, hf_home, *_ = core
    done = run(bin_dir, [str(bin_dir / "diffbench"), "eval", "vismin"], tmp_path, hf_home, ok=False)
    assert done.returncode == 2, done.stderr
    assert "`diffbench eval` needs the [eval] extra: pip install 'diffbench[eval]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_published_dataset_loads_with_datasets_alone(core, find_links, tmp_path):
    bin_dir, hf_home, work, *_ = core
    run(bin_dir, [str(bin_dir / "diffbench"), "publish", "vismin", "--out", str(tmp_path / "vismin-hub")], work, hf_home)
    only = make_venv(tmp_path / "venv", ["datasets"], find_links)
    code = """
import hashlib, json
from datasets import load_dataset
from importlib.util import find_spec
assert find_spec("diffbench") is None
out = {}
for config, split in (("bench", "test"), ("train", "train"), ("pairs", "train")):
    ds = load_dataset("vismin-hub", config, split=split)
    image = next(c for c, f in ds.features.items() if type(f).__name__ == "Image")
    raw = ds.with_format("arrow")[:1][image][0].as_py()["bytes"]
    out[config] = [ds.num_rows, hashlib.sha256(raw).hexdigest()]
print(json.dumps(out))
"""
    loaded = json.loads(run(only, [str(only / "python"), "-c", code], tmp_path, tmp_path / "hf").stdout.strip().splitlines()[-1])
    assert loaded["bench"][0] == 8 and loaded["pairs"][0] == 8 and loaded["train"][0] == 16
    # the images are the build's own bytes, embedded in the parquet files
    built = run(bin_dir, [str(bin_dir / "python"), "-c", code.replace('"vismin-hub", ', '"vismin", ').replace(
        'assert find_spec("diffbench") is None', "")], work, hf_home).stdout.strip().splitlines()[-1]
    assert loaded == json.loads(built)


# -- each Hub folder alone ------------------------------------------------------------------------

METRIC_CHECKS = {
    "vismin_group_score": ("dict(T0_I0=[0.9], T0_I1=[0.2], T1_I0=[0.1], T1_I1=[0.8], categories=['object'])",
                           lambda r: r["group_score"] == 100.0),
    "diff_caption_score": ("dict(predictions=['the red cube moved'], references=[['the red cube has moved']])",
                           lambda r: 0 < r["Bleu_1"] <= 1 and 0 < r["METEOR"] <= 1),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_and_get_info(bin_dir: Path, folder: Path, hf_home: Path, timeout: float = 240) -> dict:
    """Start ``app.py`` as a Space does and return its ``/gradio_api/info``."""
    port = _free_port()
    env = {**clean_env(bin_dir, hf_home), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    log = folder.parent / f"{folder.name}.log"
    with open(log, "w") as sink:
        process = subprocess.Popen([str(bin_dir / "python"), "app.py"], cwd=folder, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert process.poll() is None, f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=5) as response:
                    return json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"app.py did not answer in {timeout} s:\n{log.read_text()[-3000:]}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("name", ["vismin_group_score", "diff_caption_score"])
def test_metric_folder_alone_installs_and_computes(name, find_links, tmp_path):
    folder = tmp_path / name
    shutil.copytree(REPO_ROOT / "metrics" / name, folder, ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = make_venv(tmp_path / "venv", ["-r", str(folder / "requirements.txt")], find_links)
    inputs, check = METRIC_CHECKS[name]
    # the metric as evaluate loads a folder, then the widget's module (imports only: serving is the Space's test)
    code = (f"import evaluate, json; result = evaluate.load({str(folder)!r}).compute(**{inputs}); "
            "import app; print(json.dumps(result))")
    out = run(bin_dir, [str(bin_dir / "python"), "-c", code], folder, tmp_path / "hf").stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert check(result), result


def test_space_folder_alone_installs_and_serves(find_links, tmp_path):
    folder = tmp_path / "space"
    shutil.copytree(REPO_ROOT / "space", folder, ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = make_venv(tmp_path / "venv", ["-r", str(folder / "requirements.txt")], find_links)
    info = serve_and_get_info(bin_dir, folder, tmp_path / "hf")
    assert {"/score_vismin", "/leaderboard"} <= set(info["named_endpoints"]), sorted(info["named_endpoints"])


def test_each_hub_folder_names_the_java_runtime_exactly_when_it_needs_java():
    """Java (PTB tokenizer, METEOR) is needed by whatever installs diffbench's caption scoring."""
    for folder in ("metrics/vismin_group_score", "metrics/diff_caption_score", "space"):
        requirements = (REPO_ROOT / folder / "requirements.txt").read_text()
        needs_java = any(line.strip().startswith("diffbench") for line in requirements.splitlines())
        packages = REPO_ROOT / folder / "packages.txt"
        listed = packages.read_text().split() if packages.is_file() else []
        assert ("default-jdk-headless" in listed) == needs_java, folder
