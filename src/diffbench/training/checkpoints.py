"""The run folder (``--out``): a checkpoint at the end of every epoch, resuming from it, the final save.

- ``OUT/checkpoint/``: the model, its processor and ``trainer_state.pt`` (step, losses, optimizer,
  schedule, RNG) of the last finished epoch. Each is written under ``OUT/.checkpoint.staging/<pid>-<random>/``
  and put in place of the previous one whole (:func:`diffbench.files.replace_directory`): a full disk or a
  Ctrl-C during a save leaves the previous epoch's checkpoint as it was.
- ``trainer_state.pt`` is read with ``weights_only`` (no code is ever unpickled); a damaged or foreign one
  is a one-line ``ValueError`` naming it.
- The finished model, its processor and ``training_log.json`` (the mark of a finished run) go into
  ``OUT`` itself, whole or not at all (:func:`save_final`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path

from diffbench.files import clean_staging, replace_directory
from diffbench.training.model_loading import quiet_transformers
from diffbench.training.settings import RUN_FIELDS, TrainConfig

CHECKPOINT_DIR = "checkpoint"  # under OUT: the model, its processor and trainer_state.pt of the last epoch
CHECKPOINT_STAGING = ".checkpoint.staging"  # under OUT: <pid>-<random>/new (a checkpoint being written), old
FINAL_STAGING = ".final.tmp"  # under OUT: the finished model is written here, then moved into OUT whole
TRAINING_LOG = "training_log.json"  # under OUT: the record of a finished run (written last)
TRAINER_STATE = "trainer_state.pt"
TRAINER_STATE_KEYS = ("config", "step", "losses", "seconds", "optimizer", "scheduler", "torch_rng")


class _disk_errors:
    """safetensors reports a failed write (a full disk, a file-size limit) as a ``SafetensorError`` whose text
    ends in ``(os error N)``: raised again as the ``OSError`` it is, naming ``folder``, so the CLI can say
    what the machine refused rather than "internal error"."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __enter__(self):
        return self

    def __exit__(self, kind, err, traceback):
        found = re.search(r"\(os error (\d+)\)", str(err)) if err is not None and not isinstance(err, OSError) else None
        if found and type(err).__name__ == "SafetensorError":
            code = int(found[1])
            raise OSError(code, os.strerror(code), str(self.folder)) from None
        return False


# -- the run folder before a run ----------------------------------------------------------------------


def find_checkpoint(out: Path) -> Path | None:
    """The checkpoint folder under ``out``, if a run saved one."""
    checkpoint = Path(out) / CHECKPOINT_DIR
    return checkpoint if (checkpoint / TRAINER_STATE).is_file() else None


def _clean_checkpoint_staging(out: Path) -> None:
    """What a killed save left under ``out``: an old checkpoint whose swap was cut between its two renames
    is put back, the staging removed (a running save's is left alone)."""
    root = out / CHECKPOINT_STAGING
    if root.is_dir():
        clean_staging(root)
        with contextlib.suppress(OSError):
            root.rmdir()  # unless a running save uses it


def check_out_folder(config: TrainConfig) -> Path | None:
    """The checkpoint to resume from (``None``: a fresh run); refuses to overwrite another run's output."""
    out = Path(config.out)
    _clean_checkpoint_staging(out)
    checkpoint = find_checkpoint(out)
    finished = (out / TRAINING_LOG).is_file()
    if config.resume:
        if finished and checkpoint is None:
            raise ValueError(f"{out} holds a finished run ({TRAINING_LOG}): nothing to resume")
        if checkpoint is None:
            raise ValueError(f"no checkpoint to resume in {out / CHECKPOINT_DIR} (one is saved at the end of every epoch)")
        return checkpoint
    if checkpoint is not None or finished:
        what = "a checkpoint of an unfinished run" if checkpoint is not None else "a finished run"
        raise ValueError(f"{out} holds {what}: --resume to continue it, or give another --out")
    return None


def check_resumable(config: TrainConfig, saved: dict, checkpoint: Path) -> None:
    """Refuse to continue a checkpoint under other settings (:data:`~diffbench.training.settings.RUN_FIELDS`)."""
    now = asdict(config)
    changed = [f"{k} ({saved.get(k)!r} -> {now[k]!r})" for k in RUN_FIELDS if saved.get(k) != now[k]]
    if changed:
        raise ValueError(f"{checkpoint} was saved by a run with other settings: {', '.join(changed)}; "
                         "resume with the same settings, or give another --out")


# -- the epoch checkpoint -----------------------------------------------------------------------------


def save_checkpoint(out: Path, model, processor, optimizer, scheduler, state: dict) -> Path:
    """Write ``out/checkpoint/`` (model, processor, ``trainer_state.pt``), replacing the previous one only
    once the new one is complete."""
    import torch  # deferred: the CLI imports the training modules to start up, torch only to train

    out = Path(out)
    holder = out / CHECKPOINT_STAGING / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging = holder / "new"
    try:  # a full disk, Ctrl-C: the previous checkpoint stays as it was
        staging.mkdir(parents=True)
        with quiet_transformers():
            with _disk_errors(staging):
                model.save_pretrained(staging)
            processor.save_pretrained(staging)
        torch.save({**state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state()}, staging / TRAINER_STATE)
        replace_directory(staging, out / CHECKPOINT_DIR, holder / "old")
    finally:
        shutil.rmtree(holder, ignore_errors=True)
        with contextlib.suppress(OSError):
            holder.parent.rmdir()
    return out / CHECKPOINT_DIR


def remove_checkpoints(out: Path) -> None:
    """The epoch checkpoint and its staging: the finished model replaces the last epoch's."""
    for leftover in (CHECKPOINT_DIR, CHECKPOINT_STAGING):
        shutil.rmtree(Path(out) / leftover, ignore_errors=True)


def _damaged_checkpoint(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: the checkpoint is damaged ({what}); delete {path.parent} and train again "
                      "without --resume, or give another --out")


def read_trainer_state(checkpoint: Path) -> dict:
    """``trainer_state.pt`` of a checkpoint, read with ``weights_only`` (no code is ever unpickled); a damaged
    or foreign file is a one-line ValueError naming it, never torch's advice to unpickle it anyway."""
    import torch

    path = Path(checkpoint) / TRAINER_STATE
    try:
        state = torch.load(path, weights_only=True)
    except OSError:  # unreadable (permissions, disk): the CLI names the file and the cause
        raise
    except Exception as err:  # noqa: BLE001 - UnpicklingError, zip RuntimeError, EOFError: a broken file
        raise _damaged_checkpoint(path, f"it cannot be read: {type(err).__name__}") from None
    if not isinstance(state, dict):
        raise _damaged_checkpoint(path, f"it holds a {type(state).__name__}, not a diffbench trainer state")
    missing = [key for key in TRAINER_STATE_KEYS if key not in state]
    if missing or not isinstance(state["config"], dict):
        raise _damaged_checkpoint(path, f"not a diffbench trainer state: no valid {', '.join(missing) or 'config'}")
    return state


def restore_trainer_state(saved: dict, checkpoint: Path, optimizer, scheduler) -> tuple[int, list[float], float]:
    """Put the optimizer, schedule and RNG back as they were; ``(step, losses, seconds)`` of the saved run."""
    import torch

    try:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        return int(saved["step"]), [float(v) for v in saved["losses"]], float(saved["seconds"])
    except (ValueError, KeyError, TypeError, RuntimeError) as err:  # a state that does not fit this model
        raise _damaged_checkpoint(checkpoint / TRAINER_STATE, f"{type(err).__name__} restoring it") from None


# -- the finished model -------------------------------------------------------------------------------


def save_final(out: Path, model, processor, record: dict) -> None:
    """The finished model, its processor and ``training_log.json`` into ``out``, whole or not at all.

    Everything is written into ``out/.final.tmp`` first (a full disk stops it there), then moved in file by
    file, the log (the mark of a finished run) last: renames, which need no space and cannot half-happen.
    Not a folder swap: ``out`` is the user's folder and may hold other files, which stay. A failed write
    removes the staging folder and leaves ``out`` as it was.
    """
    out = Path(out)
    staging = out / FINAL_STAGING
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with quiet_transformers(), _disk_errors(staging):
            model.save_pretrained(staging)
            processor.save_pretrained(staging)
        (staging / TRAINING_LOG).write_text(json.dumps(record, indent=1) + "\n")
        names = sorted(p.name for p in staging.iterdir() if p.name != TRAINING_LOG) + [TRAINING_LOG]
        for name in names:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
