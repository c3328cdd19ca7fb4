"""Scoring a trained model: a held-out synthetic VisMin bench (or a built benchmark), the model's
similarities over it, and the ``vismin_group_score`` metric's results (the official rule, strict ``>``).

Training has no scoring rule of its own: :func:`score_similarities` hands the similarities to the metric
every VisMin result in diffbench comes from.
"""

from __future__ import annotations

import numpy as np

from diffbench.data.hub_folders import load_module
from diffbench.data.provenance import of_dataset
from diffbench.data.synth.vismin import generate_bench
from diffbench.training.pair_batches import load_pairs
from diffbench.training.settings import HELD_OUT
from diffbench.vismin.contrastive import pair_similarities, text_padding
from diffbench.vismin.schema import SCORE_COLUMNS

HELD_OUT_SEED = 1_000_003  # far from the seeds a sample build uses (SEED for the bench, SEED + 1 for pairs)


def score_similarities(similarities, categories) -> dict:
    """The ``vismin_group_score`` metric's results for ``[n, 4]`` similarities and their categories.

    ``similarities`` are in the submission order ``T0_I0, T0_I1, T1_I0, T1_I1``
    (:data:`diffbench.vismin.schema.SCORE_COLUMNS`); the metric applies the official rule (strict ``>``)
    and aggregates per category (``per_category``, ``category_mean``, ``avg_as_published``).
    """
    s = np.asarray(similarities, dtype=np.float64).reshape(-1, 4)
    columns = {name: s[:, k].tolist() for k, name in enumerate(SCORE_COLUMNS)}
    metric = load_module("metrics", "vismin_group_score").VisminGroupScore()
    return metric.compute(**columns, categories=[str(c) for c in categories])


def bench_similarities(model, processor, dataset, batch_size: int = 64, device=None):
    """``[n, 4]`` similarities (``T0_I0, T0_I1, T1_I0, T1_I1``) of a contrastive model over a VisMin-shaped dataset."""
    import torch  # deferred: the CLI imports the training modules to start up, torch only to score

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
    import datasets  # deferred: the CLI imports the training modules to start up

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
