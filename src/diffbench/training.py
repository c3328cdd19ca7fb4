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

:func:`vismin_scores` computes the VisMin text / image / group scores itself (numpy, a few lines, the
official strict ``>`` rule) so that training does not depend on the evaluate metric.

    >>> import numpy as np
    >>> sims = np.array([[0.9, 0.1, 0.2, 0.8],   # right both ways
    ...                  [0.5, 0.6, 0.1, 0.7],   # text right; image wrong (T0_I1 0.6 > T0_I0 0.5)
    ...                  [0.5, 0.5, 0.1, 0.9]])  # tie T0_I0 = T0_I1: image wrong (strict >), text right
    >>> vismin_scores(sims, ["object", "object", "counting"])["object"]
    {'text': 100.0, 'image': 50.0, 'group': 50.0, 'n': 2}
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

TINY_CLIP = "tiny-clip"  # --model value: a fresh tiny CLIP (diffbench.tiny_models), trained from scratch
SCORE_NAMES = ("text", "image", "group")


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
    from diffbench.building import load_built

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


def vismin_scores(similarities, categories) -> dict:
    """VisMin text / image / group scores (percent) per category, plus ``"all"`` and ``"avg"``.

    ``similarities``: ``[n, 4]`` in the submission order ``T0_I0, T0_I1, T1_I0, T1_I1``. Text correct iff
    ``T0_I0 > T1_I0 and T1_I1 > T0_I1``; image iff ``T0_I0 > T0_I1 and T1_I1 > T1_I0``; group: both.
    ``"avg"`` is the mean of the category cells (the published AVG), ``"all"`` pools the samples.
    """
    s = np.asarray(similarities, dtype=np.float64).reshape(-1, 4)
    t0i0, t0i1, t1i0, t1i1 = s.T
    text = (t0i0 > t1i0) & (t1i1 > t0i1)
    image = (t0i0 > t0i1) & (t1i1 > t1i0)
    correct = {"text": text, "image": image, "group": text & image}
    categories = np.asarray(categories)
    out = {}
    for category in dict.fromkeys(categories.tolist()):
        mask = categories == category
        out[category] = {k: round(100 * float(v[mask].mean()), 2) for k, v in correct.items()}
        out[category]["n"] = int(mask.sum())
    cells = [c for c in out]
    out["avg"] = {k: round(float(np.mean([out[c][k] for c in cells])), 2) for k in SCORE_NAMES}
    out["all"] = {k: round(100 * float(v.mean()), 2) for k, v in correct.items()}
    out["all"]["n"] = len(s)
    return out


def bench_similarities(model, processor, dataset, batch_size: int = 64, device=None):
    """``[n, 4]`` similarities (``T0_I0, T0_I1, T1_I0, T1_I1``) of a contrastive model over a VisMin-shaped dataset."""
    import torch

    from diffbench.harness.contrastive import pair_similarities, text_padding

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


def evaluate_on(model, processor, spec: str = "vismin:bench", batch_size: int = 64) -> dict:
    """Score a model on a built VisMin-shaped dataset: :func:`vismin_scores` of its similarities."""
    dataset = load_pairs(spec)
    sims = bench_similarities(model, processor, dataset, batch_size)
    categories = dataset["category"]
    feature = dataset.features["category"]
    if hasattr(feature, "int2str"):
        categories = feature.int2str(list(categories))
    return vismin_scores(sims, categories)


def format_scores(scores: dict) -> str:
    """A markdown table: one row per category (and avg), text / image / group."""
    lines = ["| category | n | text | image | group |", "|---|---:|---:|---:|---:|"]
    for name, row in scores.items():
        n = row.get("n", "")
        lines.append(f"| {name} | {n} | {row['text']:.1f} | {row['image']:.1f} | {row['group']:.1f} |")
    return "\n".join(lines)


# -- training ---------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """What ``diffbench train`` does; saved beside the model as ``training_args.json``."""

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
    eval: str | None = None  # e.g. "vismin:bench": scored after training, written to eval.json
    tiny_image_size: int = 48  # tiny-clip only: input size, width, depth
    tiny_hidden_size: int = 64
    tiny_layers: int = 3
    threads: int | None = None  # torch CPU threads (default: torch's choice); 1 is best on a busy machine
    log_every: int = 10


@dataclass
class TrainResult:
    out: Path
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    scores: dict | None = None


def _make_accelerator(config: TrainConfig):
    try:
        from accelerate import Accelerator
    except ImportError:  # plain single-device loop
        return None
    return Accelerator(cpu=config.cpu, mixed_precision=config.mixed_precision)


def _init_model(config: TrainConfig, dataset, scratch: Path) -> str:
    """The model path to load: ``config.model``, or a fresh tiny CLIP over the training captions' words."""
    if config.model != TINY_CLIP:
        return config.model
    from diffbench import tiny_models

    words = tiny_models.words_of(list(dataset["text_0"]) + list(dataset["text_1"]))
    return str(tiny_models.build_tiny_clip(
        scratch, words=words, seed=config.seed, image_size=config.tiny_image_size,
        hidden_size=config.tiny_hidden_size, layers=config.tiny_layers, projection_dim=config.tiny_hidden_size,
    ))


def train(config: TrainConfig, log=None) -> TrainResult:
    """Fine-tune (or, with ``model="tiny-clip"``, train from scratch) and ``save_pretrained`` to ``config.out``."""
    import tempfile

    import torch
    from transformers import AutoModel, AutoProcessor, get_cosine_schedule_with_warmup

    from diffbench.harness.contrastive import text_padding

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if config.threads:
        torch.set_num_threads(config.threads)
    accelerator = _make_accelerator(config)
    is_main = accelerator is None or accelerator.is_main_process
    torch.manual_seed(config.seed)
    dataset = load_pairs(config.data)
    lr = config.lr if config.lr is not None else (5e-4 if config.model == TINY_CLIP else 1e-5)

    with tempfile.TemporaryDirectory(prefix="diffbench-train-init-") as scratch:
        path = _init_model(config, dataset, Path(scratch))
        model = AutoModel.from_pretrained(path)
        processor = AutoProcessor.from_pretrained(path)
    text_kwargs = text_padding(model, processor)
    sampler = PairBatchSampler(len(dataset), config.batch_size, config.hard_negatives, config.seed)
    loader = torch.utils.data.DataLoader(
        PairItems(dataset), batch_sampler=sampler, collate_fn=PairCollate(dataset, processor, text_kwargs),
        num_workers=config.num_workers,
    )
    steps = config.max_steps or max(1, math.ceil(config.epochs * len(sampler)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(config.warmup * steps), steps)
    if accelerator is not None:
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
        device = accelerator.device
        unwrap = accelerator.unwrap_model
    else:
        device = torch.device("cuda" if torch.cuda.is_available() and not config.cpu else "cpu")
        model.to(device)
        unwrap = lambda m: m  # noqa: E731
    if is_main:
        n_params = sum(p.numel() for p in model.parameters())
        batching = "hard negatives (both halves of each pair a batch)" if config.hard_negatives else "pairs apart"
        log(f"training {config.model} ({n_params / 1e6:.2f} M parameters) on {config.data}: {len(dataset):,} pairs, "
            f"{steps} steps of {config.batch_size} pairs, {batching}, lr {lr:g}, device {device}")

    model.train()
    losses: list[float] = []
    started = time.perf_counter()
    step = 0
    max_log_scale = math.log(100.0)
    while step < steps:
        for batch in loader:
            texts = batch.pop("texts")
            batch = {k: v.to(device) for k, v in batch.items()}
            outputs = model(**batch)
            loss = contrastive_loss(outputs.logits_per_text, texts)
            if accelerator is not None:
                accelerator.backward(loss)
            else:
                loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            scale = getattr(unwrap(model), "logit_scale", None)
            if scale is not None:
                with torch.no_grad():
                    scale.clamp_(max=max_log_scale)  # CLIP's cap on the temperature
            losses.append(float(loss.detach()))
            step += 1
            if is_main and (step % config.log_every == 0 or step == steps):
                recent = losses[-config.log_every :]
                log(f"step {step}/{steps}  loss {sum(recent) / len(recent):.4f}  {time.perf_counter() - started:.0f} s")
            if step >= steps:
                break
    seconds = time.perf_counter() - started

    out = Path(config.out)
    scores = None
    if accelerator is not None:
        accelerator.wait_for_everyone()
    if is_main:
        trained = unwrap(model)
        trained.save_pretrained(out)
        processor.save_pretrained(out)
        record = {"config": asdict(config), "lr": lr, "steps": step, "seconds": round(seconds, 1),
                  "pairs": len(dataset), "losses": [round(v, 5) for v in losses]}
        (out / "training_log.json").write_text(json.dumps(record, indent=1) + "\n")
        if config.eval:
            scores = evaluate_on(trained, processor, config.eval)
            (out / "eval.json").write_text(json.dumps({"data": config.eval, "scores": scores}, indent=1) + "\n")
            log(f"{config.eval}:\n{format_scores(scores)}")
        log(f"saved to {out} ({step} steps, {seconds:.0f} s)")
    return TrainResult(out=out, steps=step, seconds=seconds, losses=losses, scores=scores)
