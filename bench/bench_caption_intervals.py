"""What the 95% bootstrap intervals cost ``diffbench score captions`` on Spot-the-Diff's test size (1,270 pairs).

    .venv/bin/python bench/bench_caption_intervals.py                 # 3 runs each, 1,000 resamples
    .venv/bin/python bench/bench_caption_intervals.py --runs 1 --resamples 1000 2000

Times, back to back, ``--resamples 1`` (the scoring alone, to within one resample) against each
``--resamples`` value:

- ``score()`` in process on the real Spot-the-Diff test annotations (``../shared/data``: 1,270 pairs, their
  sentences the references, each pair 'predicted' by the next pair's first sentence), the JVMs warm: the
  scoring and the intervals (every corpus metric recomputed on every resample), no file written;
- ``diffbench score captions`` as a user runs it (a fresh interpreter: the JVMs start, the report is
  written: results.json, results.md, samples.jsonl and the figure) on the synthetic Spot-the-Diff sample
  built at the size whose test split holds 1,270 pairs (small images: their size does not enter scoring).

The issue's target: the intervals add at most 10% to ``score captions`` on the full test set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import median_times  # bench/_timing.py: this folder is on sys.path when a script runs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "spot_the_diff" / "annotations" / "test.json"
TEST_PAIRS = 1270
TEST_SHARE = 0.2  # diffbench.data.synth.captions.SPLIT_SHARES


def real_test_set(path: Path):
    """The Spot-the-Diff test pairs as a dataset (id, captions) and rotated predictions."""
    import datasets

    by_pair: dict[str, list[str]] = {}
    for entry in json.loads(path.read_text()):
        by_pair.setdefault(str(entry["img_id"]), []).extend(s for s in entry["sentences"] if s.strip())
    ids = [i for i, sentences in by_pair.items() if sentences]
    captions = [by_pair[i] for i in ids]
    dataset = datasets.Dataset.from_dict({"id": ids, "captions": captions})
    return dataset, {i: captions[(n + 1) % len(ids)][0] for n, i in enumerate(ids)}


def table(label: str, fn, resamples: list[int], runs: int) -> None:
    seconds = median_times(fn, [1, *resamples], runs)
    base = seconds[1]
    print(f"| {label} | 1 | {base:.2f} | 1.00x |")
    for r in resamples:
        print(f"| {label} | {r:,} | {seconds[r]:.2f} | {seconds[r] / base:.2f}x (+{100 * (seconds[r] / base - 1):.0f}%) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement; the median is shown")
    parser.add_argument("--resamples", type=int, nargs="+", default=[1000], help="resamples to time (default 1000)")
    parser.add_argument("--annotations", type=Path, default=SHARED, help="Spot-the-Diff test.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-caption-intervals-"))
    os.environ.update(HF_HOME=str(work / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    from diffbench.captions.scoring import score  # after HF_HOME is set: datasets reads it once, at import
    from diffbench.data import building

    print(f"Spot-the-Diff test size, median of {args.runs} runs (machine: {os.cpu_count()} cores)")
    print("| what | resamples | seconds | vs 1 resample |")
    print("|---|---:|---:|---:|")
    if args.annotations.is_file():
        dataset, predictions = real_test_set(args.annotations)
        score(predictions, dataset, resamples=1)  # the JVMs started and warm, as in a process that keeps scoring
        table(f"score() in process, real test annotations ({len(dataset):,} pairs), JVMs warm",
              lambda r: score(predictions, dataset, resamples=r), args.resamples, args.runs)
    n = round(TEST_PAIRS / TEST_SHARE)
    building.build_configs("spot_the_diff", ["default"], "sample", n=n, seed=0, image_size=(32, 24), overwrite=True)
    test = building.load_built("spot_the_diff", None, "test")
    rows = test.select_columns(["id", "captions"]).to_list()
    submission = work / "predictions.json"
    submission.write_text(json.dumps({r["id"]: rows[(k + 1) % len(rows)]["captions"][0] for k, r in enumerate(rows)}))

    def cli(resamples: int):
        done = subprocess.run([sys.executable, "-m", "diffbench", "score", "captions", str(submission), "--dataset",
                               "spot_the_diff", "--out", str(work / f"out-{resamples}"), "--resamples", str(resamples),
                               "--overwrite"], capture_output=True, text=True, env=os.environ)
        if done.returncode:
            raise SystemExit(done.stderr)

    table(f"diffbench score captions, synthetic build ({len(test):,} test pairs), fresh process", cli,
          args.resamples, args.runs)


if __name__ == "__main__":
    main()
