"""``diffbench demo``: the main job on the embedded samples, offline.

1. builds the synthetic VisMin sample into the datasets cache (every configuration);
2. installs the metrics into evaluate's module cache, then, in a fresh interpreter, from a neutral
   directory, with ``HF_HUB_OFFLINE=1``, loads ``load_dataset("vismin")`` and
   ``evaluate.load("vismin_group_score")`` / ``evaluate.load("diff_caption_score")`` by bare name,
   the way a user's script would, and prints a summary per category;
3. runs the embedded default model (a tiny CLIP trained on synthetic pairs) on the VisMin sample with
   ``diffbench eval`` and prints the paper-style table beside a few published rows;
4. builds the synthetic CLEVR-Change sample and scores human agreement on it (one reference held out as
   the prediction, the others as references) with the report ``diffbench score captions`` gives
   (:mod:`diffbench.captions.scoring`: the official CLEVR-Change parts, the total on top).

Its output is its own lines: datasets' and transformers' progress bars are silenced while it runs.

The demo never replaces a build of yours: when your datasets cache holds a VisMin or CLEVR-Change
build from another source (a real release, another seed or size), the demo builds its samples into
a datasets cache of its own (:func:`demo_cache`) and says so; your scripts keep loading your build.
It does not refuse instead, because the users with a real build are the ones it should still run for.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The samples' default size, the one `diffbench build NAME --source sample` builds: a sample the demo built is
# then never "another source" to that command (CLEVR-Change at 160x120 made it exit 2 after the demo).
from diffbench.data.samples import DEFAULT_IMAGE_SIZE

# Runs in a fresh interpreter: proves the bare name resolves without this process's state.
_LOAD_SCRIPT = """
import collections, json
import evaluate
from datasets import load_dataset
metrics = [evaluate.load(name).name for name in ("vismin_group_score", "diff_caption_score")]
bench = load_dataset("vismin", split="test")
pairs = load_dataset("vismin", "pairs", split="train")
names = bench.features["category"].names
counts = collections.Counter(names[c] for c in bench["category"])
pair_counts = collections.Counter(names[c] for c in pairs["category"])
first = {name: next(r for r in bench if names[r["category"]] == name) for name in names}
print(json.dumps({
    "rows": len(bench), "pairs": len(pairs), "counts": counts, "pair_counts": pair_counts,
    "examples": {name: [row["text_0"], row["text_1"]] for name, row in first.items()},
    "image_size": list(bench[0]["image_0"].size), "metrics": metrics,
}))
"""


def demo_cache() -> Path:
    """The demo's own datasets cache, beside the user's (used only when the user's holds other builds)."""
    from diffbench.data.building import cache_root

    return cache_root().parent / "diffbench-demo-datasets"


def conflicting_builds(n: int | None, seed: int) -> list[str]:
    """Why building the demo's samples would replace a user's builds (one line each; empty when it would not)."""
    from diffbench.data import building, provenance, samples

    plans = [("vismin", config, samples.sample_provenance("vismin", n=n, seed=seed, image_size=DEFAULT_IMAGE_SIZE))
             for config in ("bench", "train", "pairs")]
    clevr = building.default_config("clevr_change")
    plans.append(("clevr_change", clevr, samples.sample_provenance("clevr_change", seed=seed, image_size=DEFAULT_IMAGE_SIZE)))
    conflicts = []
    for name, config, plan in plans:
        try:
            building.check_replaceable(name, config, {**plan, "dataset": name, "config": config})
        except building.SourceConflictError as err:
            conflicts.append(f"{name}/{config} is already built from {provenance.describe(err.existing)}")
    return conflicts


def use_datasets_cache(folder: Path) -> None:
    """Point this process, and the interpreters it starts, at another datasets cache."""
    import datasets.config

    folder.mkdir(parents=True, exist_ok=True)
    os.environ["HF_DATASETS_CACHE"] = str(folder)
    datasets.config.HF_DATASETS_CACHE = folder


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build, load and score the embedded samples, offline")
    parser.add_argument("--n", type=int, default=None, help="samples in the synthetic VisMin release")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs") / "demo-vismin-diffbench-tiny-clip",
                        help="where the demo's evaluation run is written")
    parser.set_defaults(func=run)


def load_in_fresh_interpreter() -> dict:
    """Run :data:`_LOAD_SCRIPT` in a new Python from an empty directory; its JSON summary."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    with tempfile.TemporaryDirectory(prefix="diffbench-demo-") as neutral:
        done = subprocess.run(
            [sys.executable, "-c", _LOAD_SCRIPT], cwd=neutral, env=env, capture_output=True, text=True, timeout=300
        )
    if done.returncode != 0:
        raise RuntimeError(f"loading by bare name failed in a fresh interpreter:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def human_agreement(name: str = "clevr_change", split: str = "test") -> dict:
    """Human agreement scored as ``diffbench score captions`` scores a model: each pair's first reference is
    the prediction, its other references the references, through :func:`diffbench.captions.scoring.score_predictions`
    (on CLEVR-Change: the official parts, ``semantic_change``, the five types, ``distractor``, and the total)."""
    from diffbench.data import building, provenance
    from diffbench.captions.scoring import score_predictions

    built = building.load_built(name, None, split)
    # In memory: a map or filter written beside the build would make it the newest (see building).
    rows = built.filter(lambda r: len(r["captions"]) > 1, keep_in_memory=True)
    if not len(rows):
        raise ValueError(f"{name}/{split} has no pair with two or more references to compare")
    predictions = dict(zip(rows["id"], (captions[0] for captions in rows["captions"])))
    held_out = rows.map(lambda r: {"captions": r["captions"][1:]}, keep_in_memory=True)
    results = score_predictions(predictions, held_out)
    results["provenance"] = provenance.of_dataset(built)  # the in-memory copy has no build folder of its own
    return results


@contextlib.contextmanager
def quiet_progress_bars():
    """Silence datasets' ("Generating test split") and transformers' ("Loading weights") progress bars, so the
    demo's output is its own lines; restored after."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets_on = datasets.is_progress_bar_enabled()
    transformers_on = transformers_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_on:
            datasets.enable_progress_bars()
        if transformers_on:
            transformers_logging.enable_progress_bar()


SHOWN_ROWS = ("(this run)", "Random Chance", "CLIP (ViT-B/32) (zero-shot", "VisMin-CLIP")


def evaluate_default_model(out: Path) -> Path:
    """``diffbench eval vismin`` with the embedded default model into ``out`` (replacing a previous demo run)."""
    from diffbench import tasks
    from diffbench.harness.options import RunOptions
    from diffbench.models.embedded import default_model_path

    tasks.run(RunOptions(task="vismin", model=str(default_model_path()), out=out, overwrite=True, progress=False))
    return out


def run(args) -> int:
    with quiet_progress_bars():
        return _run(args)


def _run(args) -> int:
    from diffbench.data import provenance
    from diffbench.data.building import build_configs
    from diffbench.captions.report import format_table
    from diffbench.data.metric_install import install_metrics

    conflicts = conflicting_builds(args.n, args.seed)
    if conflicts:
        for line in conflicts:
            print(f"Kept: {line}.")
        print(f"The demo leaves your builds as they are and builds its samples into its own datasets cache,\n"
              f"{demo_cache()} (HF_DATASETS_CACHE for this demo only).\n")
        use_datasets_cache(demo_cache())
    print("1. Building the synthetic VisMin sample (bench, train, pairs) into the datasets cache")
    for summary in build_configs("vismin", ["bench", "train", "pairs"], "sample", n=args.n, seed=args.seed,
                                 image_size=DEFAULT_IMAGE_SIZE):
        print("   " + summary.format().replace("\n", "\n   "))
    installed = install_metrics()
    print(f"\n2. Installed {len(installed)} metrics into evaluate's module cache; in a fresh interpreter, from an")
    print('   empty directory, HF_HUB_OFFLINE=1: load_dataset("vismin"), evaluate.load(<metric>) by bare name')
    loaded = load_in_fresh_interpreter()
    width, height = loaded["image_size"]
    print(f"   metrics: {', '.join(loaded['metrics'])}")
    print(f"   bench: {loaded['rows']} samples ({width}x{height} images); pairs: {loaded['pairs']} training pairs\n")
    print(f"   {'category':<10} {'bench':>6} {'pairs':>6}  example (text_0 | text_1)")
    for category, count in loaded["counts"].items():
        text_0, text_1 = loaded["examples"][category]
        print(f"   {category:<10} {count:>6} {loaded['pair_counts'].get(category, 0):>6}  {text_0} | {text_1}")

    print("\n3. diffbench eval vismin: the embedded default model (tiny CLIP) on the VisMin sample bench")
    out = evaluate_default_model(args.out)
    for line in (out / "results.md").read_text(encoding="utf-8").splitlines():
        if line.startswith(("| Model", "|---")) or any(key in line for key in SHOWN_ROWS):
            print("   " + line)
    if provenance.is_synthetic(json.loads((out / "results.json").read_text(encoding="utf-8"))["provenance"]):
        print(f"   ({provenance.SYNTHETIC_NOTE}: the run scored the synthetic sample, the published rows the real bench)")
    print(f"   (every published row, the submission CSV and a plot: {out})")

    print("\n4. Building the synthetic CLEVR-Change sample; human agreement on its test split (first reference")
    print("   as the prediction, the others as references), scored as `diffbench score captions` scores a model:")
    print("   the official CLEVR-Change parts (semantic_change, the five types, distractor), the total on top")
    from diffbench.data.building import default_config

    for summary in build_configs("clevr_change", [default_config("clevr_change")], "sample", seed=args.seed,
                                 image_size=DEFAULT_IMAGE_SIZE):
        print("   " + summary.format().splitlines()[0])
    print("   " + format_table(human_agreement("clevr_change", "test")).replace("\n", "\n   "))
    return 0
