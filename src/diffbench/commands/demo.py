"""``diffbench demo``: the main job on the embedded sample, offline.

Builds the synthetic VisMin sample into the datasets cache (every configuration), then loads it
back the way a user's script would: ``load_dataset("vismin")`` in a fresh interpreter, from a
neutral directory, with ``HF_HUB_OFFLINE=1``; and prints a summary per category.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

# Runs in a fresh interpreter: proves the bare name resolves without this process's state.
_LOAD_SCRIPT = """
import collections, json
from datasets import load_dataset
bench = load_dataset("vismin", split="test")
pairs = load_dataset("vismin", "pairs", split="train")
names = bench.features["category"].names
counts = collections.Counter(names[c] for c in bench["category"])
pair_counts = collections.Counter(names[c] for c in pairs["category"])
first = {name: next(r for r in bench if names[r["category"]] == name) for name in names}
print(json.dumps({
    "rows": len(bench), "pairs": len(pairs), "counts": counts, "pair_counts": pair_counts,
    "examples": {name: [row["text_0"], row["text_1"]] for name, row in first.items()},
    "image_size": list(bench[0]["image_0"].size),
}))
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build and load the embedded sample, offline")
    parser.add_argument("--n", type=int, default=None, help="samples in the synthetic VisMin release")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def load_in_fresh_interpreter() -> dict:
    """Run :data:`_LOAD_SCRIPT` in a new Python from an empty directory; its JSON summary."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    with tempfile.TemporaryDirectory(prefix="diffbench-demo-") as neutral:
        done = subprocess.run(
            [sys.executable, "-c", _LOAD_SCRIPT], cwd=neutral, env=env, capture_output=True, text=True, timeout=300
        )
    if done.returncode != 0:
        raise RuntimeError(f"load_dataset('vismin') failed in a fresh interpreter:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args) -> int:
    from diffbench.commands.build import build_configs

    print("1. Building the synthetic VisMin sample (bench, train, pairs) into the datasets cache")
    for summary in build_configs("vismin", ["bench", "train", "pairs"], "sample", n=args.n, seed=args.seed,
                                 image_size=(320, 240)):
        print("   " + summary.format().replace("\n", "\n   "))
    print('\n2. load_dataset("vismin") in a fresh interpreter, from an empty directory, HF_HUB_OFFLINE=1')
    loaded = load_in_fresh_interpreter()
    width, height = loaded["image_size"]
    print(f"   bench: {loaded['rows']} samples ({width}x{height} images); pairs: {loaded['pairs']} training pairs\n")
    print(f"   {'category':<10} {'bench':>6} {'pairs':>6}  example (text_0 | text_1)")
    for category, count in loaded["counts"].items():
        text_0, text_1 = loaded["examples"][category]
        print(f"   {category:<10} {count:>6} {loaded['pair_counts'].get(category, 0):>6}  {text_0} | {text_1}")
    return 0
