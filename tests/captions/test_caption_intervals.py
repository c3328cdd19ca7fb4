"""The caption metrics' bootstrap: each resample's corpus metric is pycocoevalcap's on that resample written
out (a sample drawn k times as k images), the intervals are reproducible from the seed, and samples.jsonl
holds pycocoevalcap's per-image values. The references are real Spot-the-Diff annotations; the parity
reference is pycocoevalcap 1.2 itself (its tokenizer, scorers and METEOR JVM)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from diffbench.captions.intervals import CaptionStatistics, resampled_scores
from diffbench.captions.scoring import score
from diffbench.captions.stats import Corpus
from diffbench.report import layout
from diffbench.report.uncertainty import resample_counts

pytestmark = pytest.mark.slow
NAMES = ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]


@pytest.fixture(scope="module")
def spot_pairs(shared_dir):
    """80 Spot-the-Diff val pairs: references as annotated, each 'predicted' by the next pair's first sentence."""
    entries = json.loads((shared_dir / "data" / "spot_the_diff" / "annotations" / "val.json").read_text())[:80]
    references = [[s for s in e["sentences"] if s.strip()] or ["nothing"] for e in entries]
    predictions = [references[(i + 1) % len(entries)][0] for i in range(len(entries))]
    return predictions, references


def coco_tokenized(predictions, references):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    return gts, res


def coco_scores(gts, res, meteor) -> dict:
    """COCOEvalCap's scorers on tokenised dicts: {name: (corpus value, per-image values)}."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, bleu_images = Bleu(4).compute_score(gts, res, verbose=0)
    out = {name: (bleu[k], bleu_images[k]) for k, name in enumerate(NAMES[:4])}
    out["METEOR"] = meteor.compute_score(gts, res)
    out["ROUGE_L"] = Rouge().compute_score(gts, res)
    out["CIDEr"] = Cider().compute_score(gts, res)
    return out


def test_each_resample_is_pycocoevalcap_on_the_resampled_corpus(spot_pairs, coco_meteor):
    predictions, references = spot_pairs
    gts, res = coco_tokenized(predictions, references)
    stats = CaptionStatistics.of(predictions, references)
    counts = np.vstack([resample_counts(len(predictions), resamples=3, seed=7), np.ones((1, len(predictions)), int)])
    ours = resampled_scores(stats, counts)
    assert list(ours) == NAMES
    for r, row in enumerate(counts):
        drawn = [i for i in range(len(predictions)) for _ in range(row[i])]  # sample i drawn k times: k images
        expected = coco_scores({k: gts[i] for k, i in enumerate(drawn)}, {k: res[i] for k, i in enumerate(drawn)},
                               coco_meteor)
        for name in NAMES:
            assert ours[name][r] == pytest.approx(100 * expected[name][0], abs=1e-9), (r, name)
    # a tokenised corpus gives the same without METEOR's JVM
    corpus = Corpus.of([res[i][0] for i in range(len(predictions))], [tuple(gts[i]) for i in range(len(predictions))])
    without = resampled_scores(corpus, counts)
    assert list(without) == [n for n in NAMES if n != "METEOR"]
    for name, values in without.items():
        assert values == pytest.approx(ours[name], abs=1e-9)
    with pytest.raises(ValueError, match=r"counts must be \[resamples, 80\]"):
        resampled_scores(corpus, counts[:, :10])
    assert np.isnan(resampled_scores(corpus, np.zeros((1, 80), int))["CIDEr"][0])


@pytest.fixture(scope="module")
def spot_dataset(spot_pairs):
    import datasets

    predictions, references = spot_pairs
    kinds = ["color" if i % 4 == 0 else "move" if i % 4 == 1 else "add" for i in range(len(predictions))]
    kinds[5] = "single"  # a one-sample group
    dataset = datasets.Dataset.from_dict({"id": [f"p{i}" for i in range(len(predictions))], "captions": references,
                                          "change_types": [[k] for k in kinds]})
    return dataset, {f"p{i}": p for i, p in enumerate(predictions)}


def test_results_carry_reproducible_intervals_around_the_scores(spot_dataset, tmp_path):
    dataset, predictions = spot_dataset
    first = score(predictions, dataset, resamples=300, seed=0)
    again = score(predictions, dataset, resamples=300, seed=0)
    other = score(predictions, dataset, resamples=300, seed=1)
    results = layout.check(first.results)
    assert [k for k in results if k in layout.REQUIRED] == list(layout.REQUIRED)
    assert results["scale"] == "percent" and list(results["scores"]) == NAMES
    assert results["uncertainty"]["resamples"] == 300 and results["uncertainty"]["seed"] == 0
    assert again.results["ci95"] == results["ci95"] and again.results["groups"] == results["groups"]
    assert other.results["ci95"] != results["ci95"] and other.results["scores"] == results["scores"]
    for scores, ci95 in [(results["scores"], results["ci95"])] + [(g["scores"], g["ci95"])
                                                                 for g in results["groups"].values()]:
        for name in NAMES:
            low, high = ci95[name]
            assert low <= scores[name] <= high, (name, scores[name], ci95[name])
    assert all(results["ci95"][n][1] - results["ci95"][n][0] > 0.1 for n in NAMES)  # 80 samples: real spread
    # the one-sample group: its own corpus (CIDEr-D 0 whatever the caption), always the same sample drawn
    single = results["groups"]["single"]
    assert single["samples"] == 1 and single["scores"]["CIDEr"] == 0.0 and single["ci95"]["CIDEr"] == [0.0, 0.0]
    assert json.loads(layout.dumps(results)) == results  # plain JSON: no NaN


def test_samples_jsonl_holds_pycocoevalcap_per_image_values(spot_dataset, spot_pairs, coco_meteor, tmp_path):
    from diffbench.captions.report import write_report

    dataset, predictions = spot_dataset
    scored = score(predictions, dataset, resamples=20)
    written = write_report(tmp_path / "out", scored.results, "spot", samples=scored.samples)
    assert tmp_path / "out" / layout.SAMPLES_FILE in written
    lines = [json.loads(line) for line in (tmp_path / "out" / layout.SAMPLES_FILE).read_text().splitlines()]
    assert [line["id"] for line in lines] == dataset["id"]
    assert lines[0]["change_types"] == ["color"] and lines[0]["prediction"] == predictions["p0"]
    assert lines[0]["references"] == dataset["captions"][0]
    gts, res = coco_tokenized(*spot_pairs)
    expected = coco_scores(gts, res, coco_meteor)
    for name in ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr"):
        per_image = [100 * float(v) for v in expected[name][1]]
        assert [line[name] for line in lines] == pytest.approx(per_image, abs=1e-9), name


def test_combinations_held_by_few_samples_are_pooled_so_the_total_still_varies(spot_pairs):
    """Multi-label change types where (nearly) every sample has its own combination, as on OmniDiff: strata
    of one sample would redraw the same sample every time and give the total a zero-width interval."""
    import datasets

    predictions, references = spot_pairs
    types = ["color", "move", "add", "drop", "texture", "size", "shape", "light"]
    combinations = [*itertools.combinations(types, 2), *itertools.combinations(types, 3)]
    change_types = [list(combinations[i]) for i in range(len(predictions))]  # every sample its own combination
    dataset = datasets.Dataset.from_dict({"id": [f"p{i}" for i in range(len(predictions))], "captions": references,
                                          "change_types": change_types})
    results = score({f"p{i}": p for i, p in enumerate(predictions)}, dataset, resamples=200, seed=0).results
    assert "pooled" in results["uncertainty"]["strata"]
    assert all(results["ci95"][n][1] - results["ci95"][n][0] > 0.1 for n in NAMES), results["ci95"]


def test_meteor_sums_are_scored_as_its_jvm_scores_them(spot_pairs):
    """score_of_stats (Meteor's computeMetrics in numpy) against the METEOR JVM's own EVAL answers, on resampled
    sums of real statistics and on single segments (perfect ones, whose chunk is dropped, included)."""
    from diffbench.captions.meteor import get_meteor, score_of_stats

    predictions, references = spot_pairs
    stats = CaptionStatistics.of(predictions, references, metrics=["meteor"])
    counts = resample_counts(stats.n, 200, seed=3).astype(np.float64)
    perfect = CaptionStatistics.of([references[0][0]], [references[0]], metrics=["meteor"]).meteor
    totals = np.vstack([counts @ stats.meteor, stats.meteor, perfect])
    jvm = np.asarray(get_meteor().score_summed_many(totals))  # the JVMs that computed the statistics
    assert np.max(np.abs(score_of_stats(totals) - jvm)) < 1e-14
    assert len(set(np.round(jvm, 6))) > 100  # varied sums, not one value
