"""VisMin-style hard-negative contrastive fine-tuning of CLIP-like models.

The recipe (VisMin, NeurIPS 2024, section 5): every batch holds **both** images and **both** captions of
each minimal-change pair, so the only thing telling a caption from its pair's other caption (and an image
from its edited twin) is the one changed object, attribute, count or relation; each pair is the other's
hard negative. The loss is the symmetric InfoNCE of CLIP over the batch's ``2B x 2B`` caption-image
logits (caption -> image and image -> caption cross-entropy, averaged). Identical captions inside a batch
(the synthetic data repeats some) count as positives of each other rather than as negatives.

The ablation (``hard_negatives=False``) keeps everything else (the same items, batch size, steps and
schedule) but puts the two halves of every pair into *different* batches, so a batch's negatives are
random other samples.

Any transformers model whose forward takes ``input_ids``/``pixel_values`` and returns
``logits_per_text`` trains (CLIP, SigLIP, ALIGN, ...). Runs on CPU or one GPU as it is, and on several
GPUs under ``accelerate launch`` (each process takes whole batches, so pairs stay together; the loss is
computed per process, negatives are not gathered across processes).

A run shows one progress bar, saves a checkpoint at the end of every epoch (``OUT/checkpoint/``;
``resume=True`` continues from it with the same batches and schedule) and, at the end, scores the model
on a held-out synthetic VisMin bench (new scenes, a seed the training data did not use) or on a built
benchmark. Scores come from the ``vismin_group_score`` metric (``metrics/vismin_group_score/``), the
scorer of every VisMin result in diffbench: training has no rule of its own.

What can go wrong ends in one line naming the file or the setting (a ``ValueError``, exit 2 in the CLI)
and leaves nothing half-written: a model that is neither a folder nor cached (offline) is refused before
any work (the harness's own checks, :func:`check_model`); a damaged ``trainer_state.pt`` is named, never
unpickled; a loss or parameter that stops being finite stops the run at that step
(:class:`TrainingDiverged`) before anything of it is saved; the final model is staged and moved in whole.

    >>> import numpy as np
    >>> sims = np.array([[0.9, 0.1, 0.2, 0.8],   # right both ways
    ...                  [0.5, 0.6, 0.1, 0.7],   # text right; image wrong (T0_I1 0.6 > T0_I0 0.5)
    ...                  [0.5, 0.5, 0.1, 0.9]])  # tie T0_I0 = T0_I1: image wrong (strict >), text right
    >>> results = score_similarities(sims, ["object", "object", "counting"])
    >>> results["per_category"]["object"]
    {'text_score': 100.0, 'image_score': 50.0, 'group_score': 50.0, 'num_samples': 2}
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from diffbench.harness import models
from diffbench.files import write_atomically

TINY_CLIP = "tiny-clip"  # --model value: a fresh tiny CLIP (diffbench.models.tiny), trained from scratch
HELD_OUT = "held-out"  # --eval value: a synthetic bench generated for the evaluation (the default)
HELD_OUT_SEED = 1_000_003  # far from the seeds a sample build uses (SEED for the bench, SEED + 1 for pairs)
CHECKPOINT_DIR = "checkpoint"  # under OUT: the model, its processor and trainer_state.pt of the last epoch
FINAL_STAGING = ".final.tmp"  # under OUT: the finished model is written here, then moved into OUT whole
TRAINER_STATE_KEYS = ("config", "step", "losses", "seconds", "optimizer", "scheduler", "torch_rng")


# -- data -------------------------------------------------------------------------------------------


def parse_data_spec(spec: str) -> tuple[str, str, str]:
    """``"vismin:pairs"`` -> ``("vismin", "pairs", "train")``; ``NAME:CONFIG[:SPLIT]``.

    >>> parse_data_spec("vismin:bench:test")
    ('vismin', 'bench', 'test')
    """
    parts = spec.split(":")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise ValueError(f"--data must look like NAME:CONFIG[:SPLIT] (e.g. vismin:pairs), got {spec!r}")
    name, config = parts[:2]
    split = parts[2] if len(parts) == 3 else ("test" if config == "bench" else "train")
    return name, config, split


def load_pairs(spec: str):
    """A built dataset with ``image_0, text_0, image_1, text_1`` columns (``diffbench build`` first)."""
    from diffbench.data.building import load_built

    dataset = load_built(*parse_data_spec(spec))
    missing = [c for c in ("image_0", "text_0", "image_1", "text_1") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{spec} has no column(s) {missing}: training needs minimal-change pairs (vismin:pairs)")
    return dataset


class PairBatchSampler:
    """Batches of item indices; item ``2 * p + side`` is side 0 or 1 (original or edit) of pair ``p``.

    ``hard_negatives=True``: a batch is ``pairs_per_batch`` pairs, both sides of each.
    ``hard_negatives=False``: the same number of items, but side 0 of one chunk of pairs with side 1 of
    another, so the two halves of a pair never meet in a batch.
    A new shuffle each time it is iterated (each epoch), the same in every process (seeded).

    >>> sampler = PairBatchSampler(4, 2, hard_negatives=True, seed=0)
    >>> [sorted(b) for b in sampler]
    [[0, 1, 2, 3], [4, 5, 6, 7]]
    >>> apart = PairBatchSampler(6, 2, hard_negatives=False, seed=0)
    >>> any(2 * p in b and 2 * p + 1 in b for b in apart for p in range(6))
    False
    """

    def __init__(self, num_pairs: int, pairs_per_batch: int, hard_negatives: bool = True, seed: int = 0):
        if num_pairs < 1 or pairs_per_batch < 1:
            raise ValueError("need at least one pair and one pair a batch")
        self.num_pairs, self.pairs_per_batch = num_pairs, pairs_per_batch
        self.hard_negatives, self.seed, self.epoch = hard_negatives, seed, 0

    def __len__(self) -> int:
        return math.ceil(self.num_pairs / self.pairs_per_batch)

    def __iter__(self):
        import torch

        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(self.num_pairs, generator=generator).tolist()
        chunks = [order[i : i + self.pairs_per_batch] for i in range(0, self.num_pairs, self.pairs_per_batch)]
        for k, chunk in enumerate(chunks):
            if self.hard_negatives or len(chunks) == 1:
                yield [2 * p + side for p in chunk for side in (0, 1)]
            else:
                yield [2 * p for p in chunk] + [2 * p + 1 for p in chunks[(k + 1) % len(chunks)]]


class PairItems:
    """The dataset seen as items (image, caption): item ``2 * p + side`` is side ``side`` of pair ``p``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return 2 * len(self.dataset)

    def __getitem__(self, index: int) -> int:
        return index


class PairCollate:
    """Item indices -> processor outputs and the captions (for the duplicate-caption mask)."""

    def __init__(self, dataset, processor, text_kwargs: dict):
        self.dataset, self.processor, self.text_kwargs = dataset, processor, text_kwargs

    def __call__(self, items: list[int]) -> dict:
        pairs = sorted({i // 2 for i in items})
        rows = self.dataset[pairs]
        where = {p: k for k, p in enumerate(pairs)}
        images = [rows[f"image_{i % 2}"][where[i // 2]].convert("RGB") for i in items]
        texts = [rows[f"text_{i % 2}"][where[i // 2]] for i in items]
        pixels = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        tokens = self.processor.tokenizer(texts, return_tensors="pt", **self.text_kwargs)
        return {"pixel_values": pixels, "texts": texts, **dict(tokens)}


# -- loss -------------------------------------------------------------------------------------------


def contrastive_loss(logits_per_text, texts: list[str]):
    """Symmetric InfoNCE over ``[M captions, M images]`` logits; item ``k``'s caption describes image ``k``.

    Captions equal to caption ``k`` (and their images) are positives of item ``k`` too, with the target
    probability shared among them.

    >>> import torch
    >>> logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    >>> round(float(contrastive_loss(logits, ["a", "b"])), 4)
    0.0067
    """
    import torch

    index = {text: k for k, text in enumerate(dict.fromkeys(texts))}
    ids = torch.tensor([index[t] for t in texts], device=logits_per_text.device)
    same = (ids[:, None] == ids[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)  # symmetric mask: the same targets both ways
    logits = logits_per_text.float()
    text_to_image = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
    image_to_text = -(targets * logits.t().log_softmax(dim=1)).sum(dim=1).mean()
    return (text_to_image + image_to_text) / 2


# -- scoring ----------------------------------------------------------------------------------------


def score_similarities(similarities, categories) -> dict:
    """The ``vismin_group_score`` metric's results for ``[n, 4]`` similarities and their categories.

    ``similarities`` are in the submission order ``T0_I0, T0_I1, T1_I0, T1_I1``
    (:data:`diffbench.vismin.schema.SCORE_COLUMNS`); the metric applies the official rule (strict ``>``)
    and aggregates per category (``per_category``, ``category_mean``, ``avg_as_published``).
    """
    from diffbench.data.hub_folders import load_module
    from diffbench.vismin.schema import SCORE_COLUMNS

    s = np.asarray(similarities, dtype=np.float64).reshape(-1, 4)
    columns = {name: s[:, k].tolist() for k, name in enumerate(SCORE_COLUMNS)}
    metric = load_module("metrics", "vismin_group_score").VisminGroupScore()
    return metric.compute(**columns, categories=[str(c) for c in categories])


def bench_similarities(model, processor, dataset, batch_size: int = 64, device=None):
    """``[n, 4]`` similarities (``T0_I0, T0_I1, T1_I0, T1_I1``) of a contrastive model over a VisMin-shaped dataset."""
    import torch

    from diffbench.vismin.contrastive import pair_similarities, text_padding

    device = device or next(model.parameters()).device
    text_kwargs = text_padding(model, processor)
    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            rows = dataset[start : start + batch_size]
            images = [im.convert("RGB") for pair in zip(rows["image_0"], rows["image_1"]) for im in pair]
            texts = [t for pair in zip(rows["text_0"], rows["text_1"]) for t in pair]
            image_inputs = processor.image_processor(images=images, return_tensors="pt")
            text_inputs = processor.tokenizer(texts, return_tensors="pt", **text_kwargs)
            image_inputs = {k: v.to(device) for k, v in image_inputs.items()}
            text_inputs = {k: v.to(device) for k, v in text_inputs.items()}
            out.append(pair_similarities(model, image_inputs, text_inputs).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def held_out_bench(n: int, image_size: tuple[int, int], seed: int = HELD_OUT_SEED):
    """A synthetic VisMin bench made for an evaluation (in memory): new scenes, a seed no sample build uses.

    Returns ``(dataset, provenance)``; the dataset has the columns training and scoring read.
    """
    import datasets

    from diffbench.data.synth.vismin import generate_bench

    rows = list(generate_bench(n=n, seed=seed, image_size=tuple(image_size)))
    names = ("category", "image_0", "text_0", "image_1", "text_1")
    features = datasets.Features({
        "category": datasets.Value("string"), "image_0": datasets.Image(), "text_0": datasets.Value("string"),
        "image_1": datasets.Image(), "text_1": datasets.Value("string"),
    })
    dataset = datasets.Dataset.from_dict({k: [row[k] for row in rows] for k in names}, features=features)
    provenance = {"dataset": "vismin", "config": "bench", "source": "synthetic", "synthetic": True,
                  "n": n, "seed": seed, "image_size": list(image_size), "held_out": True}
    return dataset, provenance


def eval_data(spec: str, n: int = 400, image_size: tuple[int, int] = (96, 72)):
    """``(dataset, provenance)`` to evaluate on: :func:`held_out_bench` for ``"held-out"``, else a built one."""
    if spec == HELD_OUT:
        return held_out_bench(n, image_size)
    from diffbench.data.provenance import of_dataset

    dataset = load_pairs(spec)
    return dataset, of_dataset(dataset)


def _category_names(dataset) -> list[str]:
    categories = dataset["category"]
    feature = dataset.features["category"]
    return feature.int2str(list(categories)) if hasattr(feature, "int2str") else list(categories)


def evaluate_on(model, processor, spec: str = "vismin:bench", batch_size: int = 64, *, n: int = 400,
                image_size: tuple[int, int] = (96, 72)) -> dict:
    """Score a model on a VisMin-shaped dataset (see :func:`eval_data`): the metric's results, plus
    ``"data"`` (the spec) and ``"provenance"`` (where the data came from)."""
    dataset, provenance = eval_data(spec, n, image_size)
    results = score_similarities(bench_similarities(model, processor, dataset, batch_size), _category_names(dataset))
    return {**results, "data": spec, "provenance": provenance}


def format_scores(results: dict) -> str:
    """A markdown table of the metric's results: one row per category, their mean (the published AVG
    convention) and all samples pooled; text / image / group in percent."""
    lines = ["| category | n | text | image | group |", "|---|---:|---:|---:|---:|"]

    def row(name, cell, n=""):
        lines.append(f"| {name} | {n} | {cell['text_score']:.2f} | {cell['image_score']:.2f} | {cell['group_score']:.2f} |")

    for name, cell in (results.get("per_category") or {}).items():
        row(name, cell, cell["num_samples"])
    if "category_mean" in results:
        row("AVG (category mean)", results["category_mean"])
    row("all samples", results, results["num_samples"])
    return "\n".join(lines)


# -- training ---------------------------------------------------------------------------------------

# What must match for --resume to continue a checkpoint (threads, workers, eval may change).
RUN_FIELDS = ("model", "data", "epochs", "batch_size", "lr", "weight_decay", "warmup", "hard_negatives", "seed",
              "max_steps", "mixed_precision", "tiny_image_size", "tiny_hidden_size", "tiny_layers")


@dataclass
class TrainConfig:
    """What ``diffbench train`` does; saved beside the model in ``training_log.json``."""

    model: str
    data: str = "vismin:pairs"
    out: str = "runs/train"
    epochs: float = 1.0
    batch_size: int = 32  # pairs a batch: 2x this many images and captions
    lr: float | None = None  # default: 5e-4 from scratch (tiny-clip), 1e-5 fine-tuning
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of the steps
    hard_negatives: bool = True
    seed: int = 0
    max_steps: int | None = None
    num_workers: int = 0
    mixed_precision: str = "no"
    cpu: bool = False
    eval: str | None = HELD_OUT  # scored after training, written to eval.json; None: no evaluation
    eval_n: int = 400  # samples of the held-out synthetic bench
    tiny_image_size: int = 48  # tiny-clip only: input size, width, depth
    tiny_hidden_size: int = 64
    tiny_layers: int = 3
    threads: int | None = None  # torch CPU threads (default: torch's choice); 1 is best on a busy machine
    resume: bool = False  # continue from OUT/checkpoint (saved at the end of every epoch)
    progress: bool = True  # a tqdm progress bar on stderr
    allow_pickle: bool = False  # load pickle weights (pytorch_model.bin), which can run code: only if trusted

    def validate(self) -> None:
        """Raise ValueError naming the option for a value that cannot work.

        >>> TrainConfig(model="tiny-clip", batch_size=0).validate()
        Traceback (most recent call last):
        ...
        ValueError: --batch-size must be a positive whole number, got 0
        >>> TrainConfig(model="tiny-clip", weight_decay=float("inf")).validate()
        Traceback (most recent call last):
        ...
        ValueError: --weight-decay must be a finite number, 0 or more, got inf
        """
        positive_ints = {"--batch-size": self.batch_size, "--eval-n": self.eval_n,
                         "--tiny-image-size": self.tiny_image_size, "--tiny-hidden-size": self.tiny_hidden_size,
                         "--tiny-layers": self.tiny_layers}
        if self.max_steps is not None:
            positive_ints["--max-steps"] = self.max_steps
        if self.threads is not None:
            positive_ints["--threads"] = self.threads
        for flag, value in positive_ints.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{flag} must be a positive whole number, got {value}")
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ValueError(f"--epochs must be a positive number, got {self.epochs}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"--warmup is a fraction of the steps, from 0 up to (not including) 1, got {self.warmup}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):  # nan fails both comparisons
            raise ValueError(f"--weight-decay must be a finite number, 0 or more, got {self.weight_decay}")
        if self.num_workers < 0:
            raise ValueError(f"--num-workers must not be negative, got {self.num_workers}")
        if self.eval not in (None, HELD_OUT):
            parse_data_spec(self.eval)


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


def _make_accelerator(config: TrainConfig):
    try:
        from accelerate import Accelerator
    except ImportError:  # plain single-device loop
        return None
    return Accelerator(cpu=config.cpu, mixed_precision=config.mixed_precision)


class _quiet_transformers:
    """No load/save progress bars and no "requires torchvision" fallback notice while training: the run's
    own progress bar is the one line that moves (torchvision cannot load beside the CPU torch build; the
    PIL image processor is what runs, and is asked for explicitly)."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self.bars, self.verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(self.verbosity)
        if self.bars:
            hf_logging.enable_progress_bar()


def _processor_kwargs() -> dict:
    from transformers.utils import is_torchvision_available

    return {} if is_torchvision_available() else {"backend": "pil"}


def _init_model(config: TrainConfig, dataset, scratch: Path) -> str:
    """The model path to load: ``config.model``, or a fresh tiny CLIP over the training captions' words."""
    if config.model != TINY_CLIP:
        return config.model
    from diffbench.models import tiny as tiny_models

    words = tiny_models.words_of(list(dataset["text_0"]) + list(dataset["text_1"]))
    return str(tiny_models.build_tiny_clip(
        scratch, words=words, seed=config.seed, image_size=config.tiny_image_size,
        hidden_size=config.tiny_hidden_size, layers=config.tiny_layers, projection_dim=config.tiny_hidden_size,
    ))


def hub_model_missing(model_id: str, err: BaseException) -> str:
    """One line for a ``--model`` that is no local folder, is not in the local Hub cache, and could not be
    downloaded now (offline, or the Hub unreachable or without that repo), with what to do."""
    from huggingface_hub import constants

    why = ("the Hub is off (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE
           else f"the Hub did not provide it ({str(err).splitlines()[0] if str(err) else type(err).__name__})")
    return (f"{model_id}: no such local folder, and not in the local Hub cache ({constants.HF_HUB_CACHE}); {why}; "
            f"download it where the network is reachable (hf download {model_id}), or pass --model a local model folder")


def check_model(model_id: str, allow_pickle: bool = False) -> None:
    """Refuse, before any work, a ``--model`` that cannot train: no such folder, a Hub model neither cached
    nor downloadable, not a contrastive model, corrupt or (unless allowed) pickle-only weights.

    The checks are the harness's (:mod:`diffbench.harness.models`, the ones ``diffbench eval`` makes).
    """
    if model_id == TINY_CLIP:
        return
    try:
        kind = models.detect_kind(model_id)
    except FileNotFoundError as err:  # not a folder, and AutoConfig found nothing in the cache or on the Hub
        raise models.ModelLoadError(hub_model_missing(model_id, err)) from None
    if kind.kind != models.CONTRASTIVE:
        raise models.ModelKindError(f"{model_id} is an {kind.kind} model ({kind.model_type}); "
                                    "training needs a contrastive (CLIP-like) model")
    models.check_loadable(model_id, allow_pickle)


def _load_model(path: str, allow_pickle: bool):
    """``(model, processor)`` in float32 (what AdamW keeps; ``--mixed-precision`` is accelerate's autocast)."""
    import torch
    from transformers import AutoModel, AutoProcessor

    try:
        model = AutoModel.from_pretrained(path, dtype=torch.float32, use_safetensors=None if allow_pickle else True)
        processor = AutoProcessor.from_pretrained(path, **_processor_kwargs())
    except OSError as err:
        if err.errno is not None:  # the machine refused (disk, permissions): the CLI says so
            raise
        # config cached but a weight or tokenizer file not (offline), no safetensors (no --allow-pickle), ...
        raise models.ModelLoadError(f"{path}: cannot load the model ({str(err).splitlines()[0]})") from None
    return model, processor


def find_checkpoint(out: Path) -> Path | None:
    """The checkpoint folder under ``out``, if a run saved one (also the previous one when a save was cut short)."""
    for name in (CHECKPOINT_DIR, f".{CHECKPOINT_DIR}.old"):
        if (Path(out) / name / "trainer_state.pt").is_file():
            return Path(out) / name
    return None


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


def save_checkpoint(out: Path, model, processor, optimizer, scheduler, state: dict) -> Path:
    """Write ``out/checkpoint/`` (model, processor, ``trainer_state.pt``), replacing the previous one only
    once the new one is complete."""
    import torch

    out = Path(out)
    staging, final, old = out / f".{CHECKPOINT_DIR}.tmp", out / CHECKPOINT_DIR, out / f".{CHECKPOINT_DIR}.old"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with _disk_errors(staging):
            model.save_pretrained(staging)
        processor.save_pretrained(staging)
        torch.save({**state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state()}, staging / "trainer_state.pt")
    except BaseException:  # a full disk, Ctrl-C: the previous checkpoint stays as it was
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _damaged_checkpoint(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: the checkpoint is damaged ({what}); delete {path.parent} and train again "
                      "without --resume, or give another --out")


def read_trainer_state(checkpoint: Path) -> dict:
    """``trainer_state.pt`` of a checkpoint, read with ``weights_only`` (no code is ever unpickled); a damaged
    or foreign file is a one-line ValueError naming it, never torch's advice to unpickle it anyway."""
    import torch

    path = Path(checkpoint) / "trainer_state.pt"
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


def _restore(saved: dict, checkpoint: Path, optimizer, scheduler) -> tuple[int, list[float], float]:
    """Put the optimizer, schedule and RNG back as they were; ``(step, losses, seconds)`` of the saved run."""
    import torch

    try:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        return int(saved["step"]), [float(v) for v in saved["losses"]], float(saved["seconds"])
    except (ValueError, KeyError, TypeError, RuntimeError) as err:  # a state that does not fit this model
        raise _damaged_checkpoint(checkpoint / "trainer_state.pt", f"{type(err).__name__} restoring it") from None


def _check_out_folder(config: TrainConfig) -> Path | None:
    """The checkpoint to resume from (``None``: a fresh run); refuses to overwrite another run's output."""
    out = Path(config.out)
    checkpoint = find_checkpoint(out)
    finished = (out / "training_log.json").is_file()
    if config.resume:
        if finished and checkpoint is None:
            raise ValueError(f"{out} holds a finished run (training_log.json): nothing to resume")
        if checkpoint is None:
            raise ValueError(f"no checkpoint to resume in {out / CHECKPOINT_DIR} (one is saved at the end of every epoch)")
        return checkpoint
    if checkpoint is not None or finished:
        what = "a checkpoint of an unfinished run" if checkpoint is not None else "a finished run"
        raise ValueError(f"{out} holds {what}: --resume to continue it, or give another --out")
    return None


def _check_resumable(config: TrainConfig, saved: dict, checkpoint: Path) -> None:
    now = asdict(config)
    changed = [f"{k} ({saved.get(k)!r} -> {now[k]!r})" for k in RUN_FIELDS if saved.get(k) != now[k]]
    if changed:
        raise ValueError(f"{checkpoint} was saved by a run with other settings: {', '.join(changed)}; "
                         "resume with the same settings, or give another --out")


def parameters_finite(parameters) -> bool:
    """Whether every parameter is finite: one sum a tensor (a NaN or an infinity carries through a sum;
    finite values overflow it only near float32's limit, so a non-finite sum is confirmed value by value).

    >>> import torch
    >>> parameters_finite([torch.ones(3), torch.full((2,), 3e38)]), parameters_finite([torch.tensor([0.0, float("nan")])])
    (True, False)
    """
    import torch

    tensors = [p.detach() for p in parameters]
    if not tensors or bool(torch.isfinite(torch.stack([t.sum().float() for t in tensors])).all()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def divergence_message(step: int, steps: int, what: str, config: TrainConfig, lr: float) -> str:
    """One line: where training diverged, what was (not) kept, which settings to change."""
    settings = f"lower --lr (now {lr:g}) or --weight-decay (now {config.weight_decay:g})"
    if config.mixed_precision != "no":
        settings += f", or train in full precision (--mixed-precision no; now {config.mixed_precision})"
    checkpoint = find_checkpoint(Path(config.out))
    kept = (f" (the checkpoint of an earlier epoch stays in {checkpoint}: delete it, or give another --out, to start "
            "again)" if checkpoint is not None else "")
    return f"training diverged at step {step} of {steps}: {what}; {settings}; no model was saved{kept}"


@dataclass
class _Loop:
    """What the step loop and the final save need (built once by :func:`train`)."""

    config: TrainConfig
    model: object
    processor: object
    optimizer: object
    scheduler: object
    loader: object
    accelerator: object | None
    device: object
    steps: int
    steps_per_epoch: int
    lr: float
    is_main: bool

    def unwrap(self):
        return self.model if self.accelerator is None else self.accelerator.unwrap_model(self.model)


def _check_finite(loop: _Loop, loss: float, step: int) -> None:
    """Stop the run (:class:`TrainingDiverged`) once the loss or a parameter is NaN or infinite; under several
    processes all of them stop together (none is left waiting in a collective)."""
    import torch

    finite_loss = math.isfinite(loss)
    finite_parameters = parameters_finite(loop.unwrap().parameters())
    finite = finite_loss and finite_parameters
    if loop.accelerator is not None and loop.accelerator.num_processes > 1:
        flag = torch.tensor(0.0 if finite else 1.0, device=loop.accelerator.device)
        finite = float(loop.accelerator.reduce(flag, reduction="sum")) == 0
    if finite:
        return
    what = (f"the loss is {loss}" if not finite_loss else
            "the parameters are no longer finite" if not finite_parameters else "another process's loss is not finite")
    raise TrainingDiverged(divergence_message(step, loop.steps, what, loop.config, loop.lr))


def _run_steps(loop: _Loop, step: int, losses: list[float], seconds_before: float) -> tuple[int, float]:
    """Train from ``step`` to ``loop.steps`` (appending to ``losses``), saving a checkpoint at the end of every
    epoch; ``(steps done, seconds of training in all)``."""
    import torch
    from tqdm.auto import tqdm

    config, model, optimizer, scheduler, accelerator = (loop.config, loop.model, loop.optimizer, loop.scheduler,
                                                        loop.accelerator)
    model.train()
    started = time.perf_counter()
    max_log_scale = math.log(100.0)
    # In a log file (no terminal) the bar is redrawn every 30 s rather than every second.
    bar = tqdm(total=loop.steps, initial=step, desc="training", unit="step", file=sys.stderr, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30.0, disable=not (loop.is_main and config.progress))
    with bar:
        while step < loop.steps:
            for batch in loop.loader:
                texts = batch.pop("texts")
                batch = {k: v.to(loop.device) for k, v in batch.items()}
                loss = contrastive_loss(model(**batch).logits_per_text, texts)
                if accelerator is not None:
                    accelerator.backward(loss)
                else:
                    loss.backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                scale = getattr(loop.unwrap(), "logit_scale", None)
                if scale is not None:
                    with torch.no_grad():
                        scale.clamp_(max=max_log_scale)  # CLIP's cap on the temperature
                losses.append(float(loss.detach()))
                step += 1
                _check_finite(loop, losses[-1], step)  # before anything of this step can be saved
                recent = losses[-20:]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", epoch=f"{step / loop.steps_per_epoch:.1f}",
                                refresh=False)
                bar.update(1)
                if step % loop.steps_per_epoch == 0 and step < loop.steps:
                    if accelerator is not None:
                        accelerator.wait_for_everyone()
                    if loop.is_main:
                        state = {"config": asdict(config), "step": step, "losses": losses,
                                 "seconds": seconds_before + time.perf_counter() - started}
                        with _quiet_transformers():
                            save_checkpoint(config.out, loop.unwrap(), loop.processor, optimizer, scheduler, state)
                if step >= loop.steps:
                    break
    return step, seconds_before + time.perf_counter() - started


def save_final(out: Path, model, processor, record: dict) -> None:
    """The finished model, its processor and ``training_log.json`` into ``out``, whole or not at all: written
    into ``out/.final.tmp`` first, then moved in file by file (renames, which cannot half-happen), the log
    (the mark of a finished run) last. A failed write removes the staging folder and leaves ``out`` as it was."""
    out = Path(out)
    staging = out / FINAL_STAGING
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with _quiet_transformers(), _disk_errors(staging):
            model.save_pretrained(staging)
            processor.save_pretrained(staging)
        (staging / "training_log.json").write_text(json.dumps(record, indent=1) + "\n")
        names = sorted(p.name for p in staging.iterdir() if p.name != "training_log.json") + ["training_log.json"]
        for name in names:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _finish(loop: _Loop, dataset, step: int, seconds: float, losses: list[float], resumed_from: int, log) -> dict | None:
    """Save the model (main process), score it if asked, remove the epoch checkpoints; the scores."""
    config, out = loop.config, Path(loop.config.out)
    if loop.accelerator is not None:
        loop.accelerator.wait_for_everyone()
    if not loop.is_main:
        return None
    trained = loop.unwrap()
    record = {"config": asdict(config), "lr": loop.lr, "steps": step, "seconds": round(seconds, 1),
              "resumed_from_step": resumed_from, "pairs": len(dataset), "losses": [round(v, 5) for v in losses]}
    save_final(out, trained, loop.processor, record)
    scores = None
    if config.eval:
        image_size = dataset[0]["image_0"].size
        scores = evaluate_on(trained, loop.processor, config.eval, n=config.eval_n, image_size=image_size)
        write_atomically(out / "eval.json", json.dumps(scores, indent=1) + "\n")
        where = (f"a held-out synthetic bench ({config.eval_n} samples, seed {HELD_OUT_SEED}, "
                 f"{image_size[0]}x{image_size[1]})" if config.eval == HELD_OUT else config.eval)
        note = ""
        if scores["provenance"].get("synthetic"):
            from diffbench.data.provenance import SYNTHETIC_NOTE

            note = f"\n({SYNTHETIC_NOTE})"
        log(f"scored on {where}:\n{format_scores(scores)}{note}")
    for leftover in (CHECKPOINT_DIR, f".{CHECKPOINT_DIR}.old", f".{CHECKPOINT_DIR}.tmp"):
        shutil.rmtree(out / leftover, ignore_errors=True)  # the finished model replaces the last epoch's
    log(f"saved to {out} ({step} steps, {seconds:.0f} s)")
    return scores


def _start(config: TrainConfig, checkpoint: Path | None, dataset) -> tuple[object, object, dict | None]:
    """``(model, processor, saved trainer state or None)``: the checkpoint's, the model asked for, or a fresh tiny CLIP."""
    import tempfile

    with _quiet_transformers(), tempfile.TemporaryDirectory(prefix="diffbench-train-init-") as scratch:
        if checkpoint is not None:
            saved = read_trainer_state(checkpoint)
            _check_resumable(config, saved["config"], checkpoint)
            models.check_loadable(str(checkpoint), allow_pickle=False)  # a corrupt model file is named
            return (*_load_model(str(checkpoint), allow_pickle=False), saved)
        return (*_load_model(_init_model(config, dataset, Path(scratch)), config.allow_pickle), None)


def train(config: TrainConfig, log=None) -> TrainResult:
    """Fine-tune (or, with ``model="tiny-clip"``, train from scratch) and ``save_pretrained`` to ``config.out``.

    Everything that can refuse the run does so before the first step: the options, the output folder, the
    model (:func:`check_model`), the training and evaluation data. A loss or parameter that stops being
    finite ends the run with :class:`TrainingDiverged` and nothing saved after the last good epoch.
    """
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from diffbench.vismin.contrastive import text_padding

    config.validate()
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    checkpoint = _check_out_folder(config)
    if checkpoint is None:
        check_model(config.model, config.allow_pickle)
    if config.eval not in (None, HELD_OUT):
        load_pairs(config.eval)  # a benchmark not built is refused now, not after hours of training
    if config.threads:
        torch.set_num_threads(config.threads)
    accelerator = _make_accelerator(config)
    is_main = accelerator is None or accelerator.is_main_process
    torch.manual_seed(config.seed)
    dataset = load_pairs(config.data)
    lr = config.lr if config.lr is not None else (5e-4 if config.model == TINY_CLIP else 1e-5)
    model, processor, saved = _start(config, checkpoint, dataset)
    text_kwargs = text_padding(model, processor)
    sampler = PairBatchSampler(len(dataset), config.batch_size, config.hard_negatives, config.seed)
    loader = torch.utils.data.DataLoader(
        PairItems(dataset), batch_sampler=sampler, collate_fn=PairCollate(dataset, processor, text_kwargs),
        num_workers=config.num_workers,
    )
    steps_per_epoch = len(sampler)
    steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    device = None
    if accelerator is None:
        device = torch.device("cuda" if torch.cuda.is_available() and not config.cpu else "cpu")
        model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(config.warmup * steps), steps)
    step, losses, seconds_before = 0, [], 0.0
    if saved is not None:
        step, losses, seconds_before = _restore(saved, checkpoint, optimizer, scheduler)
        sampler.epoch = step // steps_per_epoch  # the next epoch's shuffle, as the first run would have drawn it
    if accelerator is not None:
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
        device = accelerator.device
    loop = _Loop(config, model, processor, optimizer, scheduler, loader, accelerator, device, steps, steps_per_epoch,
                 lr, is_main)
    if is_main:
        n_params = sum(p.numel() for p in model.parameters())
        batching = "hard negatives (both halves of each pair a batch)" if config.hard_negatives else "pairs apart"
        resumed = f", resuming at step {step} from {checkpoint}" if saved is not None else ""
        log(f"training {config.model} ({n_params / 1e6:.2f} M parameters) on {config.data}: {len(dataset):,} pairs, "
            f"{steps} steps of {config.batch_size} pairs ({steps_per_epoch} an epoch), {batching}, lr {lr:g}, "
            f"device {device}{resumed}")
    resumed_from = step
    try:
        step, seconds = _run_steps(loop, step, losses, seconds_before)
        scores = _finish(loop, dataset, step, seconds, losses, resumed_from, log)
    finally:
        if accelerator is not None:
            accelerator.end_training()  # destroys the process group: gloo left to interpreter exit can abort
    return TrainResult(out=Path(config.out), steps=step, seconds=seconds, losses=losses, scores=scores,
                       resumed_from=resumed_from)
