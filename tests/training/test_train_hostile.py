"""``diffbench train`` fed what breaks runs (issue 23, hostile round; issue 21, messages): each ends in exit 2
with one line naming the file or the setting to change, and never leaves a NaN or half-written model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from diffbench.cli import main
from diffbench.training import checkpoints, loop, settings

FAST = ["--threads", "1", "--no-progress", "--eval", "none", "--cpu"]
TINY = ["--tiny-hidden-size", "32", "--tiny-layers", "1", "--tiny-image-size", "32"]


def _error_line(err: str) -> str:
    """The one error line the CLI printed (the run's own log lines come before it)."""
    lines = [line for line in err.splitlines() if "diffbench train:" in line]
    assert len(lines) == 1 and lines[0].startswith("diffbench train: error: "), err
    assert "internal error" not in err and "Traceback" not in err, err
    return lines[0]


def _finite_weights(folder) -> bool:
    from safetensors.numpy import load_file

    return all(np.isfinite(t).all() for t in load_file(str(folder / "model.safetensors")).values())


@pytest.fixture(scope="module")
def tiny_clip(vismin_built, tmp_path_factory):
    from diffbench.models import tiny as tiny_models
    from diffbench.data.building import load_built

    pairs = load_built("vismin", "pairs", "train")
    words = tiny_models.words_of(list(pairs["text_0"]) + list(pairs["text_1"]))
    return tiny_models.build_tiny_clip(tmp_path_factory.mktemp("tiny") / "clip", words=words, seed=0,
                                       hidden_size=32, layers=1, projection_dim=32, image_size=32)


# -- a learning rate or weight decay that makes training diverge ----------------------------------


def test_a_diverging_learning_rate_stops_the_run_and_saves_nothing(vismin_built, tmp_path, capsys):
    out = tmp_path / "lr"
    assert main(["train", "--model", "tiny-clip", "--lr", "1e30", "--max-steps", "3", "--batch-size", "8",
                 "--out", str(out), *TINY, *FAST]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "training diverged at step 2 of 3: the loss is nan" in line
    assert "--lr (now 1e+30)" in line and "--weight-decay (now 0.05)" in line and "no model was saved" in line
    saved = list(out.rglob("*")) if out.exists() else []
    assert saved == []  # no model, no log marking a finished run, no staging left over


def test_divergence_after_an_epoch_keeps_only_the_finite_checkpoint(vismin_built, tmp_path, capsys):
    # one step an epoch (40 pairs a batch); warm-up from lr 0 makes step 1 harmless and step 3 diverge
    out = tmp_path / "late"
    assert main(["train", "--model", "tiny-clip", "--lr", "1e30", "--epochs", "4", "--batch-size", "40",
                 "--warmup", "0.5", "--out", str(out), *TINY, *FAST]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "training diverged at step 3 of 4" in line
    assert f"the checkpoint of an earlier epoch stays in {out / 'checkpoint'}" in line
    assert not (out / "model.safetensors").exists() and not (out / "training_log.json").exists()
    assert _finite_weights(out / "checkpoint")  # the step whose parameters went NaN was never saved
    import torch

    assert torch.load(out / "checkpoint" / "trainer_state.pt", weights_only=True)["step"] == 2


def test_under_two_processes_an_epoch_is_one_pass_and_the_schedule_spans_the_run(vismin_built, tmp_path):
    """Two processes take the 5 batches of an epoch (40 pairs, 8 a batch) in turn: 3 steps each (accelerate's
    even batches), and the cosine schedule (accelerate steps it once a process a step) ends at 0 at the last."""
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "diffbench", "train",
               "--model", "tiny-clip", "--epochs", "2", "--batch-size", "8", "--out", str(out), *TINY, *FAST]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "6 steps of 8 pairs a process (16 in 2 processes) (3 an epoch)" in done.stderr
    log = json.loads((out / "training_log.json").read_text())
    assert (log["steps"], log["processes"], len(log["losses"]), log["final_lr"]) == (6, 2, 6, 0.0)


def test_under_two_processes_a_diverging_run_stops_both_at_the_same_step(vismin_built, tmp_path):
    """``torch.distributed.run --nproc_per_node 2`` (accelerate's multi-process CPU run): both processes stop at
    the step that diverged, each with the one error line and exit 2, none left waiting in a collective (an
    earlier session saw such a hang; 16 runs here, torch 2.14.1, had none)."""
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "diffbench", "train",
               "--model", "tiny-clip", "--lr", "1e30", "--max-steps", "3", "--batch-size", "8", "--out", str(out),
               *TINY, *FAST]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)
    # one line from each process (their lines can interleave in the shared pipe: counted, not split)
    error = "diffbench train: error: training diverged at step 2 of 3: the loss is nan; lower --lr (now 1e+30)"
    assert done.stderr.count(error) == 2 and done.stderr.count("diffbench train: error") == 2, done.stderr[-3000:]
    # the launcher reports the first process to end (exit 2) and stops any other still ending
    assert done.returncode != 0 and "exitcode  : 2" in done.stderr, done.stderr[-3000:]
    assert not out.exists() or not any(out.rglob("*"))


def test_parameters_that_stop_being_finite_stop_the_run_in_that_step(vismin_built, tmp_path, capsys):
    # lr * weight decay overflows float32: every parameter is inf or nan after step 1, whose loss was finite
    out = tmp_path / "wd"
    assert main(["train", "--model", "tiny-clip", "--lr", "1e-3", "--weight-decay", "1e45", "--max-steps", "3",
                 "--batch-size", "8", "--out", str(out), *TINY, *FAST]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "training diverged at step 1 of 3: the parameters are no longer finite" in line
    assert "--weight-decay (now 1e+45)" in line
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_a_weight_decay_that_cannot_work_is_refused_before_any_work(vismin_built, tmp_path, capsys, value):
    out = tmp_path / "refused"
    assert main(["train", "--model", "tiny-clip", "--weight-decay", value, "--out", str(out), *FAST]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "--weight-decay must be a finite number, 0 or more" in line
    assert not out.exists()


def test_the_finite_check_is_exact():
    import torch

    huge = torch.full((4,), 3e38)  # finite, but their sum overflows
    assert loop.parameters_finite([huge, torch.ones(2)])
    assert not loop.parameters_finite([torch.ones(2), torch.tensor([1.0, float("-inf")])])
    assert not loop.parameters_finite([torch.tensor([float("nan")])])


# -- a model that is not there ----------------------------------------------------------------------


def test_a_model_folder_that_does_not_exist_is_named(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert main(["train", "--model", str(missing), "--out", str(tmp_path / "out"), *FAST]) == 2
    assert _error_line(capsys.readouterr().err) == f"diffbench train: error: {missing}: no such model folder"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("model", ["openai/clip-vit-base-patch32", "models/my-clip"])
def test_a_hub_model_not_cached_while_offline_says_what_to_do(tmp_path, capsys, hf_home, model):
    # conftest: HF_HUB_OFFLINE=1 and an empty HF_HOME of this session, so nothing is cached (issue 21)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert main(["train", "--model", model, "--out", str(tmp_path / "out"), *FAST]) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"error: {model}: no such local folder, and not in the local Hub cache ({hf_home / 'hub'})" in line
    assert "the Hub is off (HF_HUB_OFFLINE is set)" in line
    assert f"download it where the network is reachable (hf download {model}), or pass --model a local model folder" in line
    assert "OSError" not in line and not (tmp_path / "out").exists()


def test_a_model_of_the_wrong_kind_is_refused_before_training(tmp_path, capsys):
    from diffbench.models.tiny import build_tiny_image_text_to_text

    llava = build_tiny_image_text_to_text(tmp_path / "llava", seed=0)
    assert main(["train", "--model", str(llava), "--out", str(tmp_path / "out"), *FAST]) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"{llava} is an image-text-to-text model" in line and "needs a contrastive (CLIP-like) model" in line


def test_pickle_only_weights_are_refused_without_allow_pickle(tiny_clip, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_clip, folder)
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    assert main(["train", "--model", str(folder), "--out", str(tmp_path / "out"), *FAST]) == 2
    assert "only pickle weights (pytorch_model.bin)" in _error_line(capsys.readouterr().err)
    assert main(["train", "--model", str(folder), "--allow-pickle", "--max-steps", "1", "--batch-size", "8",
                 "--out", str(tmp_path / "out"), *FAST]) == 0


# -- a damaged checkpoint ---------------------------------------------------------------------------


RESUMABLE = ["--epochs", "2", "--batch-size", "20"]  # 2 steps an epoch: the checkpoint holds step 2


@pytest.fixture(scope="module")
def interrupted_run(tiny_clip, tmp_path_factory):
    """A run folder as Ctrl-C leaves it right after epoch 1's checkpoint (as the resume test in test_train.py)."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    config = settings.TrainConfig(model=str(tiny_clip), out=str(out), epochs=2, batch_size=20, cpu=True, eval=None,
                                  progress=False, threads=1)
    real_save = checkpoints.save_checkpoint

    def save_then_interrupt(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints, "save_checkpoint", save_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            loop.train(config)
    assert (out / "checkpoint" / "trainer_state.pt").is_file()
    return out


class _RunsCode:
    """A pickle that would run a shell command when unpickled without ``weights_only``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _damage(state_file, how: str, marker):
    import torch

    data = state_file.read_bytes()
    if how == "empty":
        state_file.write_bytes(b"")
    elif how == "garbage":
        state_file.write_bytes(bytes(range(256)) * 4)
    elif how == "truncated":
        state_file.write_bytes(data[: len(data) // 2])
    elif how == "code":
        torch.save({"config": {}, "payload": _RunsCode(marker)}, state_file)
    elif how == "not-a-state":
        torch.save([1, 2, 3], state_file)
    elif how == "foreign-optimizer":
        state = torch.load(state_file, weights_only=True)
        torch.save({**state, "optimizer": {"state": {}, "param_groups": []}}, state_file)


@pytest.mark.parametrize("how", ["empty", "garbage", "truncated", "code", "not-a-state", "foreign-optimizer"])
def test_a_damaged_trainer_state_is_named_and_never_unpickled(interrupted_run, tiny_clip, tmp_path, capsys, how):
    out = tmp_path / "run"
    shutil.copytree(interrupted_run, out)
    state_file = out / "checkpoint" / "trainer_state.pt"
    marker = tmp_path / "code-ran"
    _damage(state_file, how, marker)
    assert main(["train", "--model", str(tiny_clip), *RESUMABLE, "--resume", "--out", str(out), *FAST]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"diffbench train: error: {state_file}: the checkpoint is damaged")
    assert f"delete {out / 'checkpoint'} and train again without --resume, or give another --out" in line
    assert "weights_only" not in line and "pickle" not in line.lower()
    assert not marker.exists() and not (out / "model.safetensors").exists()


def test_a_corrupt_checkpoint_model_file_is_named(interrupted_run, tiny_clip, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(interrupted_run, out)
    weights = out / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert main(["train", "--model", str(tiny_clip), *RESUMABLE, "--resume", "--out", str(out), *FAST]) == 2
    assert f"{weights}: the weight file is corrupt or unreadable" in _error_line(capsys.readouterr().err)


def test_the_undamaged_checkpoint_resumes(interrupted_run, tiny_clip, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(interrupted_run, out)
    assert main(["train", "--model", str(tiny_clip), *RESUMABLE, "--resume", "--out", str(out), *FAST]) == 0
    assert "resuming at step 2" in capsys.readouterr().err and _finite_weights(out)


# -- the final save ---------------------------------------------------------------------------------


class _file_size_limit:
    """While inside, this process cannot write a file past ``limit`` bytes: the write fails with EFBIG, as a
    full disk fails it with ENOSPC (the soft limit only, so it can be lifted again on the way out)."""

    def __init__(self, limit: int):
        self.limit = limit

    def __enter__(self):
        import resource
        import signal

        self.before = resource.getrlimit(resource.RLIMIT_FSIZE)
        self.handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error to handle, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.before[1]))

    def __exit__(self, *exc):
        import resource
        import signal

        resource.setrlimit(resource.RLIMIT_FSIZE, self.before)
        signal.signal(signal.SIGXFSZ, self.handler)


def test_a_final_save_that_fails_leaves_no_half_written_model(vismin_built, tiny_clip, tmp_path, capsys):
    out = tmp_path / "out"
    limit = (tiny_clip / "model.safetensors").stat().st_size // 2  # the weights cannot be written whole
    with _file_size_limit(limit):
        code = main(["train", "--model", str(tiny_clip), "--max-steps", "2", "--batch-size", "8", "--out", str(out),
                     *FAST])
    err = capsys.readouterr().err
    assert code == 2  # the machine's limit: the user's to raise
    assert sorted(out.rglob("*")) == []  # no config.json beside half a model.safetensors, no staging folder
    # the cause and the folder, not a SafetensorError
    assert f"a file is larger than this process may write (ulimit -f): {out / '.final.tmp'} (File too large)" in err
