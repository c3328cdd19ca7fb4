"""Reproduce the embedded default model (src/diffbench/models/default) and its hard-negative ablation.

    .venv/bin/python bench/train_default_model.py                 # train both, print the comparison
    .venv/bin/python bench/train_default_model.py --install       # ... and replace the embedded model

Steps, all offline, in a private HF home (your datasets cache is left alone):

1. build the synthetic VisMin sample: benchmark (seed 0) and training pairs (seed 1, the sample's
   ``seed + 1``), 2,000 each, 96x72 images; report how many benchmark caption pairs also occur in
   the training pairs (the synthetic caption space is small: counting has only ~600 caption pairs);
2. train a tiny CLIP from scratch with the recipe (``diffbench train --model tiny-clip``), then the
   same with ``--no-hard-negatives``: same seed, data, steps and schedule;
3. score both on the synthetic benchmark (2,000 samples, 96x72) and on the same scenes rendered at
   320x240 (what ``make demo`` builds), VisMin text / image / group per category;
4. write ``bench/results/train_default_model.{json,md}``; with ``--install``, copy the recipe's model
   into ``src/diffbench/models/default`` and write its model card from the results.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO / "src" / "diffbench" / "models" / "default"
RESULTS = REPO / "bench" / "results"

N, SEED, IMAGE_SIZE, DEMO_IMAGE_SIZE = 2000, 0, (96, 72), (320, 240)
RECIPE = dict(model="tiny-clip", data="vismin:pairs", epochs=25, batch_size=32, lr=1e-3, seed=0, threads=1,
              tiny_image_size=48, tiny_hidden_size=64, tiny_layers=3)
COMMAND = ("diffbench train --model tiny-clip --data vismin:pairs --epochs 25 --batch-size 32 --lr 1e-3 "
           "--seed 0 --threads 1 --out OUT")
BUILD_COMMAND = "diffbench build vismin --config all --source sample --n 2000 --seed 0 --image-size 96x72"
CATEGORIES = ("object", "attribute", "counting", "relation")


def leakage(bench, pairs) -> dict:
    """Per category: benchmark rows whose caption pair (either order) is also a training pair."""
    train = {frozenset((a, b)) for a, b in zip(pairs["text_0"], pairs["text_1"])}
    names = bench.features["category"].int2str(list(bench["category"]))
    counts = collections.defaultdict(lambda: [0, 0])
    for category, a, b in zip(names, bench["text_0"], bench["text_1"]):
        counts[category][0] += 1
        counts[category][1] += frozenset((a, b)) in train
    return {c: {"rows": n, "caption_pair_in_train": k, "percent": round(100 * k / n, 1)} for c, (n, k) in counts.items()}


def _cells(results: dict) -> dict:
    """Category -> {text, image, group} (percent) from the vismin_group_score metric's results, plus avg."""
    cells = {c: {k: v[f"{k}_score"] for k in ("text", "image", "group")} | {"n": v["num_samples"]}
             for c, v in results["per_category"].items()}
    cells["avg"] = {k: results["category_mean"][f"{k}_score"] for k in ("text", "image", "group")}
    return cells


def comparison_table(results: dict, bench_key: str) -> str:
    """Markdown: per category, text / image / group without and with hard negatives."""
    off, on = _cells(results["no_hard_negatives"][bench_key]), _cells(results["hard_negatives"][bench_key])
    lines = ["| category | n | text: random batches | text: hard negatives | image: random | image: hard neg. "
             "| group: random | group: hard neg. |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for category in (*CATEGORIES, "avg"):
        a, b = off[category], on[category]
        cells = " | ".join(f"{a[k]:.1f} | **{b[k]:.1f}**" if b[k] > a[k] else f"{a[k]:.1f} | {b[k]:.1f}"
                           for k in ("text", "image", "group"))
        lines.append(f"| {category} | {b.get('n', '')} | {cells} |")
    lines.append("| chance | | 25.0 | 25.0 | 25.0 | 25.0 | 16.7 | 16.7 |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install", action="store_true", help="copy the recipe's model into src/diffbench/models/default")
    parser.add_argument("--epochs", type=float, default=RECIPE["epochs"])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="diffbench-train-default-"))
    os.environ["HF_HOME"] = str(work / "hf")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    for var in ("HF_DATASETS_CACHE", "HF_HUB_CACHE"):
        os.environ.pop(var, None)
    from transformers import AutoModel, AutoProcessor

    from diffbench.data.building import build_configs, load_built
    from diffbench.training.evaluation import evaluate_on, format_scores
    from diffbench.training.loop import train
    from diffbench.training.settings import TrainConfig

    # overwrite: the builds live in this script's own HF home (a rerun with --work, the 320x240 rebuild below)
    build_configs("vismin", ["bench", "pairs"], "sample", n=N, seed=SEED, image_size=IMAGE_SIZE, overwrite=True)
    leaks = leakage(load_built("vismin", "bench", "test"), load_built("vismin", "pairs", "train"))
    print("benchmark caption pairs also in the training pairs:", json.dumps(leaks), flush=True)

    results = {"leakage": leaks, "recipe": {**RECIPE, "epochs": args.epochs}, "command": COMMAND,
               "build_command": BUILD_COMMAND}
    for key, hard in (("hard_negatives", True), ("no_hard_negatives", False)):
        config = TrainConfig(**{**RECIPE, "epochs": args.epochs}, hard_negatives=hard, out=str(work / key),
                             eval="vismin:bench", progress=sys.stderr.isatty())
        result = train(config)
        results[key] = {"seconds": round(result.seconds, 1), "steps": result.steps,
                        "final_loss": round(sum(result.losses[-20:]) / len(result.losses[-20:]), 4),
                        "bench_96x72": result.scores}
    build_configs("vismin", ["bench"], "sample", n=N, seed=SEED, image_size=DEMO_IMAGE_SIZE, overwrite=True)
    for key in ("hard_negatives", "no_hard_negatives"):
        model, processor = AutoModel.from_pretrained(work / key), AutoProcessor.from_pretrained(work / key)
        results[key]["bench_320x240"] = evaluate_on(model, processor, "vismin:bench")
        print(f"{key}, bench at 320x240:\n{format_scores(results[key]['bench_320x240'])}", flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_default_model.json").write_text(json.dumps(results, indent=1) + "\n")
    tables = {k: comparison_table(results, k) for k in ("bench_96x72", "bench_320x240")}
    report = (f"Synthetic bench, 2,000 samples, 96x72 images:\n\n{tables['bench_96x72']}\n\n"
              f"Same scenes at 320x240:\n\n{tables['bench_320x240']}\n")
    (RESULTS / "train_default_model.md").write_text(report)
    print(report)
    print(f"training time: hard negatives {results['hard_negatives']['seconds']:.0f} s, "
          f"random batches {results['no_hard_negatives']['seconds']:.0f} s")

    if args.install:
        if DEFAULT_DIR.exists():
            shutil.rmtree(DEFAULT_DIR)
        shutil.copytree(work / "hard_negatives", DEFAULT_DIR,
                        ignore=shutil.ignore_patterns("training_log.json"))
        (DEFAULT_DIR / "training_results.json").write_text(json.dumps(results, indent=1) + "\n")
        print(f"installed into {DEFAULT_DIR}; update its README.md from {RESULTS / 'train_default_model.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
