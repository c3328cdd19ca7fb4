"""score_predictions on built-dataset rows: CLEVR-Change's official parts, per-change-type groups, files.

The CLEVR-Change parity test runs the official evaluation's procedure itself (Seth-Park/
RobustChangeCaptioning ``evaluate.py`` with ``utils/eval_utils.py``: the merged COCO annotation file
keyed ``"000123.png"`` / ``"000123.png_n"``, ``score_generation`` on the semantic and the
non-semantic results and on their concatenation, ``score_generation_by_type`` with a
``type_mapping.json``) through pycocotools and COCOEvalCap, on a generated CLEVR-Change-shaped set
whose captions are real Spot-the-Diff sentences, and compares every part with ours.
"""

from __future__ import annotations

import json

import pytest

from diffbench.data import provenance
from diffbench.captions.clevr_change import CLEVR_CHANGE_GROUPS, CLEVR_CHANGE_TYPES
from diffbench.captions.report import format_table, write_report
from diffbench.captions.scoring import score_predictions

NAMES = ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]
NO_CHANGE = ["the scene is the same as before", "nothing has changed", "no change was made",
             "the two scenes seem identical", "there is no difference"]


@pytest.fixture(scope="module")
def clevr_rows(shared_dir):
    """60 default images: a semantic row (type round-robin) and a distractor row each, in the builder's
    row contract; predictions keyed by row id."""
    entries = json.loads((shared_dir / "data" / "spot_the_diff" / "annotations" / "val.json").read_text())
    entries = [e for e in entries if any(s.strip() for s in e["sentences"])]
    rows = {"id": [], "captions": [], "change_types": [], "distractor": []}
    predictions = {}
    for n in range(60):
        number = f"{n * 7 + 3:06d}"
        semantic, distractor = f"CLEVR_default_{number}_semantic", f"CLEVR_default_{number}_nonsemantic"
        rows["id"] += [semantic, distractor]
        rows["captions"] += [entries[n]["sentences"], [NO_CHANGE[n % 5], NO_CHANGE[(n + 2) % 5]]]
        rows["change_types"] += [[CLEVR_CHANGE_TYPES[n % 5]], []]
        rows["distractor"] += [False, True]
        predictions[semantic] = entries[n + 1]["sentences"][0]
        predictions[distractor] = NO_CHANGE[(n + 1) % 5] if n % 4 else entries[n + 2]["sentences"][0]
    return rows, predictions


@pytest.fixture(scope="module")
def clevr_dataset(clevr_rows):
    import datasets

    return datasets.Dataset.from_dict(clevr_rows[0])


class NoSpice:
    """SPICE downloads CoreNLP at run time: scored 0 in the reference runs, never compared."""

    def compute_score(self, gts, res):
        return 0.0, [0.0] * len(gts)

    def method(self):
        return "SPICE"


def official_evaluation(rows, predictions, folder, meteor, monkeypatch) -> dict:
    """The parts evaluate.py prints, computed as utils/eval_utils.py computes them."""
    from pycocoevalcap import eval as coco_eval_module
    from pycocotools.coco import COCO

    monkeypatch.setattr(coco_eval_module, "Meteor", lambda: meteor)
    monkeypatch.setattr(coco_eval_module, "Spice", NoSpice)
    # merge_gt_files(change_captions.json, no_change_captions.json): image ids are name.split('_')[-1],
    # distractors + '_n'; type_mapping.json lists the semantic tails.
    anno = {"info": {}, "licenses": {}, "type": "captions", "images": [], "annotations": []}
    sc, nsc, types = [], [], {t: [] for t in CLEVR_CHANGE_TYPES}
    for row_id, captions, change_types, distractor in zip(rows["id"], rows["captions"], rows["change_types"],
                                                          rows["distractor"]):
        number = row_id.split("_")[2]
        image_id = f"{number}.png" + ("_n" if distractor else "")
        anno["images"].append({"filename": image_id, "id": image_id})
        for caption in captions:
            anno["annotations"].append({"caption": caption, "id": len(anno["annotations"]), "image_id": image_id})
        (nsc if distractor else sc).append({"caption": predictions[row_id], "image_id": image_id})
        for change_type in change_types:
            types[change_type].append(f"{number}.png")
    paths = {name: folder / f"{name}.json" for name in ("anno", "sc", "nsc", "total", "types")}
    for name, data in (("anno", anno), ("sc", sc), ("nsc", nsc), ("total", sc + nsc), ("types", types)):
        paths[name].write_text(json.dumps(data))

    def score_generation(result_file):
        coco = COCO(str(paths["anno"]))
        coco_res = coco.loadRes(str(result_file))
        coco_eval = coco_eval_module.COCOEvalCap(coco, coco_res)
        coco_eval.params["image_id"] = coco_res.getImgIds()
        coco_eval.evaluate()
        return dict(coco_eval.eval)

    def score_generation_by_type(result_file):
        coco = COCO(str(paths["anno"]))
        coco_res = coco.loadRes(str(result_file))
        coco_eval = coco_eval_module.COCOEvalCap(coco, coco_res)
        out = {}
        for change_type, image_ids in json.loads(paths["types"].read_text()).items():
            coco_eval.params["image_id"] = list(set(coco_res.getImgIds()).intersection(set(image_ids)))
            coco_eval.evaluate()
            out[change_type] = dict(coco_eval.eval)
        return out

    parts = {"semantic_change": score_generation(paths["sc"]), **score_generation_by_type(paths["sc"]),
             "distractor": score_generation(paths["nsc"]), "total": score_generation(paths["total"])}
    monkeypatch.undo()
    return parts


@pytest.mark.slow
def test_clevr_change_parts_equal_the_official_evaluation(clevr_rows, clevr_dataset, coco_meteor, tmp_path, monkeypatch):
    rows, predictions = clevr_rows
    ours = score_predictions(predictions, clevr_dataset, resamples=100)
    official = official_evaluation(rows, predictions, tmp_path, coco_meteor, monkeypatch)
    assert ours["protocol"]["evaluation"] == "clevr_change_official"
    assert list(ours["groups"]) == list(CLEVR_CHANGE_GROUPS)
    assert ours["samples"] == 120 and ours["groups"]["semantic_change"]["samples"] == 60
    assert ours["groups"]["distractor"]["samples"] == 60 and ours["groups"]["move"]["samples"] == 12
    for part, scores in official.items():
        mine = ours["scores"] if part == "total" else ours["groups"][part]["scores"]
        for name in NAMES:  # the official numbers, x 100 (the layout's percent scale)
            assert mine[name] == pytest.approx(100 * scores[name], abs=1e-7, rel=0), (part, name)
    # keyed the official way (test.py's sc_results / nsc_results keys), the same numbers
    official_keys = {(k.split("_")[2] + ".png" + ("_n" if k.endswith("_nonsemantic") else "")): v
                     for k, v in predictions.items()}
    assert score_predictions(official_keys, clevr_dataset, metrics=["bleu", "rouge", "cider"], resamples=20) == \
        score_predictions(predictions, clevr_dataset, metrics=["bleu", "rouge", "cider"], resamples=20)
    bare = {k.replace(".png", ""): v for k, v in official_keys.items()}
    assert score_predictions(bare, clevr_dataset, metrics=["bleu"])["scores"]["Bleu_1"] == ours["scores"]["Bleu_1"]


def test_clevr_change_keys_given_twice_or_unknown(clevr_rows, clevr_dataset):
    _, predictions = clevr_rows
    with pytest.raises(ValueError, match="id 'CLEVR_default_000003_semantic' has two predictions.*'000003.png'"):
        score_predictions({**predictions, "000003.png": "x"}, clevr_dataset, metrics=["bleu"])
    with pytest.raises(ValueError, match="1 predictions have ids not in the dataset, e.g. \\['999999.png'\\]"):
        score_predictions({**predictions, "999999.png": "x"}, clevr_dataset, metrics=["bleu"])


@pytest.mark.slow
def test_allow_missing_scores_the_rest_and_says_how_many(clevr_rows, clevr_dataset):
    _, predictions = clevr_rows
    some = {k: v for k, v in predictions.items() if k.endswith("_nonsemantic")}
    with pytest.raises(ValueError, match="60 of 120 dataset ids have no prediction"):
        score_predictions(some, clevr_dataset, metrics=["bleu"])
    results = score_predictions(some, clevr_dataset, metrics=["bleu"], allow_missing=True)
    assert results["num_missing"] == 60 and results["samples"] == 60 and results["dataset_samples"] == 120
    assert list(results["groups"]) == ["distractor"]
    assert results["groups"]["distractor"]["scores"]["Bleu_4"] == results["scores"]["Bleu_4"]
    # one stratum (every sample a distractor): the group's resamples are the total's
    assert results["groups"]["distractor"]["ci95"] == results["ci95"]


@pytest.mark.slow
def test_other_datasets_get_one_group_a_change_type(shared_dir):
    import datasets

    entries = json.loads((shared_dir / "data" / "image_editing_request" / "test.json").read_text())[:30]
    dataset = datasets.Dataset.from_dict({
        "id": [str(e["uid"]) for e in entries], "captions": [e["sents"][1:] for e in entries],
        "change_types": [["color"] if i % 3 == 0 else ["add", "color"] if i % 3 == 1 else [] for i in range(30)],
    })
    results = score_predictions({str(e["uid"]): e["sents"][0] for e in entries}, dataset, metrics=["bleu", "cider"])
    assert results["protocol"]["evaluation"] == "per_change_type" and sorted(results["groups"]) == ["add", "color"]
    assert results["groups"]["color"]["samples"] == 20 and results["samples"] == 30
    assert results["provenance"] == provenance.UNKNOWN


@pytest.mark.slow
def test_synthetic_builds_say_so_and_files_are_written_whole(clevr_rows, tmp_path):
    import datasets

    rows, predictions = clevr_rows
    folder = tmp_path / "built"
    datasets.Dataset.from_dict(rows).save_to_disk(str(folder))
    dataset = datasets.load_from_disk(str(folder))
    record = {"dataset": "clevr_change", "config": None, "source": "synthetic", "synthetic": True, "n": 60, "seed": 0}
    (provenance.build_folder(dataset) / provenance.PROVENANCE_FILE).write_text(json.dumps(record))
    results = score_predictions(predictions, dataset, metrics=["bleu"])
    assert results["provenance"]["synthetic"] is True
    table = format_table(results)
    assert table.startswith(f"*{provenance.SYNTHETIC_NOTE}*") and "| total | 120 |" in table
    json_path, md_path, png, svg = write_report(tmp_path / "out", results, "t")  # no samples: no samples.jsonl
    assert json.loads(json_path.read_text())["provenance"]["n"] == 60
    assert provenance.SYNTHETIC_NOTE in md_path.read_text() and provenance.SYNTHETIC_NOTE in svg.read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".diffbench-files.json", "results.json", "results.md", "results.png", "results.svg"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        write_report(tmp_path / "file", results, "t")


def test_the_report_names_the_builders_change_types():
    """The report's CLEVR-Change groups are the builder's vocabulary, in the builder's order."""
    from diffbench.data import building

    assert CLEVR_CHANGE_TYPES == building.builder_class("clevr_change").CHANGE_TYPES
