"""Throughput of the ``vismin_group_score`` metric against a plain per-sample loop of the official rules.

    .venv/bin/python bench/bench_vismin_group_score.py               # 1,000,000 samples, both modes
    .venv/bin/python bench/bench_vismin_group_score.py --n 100000

For N samples with categories it times, in one run:

- ``scores``: ``metric.compute(T0_I0=..., ..., categories=...)`` on numpy arrays and on Python lists,
  against the official contrastive loop (``vismin-bench/metric.py``: a per-sample ``>`` test and
  per-category counters), and checks that both give the same rounded cells;
- ``answers``: ``metric.compute(Text_Q0=..., ..., categories=...)`` with the lenient parser, against a
  per-sample loop calling the official ``is_match_with_label`` rules on each of the four answers;
- ``evaluate add_batch``: the same scores streamed through evaluate's Arrow cache (``--stream-n``
  samples), the path a distributed or batch-by-batch caller takes.

Scores are drawn from a few values so that ties (wrong by the official rules) occur.

Figures on the development machine (2 cores, shared with other jobs; Python 3.11; 2026-11-23),
N = 1,000,000 (x = speed-up over the official loop in the same run):

    similarity scores     official loop        0.576 s    1,737,345 rows/s
                          compute, numpy       0.136 s    7,349,815 rows/s    4.2x
                          compute, lists       0.315 s    3,178,835 rows/s    1.8x
    answers (lenient)     official loop       49.199 s       20,326 rows/s
                          compute              1.408 s      709,980 rows/s   34.9x
    evaluate add_batch + compute, 100,000 samples: 4.106 s (24,353 rows/s): the Arrow cache, which
    compute() skips when nothing was streamed in.

The scores loop is already fast, since the rule is four comparisons; most of the metric's time goes to
reading a million category strings. Answers gain most: each distinct answer is parsed once.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import evaluate

METRIC_DIR = Path(__file__).resolve().parent.parent / "metrics" / "vismin_group_score"
CATEGORIES = ["object", "attribute", "relation", "counting"]
FIELDS = ["T0_I0", "T0_I1", "T1_I0", "T1_I1"]
ANSWERS = ["Text_Q0", "Text_Q1", "Image_Q0", "Image_Q1"]
EXPECTED = ["A", "B", "First", "Second"]
ANSWER_POOL = ["A", "B", "First", "Second", "The answer is (A).", "second", "(B) the other one", "I am not sure"]


def official_scores_loop(columns, categories):
    """vismin-bench/metric.py, compute_contrastive_accuracy, on the post-2025 relations."""
    counts = defaultdict(lambda: {"text": 0, "image": 0, "group": 0, "count": 0})
    for t0i0, t0i1, t1i0, t1i1, category in zip(*columns, categories):
        text = t0i0 > t1i0 and t1i1 > t0i1
        image = t0i0 > t0i1 and t1i1 > t1i0
        c = counts[category]
        c["text"] += text
        c["image"] += image
        c["group"] += text and image
        c["count"] += 1
    return {k: {m: round(v[m] * 100 / v["count"], 2) for m in ("text", "image", "group")} for k, v in counts.items()}


def official_answers_loop(columns, categories, answer_matches):
    counts = defaultdict(lambda: {"text": 0, "image": 0, "group": 0, "count": 0})
    for tq0, tq1, iq0, iq1, category in zip(*columns, categories):
        text = answer_matches(tq0, "A") and answer_matches(tq1, "B")
        image = answer_matches(iq0, "First") and answer_matches(iq1, "Second")
        c = counts[category]
        c["text"] += text
        c["image"] += image
        c["group"] += text and image
        c["count"] += 1
    return {k: {m: round(v[m] * 100 / v["count"], 2) for m in ("text", "image", "group")} for k, v in counts.items()}


def rounded(results):
    return {c: {m: round(v[f"{m}_score"], 2) for m in ("text", "image", "group")} for c, v in results["per_category"].items()}


def timed(fn, repeat=1):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def row(label, n, seconds, baseline=None):
    ratio = f"{baseline / seconds:8.1f}x" if baseline else " " * 9
    print(f"  {label:<34} {seconds:8.3f} s  {n / seconds:>13,.0f} rows/s  {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="samples (default 1,000,000)")
    parser.add_argument("--stream-n", type=int, default=100_000, help="samples for the evaluate add_batch path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = args.n
    rng = np.random.default_rng(args.seed)
    metric = evaluate.load(str(METRIC_DIR))
    module = __import__(type(metric).__module__, fromlist=["answer_matches"])
    categories = [CATEGORIES[i] for i in rng.integers(0, 4, n)]
    arrays = {f: rng.integers(0, 8, n) / 7 for f in FIELDS}  # 8 levels: ties happen
    lists = {f: a.tolist() for f, a in arrays.items()}

    print(f"vismin_group_score, N = {n:,} samples with categories (rows/s; x = speed-up over the official loop)")
    print("similarity scores:")
    loop_s, loop_cells = timed(lambda: official_scores_loop([lists[f] for f in FIELDS], categories))
    numpy_s, numpy_res = timed(lambda: metric.compute(**arrays, categories=categories), repeat=3)
    lists_s, lists_res = timed(lambda: metric.compute(**lists, categories=categories), repeat=3)
    row("official per-sample loop", n, loop_s)
    row("metric.compute, numpy arrays", n, numpy_s, loop_s)
    row("metric.compute, Python lists", n, lists_s, loop_s)
    assert rounded(numpy_res) == loop_cells == rounded(lists_res), "the metric disagrees with the official loop"
    print("  identical cells (2 decimals) to the official loop: yes")

    print("chat answers (lenient parser):")
    answers = {f: [ANSWER_POOL[i] for i in rng.integers(0, len(ANSWER_POOL), n)] for f in ANSWERS}
    loop_s, loop_cells = timed(lambda: official_answers_loop([answers[f] for f in ANSWERS], categories, module.answer_matches))
    ans_s, ans_res = timed(lambda: metric.compute(**answers, categories=categories))
    row("official per-sample loop", n, loop_s)
    row("metric.compute", n, ans_s, loop_s)
    assert rounded(ans_res) == loop_cells, "the metric disagrees with the official loop"
    print("  identical cells (2 decimals) to the official loop: yes")

    m = min(args.stream_n, n)
    print(f"evaluate's Arrow cache (add_batch in 10 batches, then compute), {m:,} samples:")

    def stream():
        for start in range(0, m, m // 10):
            stop = min(start + m // 10, m)
            metric.add_batch(**{f: a[start:stop] for f, a in arrays.items()}, categories=categories[start:stop])
        return metric.compute()

    stream_s, stream_res = timed(stream)
    row("add_batch + compute", m, stream_s)
    direct = metric.compute(**{f: a[:m] for f, a in arrays.items()}, categories=categories[:m])
    assert stream_res == direct, "streaming and one call disagree"
    print("  same result as one compute() call: yes")


if __name__ == "__main__":
    main()
