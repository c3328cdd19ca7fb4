"""``diffbench score captions``: predictions keyed by id, scored against a built dataset, per change type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffbench import building, cli
from diffbench.caption_inputs import read_predictions
from diffbench.caption_report import format_table, score_predictions
from diffbench.caption_scoring import score_captions

REPO = Path(__file__).resolve().parent.parent


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
    results = score_predictions(PREDICTIONS, tiny_dataset)
    ids = tiny_dataset["id"]
    expected = score_captions(
        [PREDICTIONS[i] for i in ids], list(tiny_dataset["captions"]), groups=list(tiny_dataset["change_types"])
    )
    assert results == {**expected, "evaluation": "per_change_type", "provenance": results["provenance"]}
    assert results["provenance"]["synthetic"] is None  # an in-memory dataset: no build record
    assert results["groups"]["disappearance"]["num_samples"] == 2
    assert results["num_samples"] == 4  # p3 has no change type: overall only
    table = format_table(results)
    assert table.splitlines()[0].startswith("| subset | samples | Bleu_1 |") and "| orientation | 1 |" in table


@pytest.mark.slow
def test_cli_writes_results_and_table(tiny_dataset, tmp_path, monkeypatch, capsys):
    calls = []

    def fake_load_built(name, config=None, split=None):
        calls.append((name, config, split))
        return tiny_dataset

    monkeypatch.setattr(building, "load_built", fake_load_built)
    predictions = tmp_path / "model.json"
    predictions.write_text(json.dumps(PREDICTIONS))
    out = tmp_path / "runs" / "tiny"
    code = cli.main(["score", "captions", str(predictions), "--dataset", "tiny", "--split", "test",
                     "--metrics", "bleu", "cider", "--out", str(out)])
    assert code == 0 and calls == [("tiny", None, "test")]
    printed = capsys.readouterr().out
    assert "| disappearance | 2 |" in printed and "results.json" in printed
    saved = json.loads((out / "results.json").read_text())
    assert saved["dataset"] == "tiny" and set(saved["groups"]) == {"addition", "disappearance", "orientation"}
    assert "METEOR" not in saved and "CIDEr" in saved and "provenance" in saved
    assert "| all | 4 |" in (out / "results.md").read_text()
    # --allow-missing scores the rows that have a prediction
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({k: v for k, v in PREDICTIONS.items() if k != "p3"}))
    assert cli.main(["score", "captions", str(partial), "--dataset", "tiny", "--metrics", "bleu", "--out", str(out)]) == 2
    assert "1 of 4 dataset ids have no prediction" in capsys.readouterr().err
    assert cli.main(["score", "captions", str(partial), "--dataset", "tiny", "--metrics", "bleu", "--allow-missing",
                     "--out", str(out)]) == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["num_missing"] == 1 and saved["num_samples"] == 3


def test_cli_bad_input_is_one_line(tiny_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(building, "load_built", lambda name, config=None, split=None: tiny_dataset)
    predictions = tmp_path / "model.json"
    predictions.write_text(json.dumps({"p0": "x"}))
    out = tmp_path / "out"
    assert cli.main(["score", "captions", str(predictions), "--dataset", "tiny", "--out", str(out)]) == 2
    assert "3 of 4 dataset ids have no prediction" in capsys.readouterr().err
    assert cli.main(["score", "captions", str(tmp_path / "absent.json"), "--dataset", "tiny", "--out", str(out)]) == 2
    capsys.readouterr()
    for args, message in [
        (["--metrics", "spice"], "SPICE needs Stanford CoreNLP 3.6.0"),
        (["--metrics", "bertscore"], "unknown metric 'bertscore'"),
        (["--out", str(predictions)], "is a file; give a folder"),
    ]:
        if "spice" in args and (building_spice_installed()):
            continue
        assert cli.main(["score", "captions", str(predictions), "--dataset", "tiny", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    duplicate = tmp_path / "dup.json"
    duplicate.write_text('{"p0": "a", "p1": "b", "p0": "c"}')
    assert cli.main(["score", "captions", str(duplicate), "--dataset", "tiny", "--out", str(out)]) == 2
    assert "'p0' appears twice" in capsys.readouterr().err
    assert not out.exists()  # nothing written by a refused run


def building_spice_installed() -> bool:
    from diffbench.caption_tokenizer import pycocoevalcap_dir

    return (pycocoevalcap_dir() / "spice" / "lib" / "stanford-corenlp-3.6.0.jar").is_file()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cli_end_to_end_on_a_built_omnidiff_sample(tmp_path):
    """Build the OmniDiff sample, predict one held-out reference per pair, score by change type."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    run = dict(capture_output=True, text=True, timeout=540, env=env, cwd=tmp_path)
    built = subprocess.run([sys.executable, "-m", "diffbench", "build", "omnidiff", "--source", "sample",
                            "--n", "36", "--image-size", "48x48"], **run)
    assert built.returncode == 0, built.stderr[-3000:]
    dump = subprocess.run([sys.executable, "-c", (
        "import json; from diffbench.building import load_built;"
        "d = load_built('omnidiff', None, 'test');"
        "print(json.dumps({r['id']: [r['captions'], r['change_types']] for r in d.select_columns(['id', 'captions', 'change_types'])}))"
    )], **run)
    assert dump.returncode == 0, dump.stderr[-3000:]
    rows = json.loads(dump.stdout.strip().splitlines()[-1])
    assert rows, "the sample has a test split"
    path = tmp_path / "preds.json"
    path.write_text(json.dumps({i: captions[0] for i, (captions, _) in rows.items()}))
    proc = subprocess.run([sys.executable, "-m", "diffbench", "score", "captions", str(path), "--dataset", "omnidiff",
                           "--out", str(tmp_path / "scores")], **run)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "scores" / "results.json").read_text())
    assert results["provenance"]["synthetic"] is True and "synthetic sample" in proc.stdout
    text = json.dumps(results)
    change_types = {t for _, types in rows.values() for t in types}
    assert change_types and all(f'"{t}"' in text for t in change_types), "a score set per change type"
    assert "| all |" in proc.stdout
