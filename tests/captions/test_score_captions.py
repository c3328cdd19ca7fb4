"""``diffbench score captions``: predictions keyed by id, scored against a built dataset, per change type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffbench import cli
from diffbench.data import building
from diffbench.captions.inputs import read_predictions
from diffbench.captions.report import format_table
from diffbench.captions.scoring import score_predictions
from diffbench.captions.metrics import score_captions
from diffbench.report import layout

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def tiny_dataset():
    import datasets

    return datasets.Dataset.from_dict(
        {
            "id": ["p0", "p1", "p2", "p3"],
            "captions": [
                ["the red car is gone", "the red car has been removed"],
                ["a man appeared near the door"],
                ["the bike moved to the left", "the bicycle has moved"],
                ["nothing has changed"],
            ],
            "change_types": [["disappearance"], ["addition"], ["orientation", "disappearance"], []],
        }
    )


PREDICTIONS = {"p0": "the red car is no longer there", "p1": "a man is by the door", "p2": "the bike moved", "p3": "no change"}


def test_read_predictions_layouts(tmp_path):
    as_dict = tmp_path / "a.json"
    as_dict.write_text(json.dumps(PREDICTIONS))
    as_list = tmp_path / "b.json"
    as_list.write_text(json.dumps([{"id": k, "caption": v} for k, v in PREDICTIONS.items()]))
    assert read_predictions(as_dict) == read_predictions(as_list) == PREDICTIONS
    dup = tmp_path / "c.json"
    dup.write_text(json.dumps([{"id": "p0", "caption": "x"}, {"id": "p0", "caption": "y"}]))
    with pytest.raises(ValueError, match="id 'p0' appears twice"):
        read_predictions(dup)
    harness = tmp_path / "d.json"  # what the eval harness writes (the COCO results layout)
    harness.write_text(json.dumps([{"image_id": k, "caption": v} for k, v in PREDICTIONS.items()]))
    assert read_predictions(harness) == PREDICTIONS


def test_score_predictions_checks_ids(tiny_dataset):
    with pytest.raises(ValueError, match="1 of 4 dataset ids have no prediction, e.g. \\['p3'\\]"):
        score_predictions({k: v for k, v in PREDICTIONS.items() if k != "p3"}, tiny_dataset)
    with pytest.raises(ValueError, match="ids not in the dataset, e.g. \\['zz'\\]"):
        score_predictions({**PREDICTIONS, "zz": "extra"}, tiny_dataset)
    with pytest.raises(ValueError, match="id 'p1'.*prediction must be a string"):
        score_predictions({**PREDICTIONS, "p1": 5}, tiny_dataset)


@pytest.mark.slow
def test_score_predictions_per_change_type(tiny_dataset):
    results = score_predictions(PREDICTIONS, tiny_dataset, resamples=50)
    ids = tiny_dataset["id"]
    expected = score_captions(
        [PREDICTIONS[i] for i in ids], list(tiny_dataset["captions"]), groups=list(tiny_dataset["change_types"])
    )
    assert results["scale"] == "percent" and results["protocol"]["evaluation"] == "per_change_type"
    assert results["scores"] == pytest.approx({k: 100 * v for k, v in expected.items() if k not in SKIP}, rel=1e-12)
    for name, group in results["groups"].items():
        alone = expected["groups"][name]
        assert group["samples"] == alone["num_samples"]
        assert group["scores"] == pytest.approx({k: 100 * v for k, v in alone.items() if k not in SKIP}, rel=1e-12)
    assert results["provenance"]["synthetic"] is None  # an in-memory dataset: no build record
    assert results["groups"]["disappearance"]["samples"] == 2
    assert results["samples"] == 4  # p3 has no change type: overall only
    table = format_table(results)
    assert table.splitlines()[0].startswith("| subset | samples | Bleu_1 |") and "| orientation | 1 |" in table


SKIP = ("groups", "num_samples")
OMNIDIFF_N = 120  # about 24 test pairs: two or more for most of the twelve change types


@pytest.fixture(scope="module")
def omnidiff_cache(tmp_path_factory) -> Path:
    """The OmniDiff sample built by the real builder into a datasets cache of this module's own."""
    root = tmp_path_factory.mktemp("omnidiff-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(building, "cache_root", lambda: root)
        building.build_configs("omnidiff", ["default"], "sample", n=OMNIDIFF_N, seed=0, image_size=(32, 32))
    return root


@pytest.fixture()
def omnidiff_test(omnidiff_cache, monkeypatch):
    """The built OmniDiff sample's test split; ``building`` reads that cache for the rest of the test."""
    monkeypatch.setattr(building, "cache_root", lambda: omnidiff_cache)
    return building.load_built("omnidiff", None, "test")


def rotated_predictions(dataset) -> dict[str, str]:
    """Each pair 'predicted' by the next pair's first reference: partly right, so no score is 0 or 1 by
    construction."""
    ids, captions = dataset["id"], dataset["captions"]
    return {i: captions[(n + 1) % len(ids)][0] for n, i in enumerate(ids)}


def check_against_subset_reruns(results: dict, dataset, predictions: dict, metrics=None) -> None:
    """Each change type's scores equal :func:`score_captions` re-run on that change type's pairs alone, x 100,
    and the total equals it on every pair; every score lies in its 95% interval."""
    rows = dataset.select_columns(["id", "captions", "change_types"]).to_list()
    names = list(results["scores"])
    assert names, results
    overall = score_captions([predictions[r["id"]] for r in rows], [r["captions"] for r in rows], metrics=metrics)
    assert results["scores"] == pytest.approx({k: 100 * overall[k] for k in names}, rel=1e-9, abs=1e-10)
    change_types = sorted({t for r in rows for t in r["change_types"]})
    assert sorted(results["groups"]) == change_types
    for change_type in change_types:
        subset = [r for r in rows if change_type in r["change_types"]]
        alone = score_captions([predictions[r["id"]] for r in subset], [r["captions"] for r in subset],
                               metrics=metrics)
        group = results["groups"][change_type]
        assert group["samples"] == len(subset), change_type
        assert group["scores"] == pytest.approx({k: 100 * alone[k] for k in names}, rel=1e-9, abs=1e-10), change_type
    for scores, ci95 in [(results["scores"], results["ci95"])] + [(g["scores"], g["ci95"]) for g in results["groups"].values()]:
        assert set(ci95) == set(scores)
        for name, value in scores.items():
            assert ci95[name][0] - 1e-9 <= value <= ci95[name][1] + 1e-9, (name, value, ci95[name])


@pytest.mark.slow
def test_cli_writes_results_and_table(omnidiff_test, tmp_path, capsys):
    """``diffbench score captions`` on the real OmniDiff sample build: results equal to scoring each change type alone."""
    predictions = rotated_predictions(omnidiff_test)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(predictions))
    out = tmp_path / "runs" / "omnidiff"
    code = cli.main(["score", "captions", str(path), "--dataset", "omnidiff", "--split", "test",
                     "--metrics", "bleu", "cider", "--resamples", "200", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "results.json").read_text())
    assert list(saved)[:len(layout.REQUIRED) + 4] == ["schema", "benchmark", "config", "split", "scale", "samples",
                                                       "dataset_samples", "scores", "ci95", "groups", "uncertainty",
                                                       "provenance"]
    assert saved["benchmark"] == "omnidiff" and saved["split"] == "test"
    assert saved["protocol"]["evaluation"] == "per_change_type" and saved["uncertainty"]["resamples"] == 200
    assert saved["provenance"]["synthetic"] is True and saved["provenance"]["n"] == OMNIDIFF_N
    assert "METEOR" not in saved["scores"] and 0 < saved["scores"]["Bleu_1"] < 100 and saved["scores"]["CIDEr"] > 0
    check_against_subset_reruns(saved, omnidiff_test, predictions, metrics=["bleu", "cider"])
    total = len(omnidiff_test)
    assert saved["samples"] == total
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == omnidiff_test["id"]
    assert f"| all | {total} |" in (out / "results.md").read_text() and f"| all | {total} |" in printed
    for change_type, group in saved["groups"].items():
        assert f"| {change_type} | {group['samples']} |" in printed
    assert "results.json" in printed and "synthetic sample" in printed
    # a missing prediction is refused; --allow-missing scores the rows that have one
    dropped = omnidiff_test["id"][0]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({k: v for k, v in predictions.items() if k != dropped}))
    args = ["score", "captions", str(partial), "--dataset", "omnidiff", "--metrics", "bleu", "--out", str(out)]
    assert cli.main(args) == 2
    assert f"1 of {total} dataset ids have no prediction, e.g. ['{dropped}']" in capsys.readouterr().err
    assert cli.main([*args, "--allow-missing"]) == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["num_missing"] == 1 and saved["samples"] == total - 1 and saved["dataset_samples"] == total
    check_against_subset_reruns(saved, omnidiff_test.filter(lambda r: r["id"] != dropped), predictions,
                                metrics=["bleu"])


def test_cli_bad_input_is_one_line(omnidiff_test, tmp_path, capsys):
    first = omnidiff_test["id"][0]
    total = len(omnidiff_test)
    predictions = tmp_path / "model.json"
    predictions.write_text(json.dumps({first: "x"}))
    out = tmp_path / "out"
    assert cli.main(["score", "captions", str(predictions), "--dataset", "omnidiff", "--out", str(out)]) == 2
    assert f"{total - 1} of {total} dataset ids have no prediction" in capsys.readouterr().err
    assert cli.main(["score", "captions", str(tmp_path / "absent.json"), "--dataset", "omnidiff", "--out", str(out)]) == 2
    capsys.readouterr()
    for args, message in [
        (["--metrics", "spice"], "SPICE needs Stanford CoreNLP 3.6.0"),
        (["--metrics", "bertscore"], "unknown metric 'bertscore'"),
        (["--out", str(predictions)], "is a file; give a folder"),
        (["--split", "dev"], "Unknown split \"dev\". Should be one of ['train', 'validation', 'test']"),
    ]:
        if "spice" in args and (building_spice_installed()):
            continue
        assert cli.main(["score", "captions", str(predictions), "--dataset", "omnidiff", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    duplicate = tmp_path / "dup.json"
    duplicate.write_text(f'{{"{first}": "a", "other": "b", "{first}": "c"}}')
    assert cli.main(["score", "captions", str(duplicate), "--dataset", "omnidiff", "--out", str(out)]) == 2
    assert f"'{first}' appears twice" in capsys.readouterr().err
    assert not out.exists()  # nothing written by a refused run


def building_spice_installed() -> bool:
    from diffbench.captions.java import pycocoevalcap_dir

    return (pycocoevalcap_dir() / "spice" / "lib" / "stanford-corenlp-3.6.0.jar").is_file()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cli_end_to_end_on_a_built_omnidiff_sample(omnidiff_test, omnidiff_cache, tmp_path):
    """``python -m diffbench score captions`` with every default metric (METEOR's JVMs included) on the
    built OmniDiff sample: each change type's scores equal scoring that change type's pairs alone."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(omnidiff_cache),
           "HF_HUB_OFFLINE": "1"}
    predictions = rotated_predictions(omnidiff_test)
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(predictions))
    proc = subprocess.run([sys.executable, "-m", "diffbench", "score", "captions", str(path), "--dataset", "omnidiff",
                           "--out", str(tmp_path / "scores")], capture_output=True, text=True, timeout=540, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "scores" / "results.json").read_text())
    assert results["provenance"]["synthetic"] is True and "synthetic sample" in proc.stdout
    assert {"Bleu_4", "METEOR", "ROUGE_L", "CIDEr"} <= set(results["scores"]) and 0 < results["scores"]["METEOR"] < 100
    check_against_subset_reruns(results, omnidiff_test, predictions)
    assert f"| all | {len(omnidiff_test)} |" in proc.stdout
