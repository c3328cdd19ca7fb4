"""``train()``: set up (checks, model, data, optimizer, accelerate), run the steps, finish (save, score).

accelerate runs every run (a hard dependency of the ``[train]`` extra): on the CPU (``--cpu``, or no GPU),
one GPU, or several under ``accelerate launch``, where each process takes whole batches and all of them
stop together when one diverges.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from diffbench.data.provenance import SYNTHETIC_NOTE
from diffbench.files import write_atomically
from diffbench.harness import models
from diffbench.training import checkpoints
from diffbench.training.evaluation import HELD_OUT_SEED, evaluate_on, format_scores
from diffbench.training.loss import contrastive_loss
from diffbench.training.model_loading import check_model, init_model, load_model, quiet_transformers
from diffbench.training.pair_batches import PairBatchSampler, PairCollate, PairItems, load_pairs
from diffbench.training.settings import HELD_OUT, TrainConfig
from diffbench.vismin.contrastive import text_padding

MAX_LOG_SCALE = math.log(100.0)  # CLIP's cap on the temperature (logit_scale is its log)


class TrainingDiverged(ValueError):
    """The loss or the parameters stopped being finite: the settings (learning rate, weight decay,
    precision) are at fault, not the code, so it is the user's to fix (exit 2 in the CLI)."""


@dataclass
class TrainResult:
    out: Path
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    scores: dict | None = None
    resumed_from: int = 0  # the step the run continued from (0: from the start)


@dataclass
class _Loop:
    """What the step loop and the final save need (built once by :func:`_set_up`)."""

    config: TrainConfig
    model: object  # as accelerate prepared it (wrapped under several processes): unwrap() for the model itself
    processor: object
    optimizer: object
    scheduler: object
    loader: object
    accelerator: object
    steps: int  # optimizer steps, each process one batch a step
    steps_per_epoch: int  # a process's batches in an epoch (all processes together take every batch once)
    lr: float

    @property
    def device(self):
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def unwrap(self):
        return self.accelerator.unwrap_model(self.model)


# -- divergence -------------------------------------------------------------------------------------


def parameters_finite(parameters) -> bool:
    """Whether every parameter is finite: one sum a tensor (a NaN or an infinity carries through a sum;
    finite values overflow it only near float32's limit, so a non-finite sum is confirmed value by value).

    >>> import torch
    >>> parameters_finite([torch.ones(3), torch.full((2,), 3e38)]), parameters_finite([torch.tensor([0.0, float("nan")])])
    (True, False)
    """
    import torch  # deferred: the CLI imports this module to start up, torch only to train

    tensors = [p.detach() for p in parameters]
    if not tensors or bool(torch.isfinite(torch.stack([t.sum().float() for t in tensors])).all()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def divergence_message(step: int, steps: int, what: str, config: TrainConfig, lr: float) -> str:
    """One line: where training diverged, what was (not) kept, which settings to change."""
    settings = f"lower --lr (now {lr:g}) or --weight-decay (now {config.weight_decay:g})"
    if config.mixed_precision != "no":
        settings += f", or train in full precision (--mixed-precision no; now {config.mixed_precision})"
    checkpoint = checkpoints.find_checkpoint(Path(config.out))
    kept = (f" (the checkpoint of an earlier epoch stays in {checkpoint}: delete it, or give another --out, to start "
            "again)" if checkpoint is not None else "")
    return f"training diverged at step {step} of {steps}: {what}; {settings}; no model was saved{kept}"


def _check_finite(loop: _Loop, loss: float, step: int) -> None:
    """Stop the run (:class:`TrainingDiverged`) once the loss or a parameter is NaN or infinite; under several
    processes all of them stop together (none is left waiting in a collective)."""
    import torch

    finite_loss = math.isfinite(loss)
    finite_parameters = parameters_finite(loop.unwrap().parameters())
    finite = finite_loss and finite_parameters
    if loop.accelerator.num_processes > 1:
        flag = torch.tensor(0.0 if finite else 1.0, device=loop.accelerator.device)
        finite = float(loop.accelerator.reduce(flag, reduction="sum")) == 0
    if finite:
        return
    what = (f"the loss is {loss}" if not finite_loss else
            "the parameters are no longer finite" if not finite_parameters else "another process's loss is not finite")
    raise TrainingDiverged(divergence_message(step, loop.steps, what, loop.config, loop.lr))


# -- set-up -----------------------------------------------------------------------------------------


def _check_before_work(config: TrainConfig) -> Path | None:
    """Everything that can refuse the run, before any work: the options, the output folder, the model, the
    evaluation data. The checkpoint to resume from, or ``None``."""
    config.validate()
    checkpoint = checkpoints.check_out_folder(config)
    if checkpoint is None:
        check_model(config.model, config.allow_pickle)
    if config.eval not in (None, HELD_OUT):
        load_pairs(config.eval)  # a benchmark not built is refused now, not after hours of training
    return checkpoint


def _start(config: TrainConfig, checkpoint: Path | None, dataset) -> tuple[object, object, dict | None]:
    """``(model, processor, saved trainer state or None)``: the checkpoint's, the model asked for, or a fresh tiny CLIP."""
    with quiet_transformers(), tempfile.TemporaryDirectory(prefix="diffbench-train-init-") as scratch:
        if checkpoint is not None:
            saved = checkpoints.read_trainer_state(checkpoint)
            checkpoints.check_resumable(config, saved["config"], checkpoint)
            models.check_loadable(str(checkpoint), allow_pickle=False)  # a corrupt model file is named
            return (*load_model(str(checkpoint), allow_pickle=False), saved)
        return (*load_model(init_model(config, dataset, Path(scratch)), config.allow_pickle), None)


def steps_per_process(batches: int, processes: int) -> int:
    """The batches each process takes in an epoch of ``batches``: accelerate deals them out in turn, and with
    its ``even_batches`` (the default) a process short of one takes one from the start again.

    >>> steps_per_process(5, 1), steps_per_process(5, 2), steps_per_process(6, 2)
    (5, 3, 3)
    """
    return math.ceil(batches / processes)


def _set_up(config: TrainConfig, checkpoint: Path | None, dataset, started: tuple, accelerator
            ) -> tuple[_Loop, int, list[float], float]:
    """The loop, ready at its first step: ``(loop, step, losses, seconds)``, from the checkpoint when resuming
    (the optimizer, schedule, RNG and next epoch's shuffle as the first run left them). ``started``: what
    :func:`_start` gave."""
    import torch  # deferred: the CLI imports this module to start up, torch only to train
    from transformers import get_cosine_schedule_with_warmup

    model, processor, saved = started
    sampler = PairBatchSampler(len(dataset), config.batch_size, config.hard_negatives, config.seed)
    loader = torch.utils.data.DataLoader(
        PairItems(dataset), batch_sampler=sampler,
        collate_fn=PairCollate(dataset, processor, text_padding(model, processor)), num_workers=config.num_workers,
    )
    processes = accelerator.num_processes
    steps_per_epoch = steps_per_process(len(sampler), processes)
    steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    lr = config.learning_rate()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    # In accelerate's units: its prepared scheduler steps once a process every optimizer step.
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(config.warmup * steps) * processes, steps * processes)
    step, losses, seconds = 0, [], 0.0
    if saved is not None:
        step, losses, seconds = checkpoints.restore_trainer_state(saved, checkpoint, optimizer, scheduler)
        sampler.epoch = step // steps_per_epoch  # the next epoch's shuffle, as the first run would have drawn it
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    loop = _Loop(config, model, processor, optimizer, scheduler, loader, accelerator, steps, steps_per_epoch, lr)
    return loop, step, losses, seconds


def _describe(loop: _Loop, dataset, step: int, checkpoint: Path | None) -> str:
    """The run's first line: model, data, steps, batching, learning rate, device, where it resumes."""
    config = loop.config
    n_params = sum(p.numel() for p in loop.model.parameters())
    batching = "hard negatives (both halves of each pair a batch)" if config.hard_negatives else "pairs apart"
    resumed = f", resuming at step {step} from {checkpoint}" if checkpoint is not None else ""
    processes = loop.accelerator.num_processes
    per_step = (f"{config.batch_size} pairs" if processes == 1 else
                f"{config.batch_size} pairs a process ({config.batch_size * processes} in {processes} processes)")
    return (f"training {config.model} ({n_params / 1e6:.2f} M parameters) on {config.data}: {len(dataset):,} pairs, "
            f"{loop.steps} steps of {per_step} ({loop.steps_per_epoch} an epoch), {batching}, "
            f"lr {loop.lr:g}, device {loop.device}{resumed}")


# -- steps ------------------------------------------------------------------------------------------


def _train_step(loop: _Loop, batch: dict) -> float:
    """One optimizer step on one batch; its loss."""
    import torch

    texts = batch.pop("texts")
    batch = {k: v.to(loop.device) for k, v in batch.items()}
    loss = contrastive_loss(loop.model(**batch).logits_per_text, texts)
    loop.accelerator.backward(loss)
    loop.optimizer.step()
    loop.scheduler.step()
    loop.optimizer.zero_grad(set_to_none=True)
    scale = getattr(loop.unwrap(), "logit_scale", None)
    if scale is not None:
        with torch.no_grad():
            scale.clamp_(max=MAX_LOG_SCALE)
    return float(loss.detach())


def _save_epoch(loop: _Loop, step: int, losses: list[float], seconds: float) -> None:
    """The end-of-epoch checkpoint (written by the main process once every process got there)."""
    loop.accelerator.wait_for_everyone()
    if loop.is_main:
        state = {"config": asdict(loop.config), "step": step, "losses": losses, "seconds": seconds}
        checkpoints.save_checkpoint(loop.config.out, loop.unwrap(), loop.processor, loop.optimizer, loop.scheduler,
                                    state)


def _run_steps(loop: _Loop, step: int, losses: list[float], seconds_before: float) -> tuple[int, float]:
    """Train from ``step`` to ``loop.steps`` (appending to ``losses``), saving a checkpoint at the end of every
    epoch; ``(steps done, seconds of training in all)``."""
    from tqdm.auto import tqdm

    loop.model.train()
    started = time.perf_counter()
    # In a log file (no terminal) the bar is redrawn every 30 s rather than every second.
    bar = tqdm(total=loop.steps, initial=step, desc="training", unit="step", file=sys.stderr, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30.0, disable=not (loop.is_main and loop.config.progress))
    with bar:
        while step < loop.steps:
            for batch in loop.loader:
                losses.append(_train_step(loop, batch))
                step += 1
                _check_finite(loop, losses[-1], step)  # before anything of this step can be saved
                recent = losses[-20:]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", epoch=f"{step / loop.steps_per_epoch:.1f}",
                                refresh=False)
                bar.update(1)
                if step % loop.steps_per_epoch == 0 and step < loop.steps:
                    _save_epoch(loop, step, losses, seconds_before + time.perf_counter() - started)
                if step >= loop.steps:
                    break
    return step, seconds_before + time.perf_counter() - started


# -- finish -----------------------------------------------------------------------------------------


def _score(loop: _Loop, trained, dataset, log) -> dict:
    """Score the trained model as ``--eval`` asks, into ``OUT/eval.json``, and log the table."""
    config, out = loop.config, Path(loop.config.out)
    image_size = dataset[0]["image_0"].size
    scores = evaluate_on(trained, loop.processor, config.eval, n=config.eval_n, image_size=image_size)
    write_atomically(out / "eval.json", json.dumps(scores, indent=1) + "\n")
    where = (f"a held-out synthetic bench ({config.eval_n} samples, seed {HELD_OUT_SEED}, "
             f"{image_size[0]}x{image_size[1]})" if config.eval == HELD_OUT else config.eval)
    note = f"\n({SYNTHETIC_NOTE})" if scores["provenance"].get("synthetic") else ""
    log(f"scored on {where}:\n{format_scores(scores)}{note}")
    return scores


def _finish(loop: _Loop, dataset, step: int, seconds: float, losses: list[float], resumed_from: int, log) -> dict | None:
    """Save the model (main process), score it if asked, remove the epoch checkpoints; the scores."""
    config, out = loop.config, Path(loop.config.out)
    loop.accelerator.wait_for_everyone()
    if not loop.is_main:
        return None
    trained = loop.unwrap()
    # final_lr: where the schedule ended (0 once a cosine schedule has run its course)
    record = {"config": asdict(config), "lr": loop.lr, "final_lr": loop.scheduler.get_last_lr()[0], "steps": step,
              "processes": loop.accelerator.num_processes, "seconds": round(seconds, 1),
              "resumed_from_step": resumed_from, "pairs": len(dataset), "losses": [round(v, 5) for v in losses]}
    checkpoints.save_final(out, trained, loop.processor, record)
    scores = _score(loop, trained, dataset, log) if config.eval else None
    checkpoints.remove_checkpoints(out)
    log(f"saved to {out} ({step} steps, {seconds:.0f} s)")
    return scores


def _log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train(config: TrainConfig, log=None) -> TrainResult:
    """Fine-tune (or, with ``model="tiny-clip"``, train from scratch) and ``save_pretrained`` to ``config.out``.

    Everything that can refuse the run does so before the first step: the options, the output folder, the
    model (:func:`~diffbench.training.model_loading.check_model`), the training and evaluation data. A loss
    or parameter that stops being finite ends the run with :class:`TrainingDiverged` and nothing saved after
    the last good epoch.
    """
    import torch  # deferred: the CLI imports this module to start up, torch only to train
    from accelerate import Accelerator

    log = log or _log_to_stderr
    checkpoint = _check_before_work(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    dataset = load_pairs(config.data)
    # The model before the accelerator: under several processes accelerate starts the process group, after
    # which transformers' save_pretrained writes on rank 0 only (each process writes its own tiny CLIP).
    started = _start(config, checkpoint, dataset)
    accelerator = Accelerator(cpu=config.cpu, mixed_precision=config.mixed_precision)
    try:
        loop, step, losses, seconds = _set_up(config, checkpoint, dataset, started, accelerator)
        if loop.is_main:
            log(_describe(loop, dataset, step, checkpoint))
        resumed_from = step
        step, seconds = _run_steps(loop, step, losses, seconds)
        scores = _finish(loop, dataset, step, seconds, losses, resumed_from, log)
    finally:
        accelerator.end_training()  # destroys the process group: gloo left to interpreter exit can abort
    return TrainResult(out=Path(config.out), steps=step, seconds=seconds, losses=losses, scores=scores,
                       resumed_from=resumed_from)
