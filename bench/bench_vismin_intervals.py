"""What the 95% bootstrap intervals cost ``diffbench score vismin`` on a full-size benchmark (2,084 samples).

    .venv/bin/python bench/bench_vismin_intervals.py              # 2,084 samples, 5 runs each
    .venv/bin/python bench/bench_vismin_intervals.py --runs 3 --resamples 1000 2000

Builds the synthetic VisMin sample at the benchmark's size (small images: their size does not enter scoring)
into a private HF_HOME, writes a submission of random similarities, then times, back to back:

- ``score()`` in process: reading, checking, joining, the official rule, the intervals, for ``--resamples 1``
  (the scoring alone, to within one resample) and for each ``--resamples`` value;
- ``diffbench score vismin`` as a user runs it (a fresh interpreter, the report written: results.json,
  results.md, samples.jsonl and the figure), for the same values.

The issue's target: the intervals add at most 10% to ``score vismin`` on the full test set.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import median_times  # bench/_timing.py: this folder is on sys.path when a script runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2084, help="samples (default: the benchmark's 2,084)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement; the median is shown")
    parser.add_argument("--resamples", type=int, nargs="+", default=[1000], help="resamples to time (default 1000)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-vismin-intervals-"))
    os.environ.update(HF_HOME=str(work / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    import numpy as np  # after HF_HOME is set: datasets reads it once, at import
    import pandas as pd

    from diffbench.data import building
    from diffbench.vismin.scoring import score

    building.build_configs("vismin", ["bench"], "sample", n=args.n, seed=0, image_size=(32, 24), overwrite=True)
    bench = building.load_built("vismin", "bench", "test")
    rng = np.random.default_rng(0)
    submission = work / "scores.csv"
    pd.DataFrame({"id": bench["id"], **{c: rng.random(len(bench)).round(6) for c in
                                        ("T0_I0", "T0_I1", "T1_I0", "T1_I1")}}).to_csv(submission, index=False)

    def cli(resamples: int):
        done = subprocess.run([sys.executable, "-m", "diffbench", "score", "vismin", str(submission), "--out",
                               str(work / f"out-{resamples}"), "--resamples", str(resamples), "--overwrite"],
                              capture_output=True, text=True, env=os.environ)
        if done.returncode:
            raise SystemExit(done.stderr)

    print(f"VisMin, {len(bench):,} samples, median of {args.runs} runs (machine: {os.cpu_count()} cores)")
    print("| what | resamples | seconds | vs 1 resample |")
    print("|---|---:|---:|---:|")
    for label, fn in (("score() in process", lambda r: score(submission, bench, resamples=r)),
                      ("diffbench score vismin (fresh process, report written)", cli)):
        seconds = median_times(fn, [1, *args.resamples], args.runs)
        print(f"| {label} | 1 | {seconds[1]:.3f} | 1.00x |")
        for resamples in args.resamples:
            print(f"| {label} | {resamples:,} | {seconds[resamples]:.3f} | {seconds[resamples] / seconds[1]:.2f}x |")


if __name__ == "__main__":
    main()
