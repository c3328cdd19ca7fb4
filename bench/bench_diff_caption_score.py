"""Benchmark: diff_caption_score against pycocoevalcap 1.2 in one process, on Spot-the-Diff train.

Corpus: the 9,524 entries of Spot-the-Diff ``train.json`` (17,676 sentences). Each entry's sentences are
its references; its prediction is the first sentence of the next entry (a plausible but wrong
difference caption, so METEOR aligns real text). Groups for the breakdown: 12 labels, one a sample
round-robin, and every third sample a second label (samples carrying several change types).

Prints, for the same process: pycocoevalcap's full pipeline (PTBTokenizer, Bleu(4), Meteor, Rouge,
Cider, as COCOEvalCap runs them), our first call (cold: JVM start included), our second call on the
same captions (warm), a warm call on new captions (caches miss: tokenizer JVM and METEOR scoring run
again), the 12-group breakdown against one overall call, and the largest difference in any score.

    python bench/bench_diff_caption_score.py [--annotations PATH] [--order ours-first|coco-first]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_ANNOTATIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "spot_the_diff" / "annotations" / "train.json"
NAMES = ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]


def load_corpus(path: Path):
    entries = json.loads(path.read_text())
    n = len(entries)
    references = [list(e["sentences"]) for e in entries]
    predictions = [entries[(i + 1) % n]["sentences"][0] for i in range(n)]
    groups = [[f"type_{i % 12:02d}"] + ([f"type_{(i // 3) % 12:02d}"] if i % 3 == 0 else []) for i in range(n)]
    return predictions, references, groups


def run_pycocoevalcap(predictions, references) -> tuple[dict, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    started = time.perf_counter()
    gts = {i: [{"caption": r} for r in refs] for i, refs in enumerate(references)}
    res = {i: [{"caption": p}] for i, p in enumerate(predictions)}
    tokenizer = PTBTokenizer()
    gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
    out = {}
    for scorer, names in [(Bleu(4), NAMES[:4]), (Meteor(), ["METEOR"]), (Rouge(), ["ROUGE_L"]), (Cider(), ["CIDEr"])]:
        score, _ = scorer.compute_score(gts, res, verbose=0) if isinstance(scorer, Bleu) else scorer.compute_score(gts, res)
        out.update(zip(names, score if isinstance(score, list) else [score]))
    return out, time.perf_counter() - started


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_ANNOTATIONS)
    parser.add_argument("--order", choices=["ours-first", "coco-first"], default="ours-first")
    args = parser.parse_args()

    from diffbench import caption_scoring
    from diffbench.caption_meteor import get_meteor
    from diffbench.caption_tokenizer import get_tokenizer

    predictions, references, groups = load_corpus(args.annotations)
    print(f"corpus: {len(predictions):,} pairs, {sum(map(len, references)):,} references ({args.annotations.name})")
    if args.order == "coco-first":
        coco, t_coco = run_pycocoevalcap(predictions, references)
        ours, t_first = timed(caption_scoring.score_captions, predictions, references)
    else:
        ours, t_first = timed(caption_scoring.score_captions, predictions, references)
        coco, t_coco = run_pycocoevalcap(predictions, references)
    _, t_second = timed(caption_scoring.score_captions, predictions, references)
    grouped, t_grouped = timed(caption_scoring.score_captions, predictions, references, groups=groups)
    _, t_overall = timed(caption_scoring.score_captions, predictions, references)
    # Warm JVM, cold caches: new captions (the predictions shifted once more, a word appended).
    fresh = [f"{p} now" for p in predictions[1:] + predictions[:1]]
    _, t_fresh = timed(caption_scoring.score_captions, fresh, references)
    get_tokenizer()._cache.clear()
    get_meteor().clear_cache()
    caption_scoring._SAMPLES.samples.clear()
    _, t_nocache = timed(caption_scoring.score_captions, predictions, references)

    worst = max(abs(coco[k] - ours[k]) for k in NAMES)
    worst_group = max(abs(grouped[k] - ours[k]) for k in NAMES)
    print(f"pycocoevalcap full pipeline        {t_coco:8.2f} s")
    print(f"ours, first call (cold JVM)        {t_first:8.2f} s   ratio {t_first / t_coco:.3f}   (target <= 1.0)")
    print(f"ours, second call (same captions)  {t_second:8.2f} s   ratio {t_second / t_coco:.3f}   (target <= 0.25)")
    print(f"ours, warm JVM, new captions       {t_fresh:8.2f} s   ratio {t_fresh / t_coco:.3f}")
    print(f"ours, warm JVM, caches cleared     {t_nocache:8.2f} s   ratio {t_nocache / t_coco:.3f}")
    print(f"12-group breakdown                 {t_grouped:8.2f} s   vs one overall call {t_overall:.2f} s: "
          f"{t_grouped / t_overall:.2f} x   (target <= 1.3)")
    print(f"largest |ours - pycocoevalcap| over {', '.join(NAMES)}: {worst:.3g}; overall inside the breakdown call: {worst_group:.3g}")
    for name in NAMES:
        print(f"  {name:8s} pycocoevalcap {coco[name]:.12f}   ours {ours[name]:.12f}")


if __name__ == "__main__":
    main()
