"""``diffbench eval --tasks a,b`` (several tasks on one loaded model) and ``--config FILE.yaml`` (options
from a file, the command line winning), end to end on the built samples with a tiny random LLaVA.

Commands run in this process through ``diffbench.cli.main``, as ``test_eval.py`` runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffbench.harness.outputs import NOT_COMPARED

pytestmark = pytest.mark.slow

# what a quick run of the tiny LLaVA asks: few tokens, small batches, one decoding worker
QUICK = ("--max-new-tokens", 3, "--batch-size", 3, "--num-workers", 1)


@pytest.fixture(scope="module")
def built(vismin_built):
    """The VisMin sample and the OmniDiff sample, built into the session's datasets cache."""
    from diffbench.data import building

    building.build_configs("omnidiff", [building.default_config("omnidiff")], "sample", overwrite=True)
    return building.load_built("vismin", "bench", "test")


@pytest.fixture(scope="module")
def llava(tmp_path_factory, built) -> str:
    """A tiny random LLaVA (image-text-to-text) knowing the VisMin sample's words."""
    from diffbench.models import tiny as tiny_models

    words = tiny_models.words_of(list(built["text_0"]) + list(built["text_1"]))
    return str(tiny_models.build_tiny_image_text_to_text(tmp_path_factory.mktemp("tiny") / "llava", words=words,
                                                         seed=0))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def compared(run: dict) -> dict:
    """What a resumed run compares in run.json (everything but the settings, environment and invocation)."""
    return {k: v for k, v in run.items() if k not in NOT_COMPARED}


def same_results(a: Path, b: Path, submission: str) -> None:
    """Two run folders hold the same predictions and the same scores."""
    assert (a / submission).read_bytes() == (b / submission).read_bytes()
    assert (a / "samples.jsonl").read_bytes() == (b / "samples.jsonl").read_bytes()
    ra, rb = read_json(a / "results.json"), read_json(b / "results.json")
    for key in ("scores", "ci95", "groups", "samples"):
        assert ra[key] == rb[key], key
    assert compared(read_json(a / "run.json")) == compared(read_json(b / "run.json"))


def test_several_tasks_run_on_one_model_load_and_equal_single_runs(llava, tmp_path, eval_cli):
    """--tasks vismin,omnidiff loads the model once (the log says so, and each run.json), writes OUT/<task>/
    each, and each folder holds what a single-task run of that task gives; a single-task run over that
    folder resumes it."""
    if shutil.which("java") is None:
        pytest.skip("the COCO caption metrics need Java")
    both = tmp_path / "both"
    _, stdout, stderr = eval_cli("--tasks", "vismin,omnidiff", "--model", llava, "--out", both, "--limit", 6, *QUICK)
    assert stderr.count(f"loading {llava}") == 1
    assert stderr.count(f"reusing {llava}, loaded for vismin") == 1
    assert f"wrote {both / 'vismin'}/" in stdout and f"wrote {both / 'omnidiff'}/" in stdout
    vismin_run, omnidiff_run = read_json(both / "vismin" / "run.json"), read_json(both / "omnidiff" / "run.json")
    assert vismin_run["environment"]["model_load"] == "loaded"
    assert omnidiff_run["environment"]["model_load"] == "reused (loaded for vismin)"
    assert vismin_run["invocation"]["tasks"] == omnidiff_run["invocation"]["tasks"] == ["vismin", "omnidiff"]
    assert (vismin_run["task"], omnidiff_run["task"]) == ("vismin", "omnidiff")

    for task, submission in (("vismin", "vismin_answers.csv"), ("omnidiff", "captions.json")):
        single = tmp_path / f"single-{task}"
        _, _, stderr = eval_cli(task, "--model", llava, "--out", single, "--limit", 6, *QUICK)
        assert stderr.count(f"loading {llava}") == 1 and read_json(single / "run.json")["invocation"]["tasks"] == [task]
        same_results(both / task, single, submission)
    _, _, stderr = eval_cli("vismin", "--model", llava, "--out", both / "vismin", "--limit", 6, *QUICK)
    assert "resuming: 6 of 6 samples already predicted" in stderr and "loading" not in stderr


def test_several_tasks_under_two_processes_equal_one_process(llava, tmp_path, eval_cli):
    """``torch.distributed.run --nproc_per_node 2`` with --tasks vismin,omnidiff: each task's samples dealt out
    to the two processes and gathered, the same predictions and scores as one process (one sample a batch:
    left padding differs with the batch, and a random tiny model's greedy token can flip with it)."""
    if shutil.which("java") is None:
        pytest.skip("the COCO caption metrics need Java")
    args = ["--tasks", "vismin,omnidiff", "--model", llava, "--limit", 6, *QUICK, "--batch-size", 1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "diffbench", "eval",
               *map(str, args), "--out", str(tmp_path / "multi"), "--no-progress"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
    multi = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert multi.stderr.count("2 process(es)") == 2, multi.stderr[-3000:]  # a line a task
    _, _, stderr = eval_cli(*args, "--out", tmp_path / "single")
    assert stderr.count("1 process(es)") == 2
    for task, submission in (("vismin", "vismin_answers.csv"), ("omnidiff", "captions.json")):
        same_results(tmp_path / "multi" / task, tmp_path / "single" / task, submission)


def test_a_task_the_model_does_not_fit_is_refused_before_anything_runs(built, tmp_path, eval_cli):
    """The embedded tiny CLIP (contrastive) asked for VisMin and OmniDiff captions: one line naming the task
    and the kind, exit 2, and no folder written, VisMin's included. A preset (VisMin's rows) with a caption
    task is refused the same way."""
    out = tmp_path / "clip"
    code, stdout, stderr = eval_cli("--tasks", "vismin,omnidiff", "--out", out, check=False)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert lines[0] == ("diffbench eval: error: task omnidiff: clip is a contrastive model; difference captioning "
                        "needs an image-text-to-text model; no task was run")
    assert not out.exists() and stdout == ""
    code, _, stderr = eval_cli("--tasks", "vismin,spot_the_diff", "--preset", "idefics2", "--out", out, check=False)
    assert code == 2 and stderr.strip() == ("diffbench eval: error: presets are VisMin's published rows; task "
                                            "'spot_the_diff' takes --model")
    assert not out.exists()


def test_a_config_file_sets_options_and_the_command_line_wins(llava, built, tmp_path, eval_cli):
    """run.yaml sets the task and options (both spellings of a key); --max-new-tokens on the command line
    overrides the file's, and --seed given at its default value still wins over the file's; run.json
    records every resolved option, what the file set, and its path and sha256."""
    out = tmp_path / "from-config"
    config = tmp_path / "run.yaml"
    config.write_text(f"task: vismin\nmodel: {llava}\nout: {out}\nlimit: 6\nmax_new_tokens: 5\nbatch-size: 3\n"
                      "num_workers: 1\nimage-handling: combined\nseed: 7\nno-progress: true\n", encoding="utf-8")
    _, stdout, _ = eval_cli("--config", config, "--max-new-tokens", 3, "--seed", 0)
    assert f"wrote {out}/" in stdout
    run = read_json(out / "run.json")
    assert (run["model"], run["max_new_tokens"], run["image_handling"], run["samples"]) == (llava, 3, "combined", 6)
    invocation = run["invocation"]
    assert invocation["config_file"] == {"path": str(config.resolve()),
                                         "sha256": hashlib.sha256(config.read_bytes()).hexdigest()}
    # no-progress is given on the command line too (eval_cli adds it): the command line's, not the file's
    assert sorted(invocation["from_config_file"]) == ["batch_size", "image_handling", "limit", "model",
                                                      "num_workers", "out"]
    options = invocation["options"]
    assert (options["max_new_tokens"], options["seed"], options["batch_size"], options["out"]) == (3, 0, 3, str(out))
    assert read_json(out / "results.json")["uncertainty"]["seed"] == 0

    # the same run from the command line alone: the same predictions and scores
    by_hand = tmp_path / "by-hand"
    eval_cli("vismin", "--model", llava, "--out", by_hand, "--limit", 6, "--image-handling", "combined", *QUICK)
    same_results(out, by_hand, "vismin_answers.csv")
    assert read_json(by_hand / "run.json")["invocation"]["config_file"] is None


@pytest.mark.parametrize("text, message", [
    ("model: m\nbatch-sise: 4\n", "{path}: batch-sise: unknown option; did you mean 'batch-size'? (the keys are "
                                  "diffbench eval's long options)"),
    ("batch_size: four\n", "{path}: batch_size: expected a whole number, got 'four' (str)"),
    ("batch_size: 4\nbatch-size: 5\n", "{path}: 'batch_size' and 'batch-size' set the same option"),
    ("fast-decode: 1\n", "{path}: fast-decode: expected true or false, got 1 (int)"),
    ("dtype: float64\n", "{path}: dtype: expected one of auto, float32, float16, bfloat16, got 'float64'"),
    ("limit: 1.5\n", "{path}: limit: limit must be a number of samples (20) or a fraction of them between 0 and 1 "
                     "(0.1), got 1.5"),
    ("revision: 2024\n", "{path}: revision: expected a text value, got 2024 (int); quote it in the YAML file"),
    ("config: bench\n", "{path}: config: a config file cannot name another; the dataset configuration is "
                        "dataset-config"),
    ("tasks: [vismin, vismin]\n", "--tasks names vismin twice"),
    ("task: vismin\ntasks: omnidiff\n", "{path} names both a task (vismin) and --tasks (omnidiff); give one"),
    ("- model\n", "{path}: expected option names and their values (a mapping), got a list"),
    ("model: [unclosed\n", "{path}: not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
])
def test_a_bad_config_file_is_one_line_naming_the_file_and_key(text, message, tmp_path, eval_cli):
    config = tmp_path / "run.yaml"
    config.write_text(text, encoding="utf-8")
    code, stdout, stderr = eval_cli("--config", config, "--out", tmp_path / "out", check=False)
    assert code == 2 and stdout == "" and stderr == f"diffbench eval: error: {message.format(path=config)}\n"
    assert not (tmp_path / "out").exists()


def test_a_missing_config_file_and_the_dataset_configuration(tmp_path, eval_cli):
    """A missing file is one line; a --config value that is no YAML file says where the dataset
    configuration went (--dataset-config)."""
    code, _, stderr = eval_cli("vismin", "--config", tmp_path / "run.yaml", check=False)
    assert code == 2 and stderr == (f"diffbench eval: error: {tmp_path / 'run.yaml'}: no such config file (--config "
                                    "takes a YAML file of options)\n")
    code, _, stderr = eval_cli("vismin", "--config", "bench-nope", check=False)
    assert code == 2 and stderr.endswith("(--config takes a YAML file of options; the dataset configuration is "
                                         "--dataset-config)\n")


def test_which_tasks_a_call_names(tmp_path):
    """The command line's TASK or --tasks, else the file's task or tasks (a list or a comma string); the
    command line's replaces the file's; neither is one line saying how."""
    import argparse

    from diffbench.cli import build_parser
    from diffbench.commands.eval import settle

    def names(*argv, config: str | None = None):
        extra = []
        if config is not None:
            (tmp_path / "c.yaml").write_text(config, encoding="utf-8")
            extra = ["--config", str(tmp_path / "c.yaml")]
        args = settle(build_parser().parse_args(["eval", *argv, *extra]))
        return args.task_names, args.several

    assert names("vismin") == (["vismin"], False)
    assert names("--tasks", "omnidiff, vismin") == (["omnidiff", "vismin"], True)
    assert names(config="tasks: [vismin, clevr_change]\n") == (["vismin", "clevr_change"], True)
    assert names(config="tasks: vismin,clevr_change\n") == (["vismin", "clevr_change"], True)
    assert names("omnidiff", config="tasks: [vismin, clevr_change]\n") == (["omnidiff"], False)
    assert names("--tasks", "omnidiff", config="task: vismin\n") == (["omnidiff"], True)
    with pytest.raises(ValueError, match=r"^name a task \(diffbench eval vismin\), several"):
        names()
    assert isinstance(settle(build_parser().parse_args(["eval", "vismin"])), argparse.Namespace)
