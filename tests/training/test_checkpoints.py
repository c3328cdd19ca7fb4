"""The epoch checkpoint is swapped in whole (``diffbench.files.replace_directory``): a save that fails keeps
the previous checkpoint, a kill during the swap leaves one that ``--resume`` continues, and nothing of the
staging stays in ``--out``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from test_train_hostile import _file_size_limit

from diffbench.cli import main
from diffbench.training import checkpoints

FAST = ["--threads", "1", "--no-progress", "--eval", "none", "--cpu"]
TINY = ["--tiny-hidden-size", "32", "--tiny-layers", "1", "--tiny-image-size", "32"]
# 40 pairs, 40 a batch: one step an epoch, so checkpoints are saved after steps 1 and 2 (the second replaces the first)
THREE_EPOCHS = ["--model", "tiny-clip", "--epochs", "3", "--batch-size", "40", *TINY, *FAST]


def _saved_step(out) -> int:
    import torch

    return torch.load(out / "checkpoint" / "trainer_state.pt", weights_only=True)["step"]


def _model_and_optimizer(tmp_path):
    import torch
    from transformers import AutoModel, AutoProcessor, get_cosine_schedule_with_warmup

    from diffbench.models.tiny import build_tiny_clip

    path = build_tiny_clip(tmp_path / "clip", words=["a", "red", "circle"], seed=0, hidden_size=32, layers=1,
                           projection_dim=32, image_size=32)
    model, processor = AutoModel.from_pretrained(path), AutoProcessor.from_pretrained(path)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, processor, optimizer, get_cosine_schedule_with_warmup(optimizer, 0, 10)


def test_a_save_that_fails_keeps_the_previous_checkpoint_and_leaves_no_staging(tmp_path):
    model, processor, optimizer, scheduler = _model_and_optimizer(tmp_path)
    out = tmp_path / "run"
    state = {"config": {}, "losses": [1.0], "seconds": 1.0}
    checkpoints.save_checkpoint(out, model, processor, optimizer, scheduler, {**state, "step": 1})
    checkpoints.save_checkpoint(out, model, processor, optimizer, scheduler, {**state, "step": 2})  # replaces it
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint"] and _saved_step(out) == 2
    with _file_size_limit((out / "checkpoint" / "model.safetensors").stat().st_size // 2):
        with pytest.raises(OSError, match="File too large"):
            checkpoints.save_checkpoint(out, model, processor, optimizer, scheduler, {**state, "step": 3})
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint"] and _saved_step(out) == 2
    assert checkpoints.read_trainer_state(out / "checkpoint")["losses"] == [1.0]


# Trains THREE_EPOCHS and kills itself (SIGKILL: no clean-up runs) at one step of the second checkpoint's
# swap into place (the first has nothing to replace: a plain rename).
KILL_AT_SWAP_POINT = """
import os, signal, sys
from diffbench import files
from diffbench.cli import main

stage = sys.argv[1]
def kill_at(point):
    if point == stage:
        os.kill(os.getpid(), signal.SIGKILL)
files._swap_point = kill_at
sys.exit(main(["train", *sys.argv[2:]]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["between-renames", "after-exchange"])
def test_a_kill_during_the_checkpoint_swap_leaves_a_checkpoint_that_resumes(vismin_built, tmp_path, capsys, stage):
    out = tmp_path / "run"
    env = dict(os.environ)
    if stage == "between-renames":
        env["DIFFBENCH_NO_RENAME_EXCHANGE"] = "1"  # the journaled fallback of file systems without RENAME_EXCHANGE
    killed = subprocess.run([sys.executable, "-c", KILL_AT_SWAP_POINT, stage, *THREE_EPOCHS, "--out", str(out)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    staging = out / checkpoints.CHECKPOINT_STAGING
    if stage == "between-renames":
        # the one gap of the fallback: no checkpoint in place, the journal says where the old one is
        assert not (out / "checkpoint").exists() and list(staging.glob("*/restore.json"))
        resumes_at = 1
    else:
        # one atomic step: the new checkpoint is in place, the old one waits in the staging folder
        assert _saved_step(out) == 2 and list(staging.glob("*/new"))
        resumes_at = 2

    assert main(["train", *THREE_EPOCHS, "--resume", "--out", str(out)]) == 0
    assert f"resuming at step {resumes_at} from {out / 'checkpoint'}" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no staging, no final staging
    assert not (out / "checkpoint").exists() and (out / "training_log.json").is_file()
