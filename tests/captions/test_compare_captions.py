"""``diffbench compare`` on two caption results scored by the real ``diffbench score captions`` on the built
OmniDiff sample: the values are results.json's, a resample's difference equals the project's
pycocoevalcap-exact scoring of that resample written out (duplicates as separate images), a result against
itself gives 0 and p = 1, B against A mirrors A against B."""

from __future__ import annotations

import doctest
import json

import pytest

from diffbench.captions import compare as captions_compare
from diffbench.captions.compare import compare
from diffbench.captions.metrics import score_captions
from diffbench.cli import main
from diffbench.data import building
from diffbench.report.uncertainty import resample_counts

SAMPLE_N = 60  # 12 in the test split


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Folders of ``diffbench score captions`` on the OmniDiff sample, built into a datasets cache of this
    module's own: ``a`` (each caption's words reversed), ``b`` (two thirds of the samples given their first
    reference), ``b-shuffled`` (b's predictions in another order); the dataset's ids, references, the
    predictions and each sample's change types."""
    root = tmp_path_factory.mktemp("compare-captions")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(building, "cache_root", lambda: root / "cache")
        building.build_configs("omnidiff", ["default"], "sample", n=SAMPLE_N, seed=0, image_size=(32, 32))
        dataset = building.load_built("omnidiff", None, "test")
        ids, references = [str(i) for i in dataset["id"]], [list(c) for c in dataset["captions"]]
        assert any(dataset["change_types"]), "the sample has change types: the comparison has groups"
        a = {i: " ".join(refs[0].split()[::-1]) for i, refs in zip(ids, references)}
        b = {i: refs[0] if n % 3 else a[i] for n, (i, refs) in enumerate(zip(ids, references))}
        for name, predictions in (("a", a), ("b", b), ("b-shuffled", dict(reversed(list(b.items()))))):
            (root / f"{name}.json").write_text(json.dumps(predictions))
            assert main(["score", "captions", str(root / f"{name}.json"), "--dataset", "omnidiff", "--out",
                         str(root / name)]) == 0
    return root, ids, references, a, b, [list(types) for types in dataset["change_types"]]


def test_values_are_results_json_and_a_resample_is_the_scoring_of_that_corpus(scored):
    root, ids, references, a, b, types = scored
    comparison = compare(root / "a", root / "b", resamples=1, seed=3)
    results = {side: json.loads((root / side / "results.json").read_text()) for side in ("a", "b")}
    assert set(comparison["scores"]) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}
    for metric, entry in comparison["scores"].items():
        assert entry["a"] == pytest.approx(results["a"]["scores"][metric], abs=1e-9)
        assert entry["b"] == pytest.approx(results["b"]["scores"][metric], abs=1e-9)
        assert entry["difference"] == entry["b"] - entry["a"] and entry["test"] == "paired-bootstrap"
    for group, cell in comparison["groups"].items():
        assert cell["samples"] == results["a"]["groups"][group]["samples"]
        for metric, entry in cell["scores"].items():
            assert entry["b"] == pytest.approx(results["b"]["groups"][group]["scores"][metric], abs=1e-9)
    # the one resample (compare's order: the ids sorted) written out as a corpus and scored as captions are
    order = sorted(range(len(ids)), key=lambda n: ids[n])
    drawn = [order[k] for k, times in enumerate(resample_counts(len(ids), 1, 3)[0]) for _ in range(times)]
    corpus = {side: score_captions([p[ids[n]] for n in drawn], [references[n] for n in drawn])
              for side, p in (("a", a), ("b", b))}
    for metric, entry in comparison["scores"].items():
        expected = 100 * (corpus["b"][metric] - corpus["a"][metric])
        assert entry["ci95"] == pytest.approx([expected, expected], abs=1e-6), metric
    # a group: its own samples resampled (the same seed), a corpus of their own (CIDEr-D's frequencies from them)
    largest = max(comparison["groups"], key=lambda g: comparison["groups"][g]["samples"])
    members = [n for n in order if largest in types[n]]
    in_group = [members[k] for k, times in enumerate(resample_counts(len(members), 1, 3)[0]) for _ in range(times)]
    alone = {side: score_captions([p[ids[n]] for n in in_group], [references[n] for n in in_group])
             for side, p in (("a", a), ("b", b))}
    for metric, entry in comparison["groups"][largest]["scores"].items():
        expected = 100 * (alone["b"][metric] - alone["a"][metric])
        assert entry["ci95"] == pytest.approx([expected, expected], abs=1e-6), (largest, metric)


def test_a_result_against_itself_its_shuffle_and_b_against_a(scored, tmp_path, capsys):
    root, *_ = scored
    forward = compare(root / "a", root / "b", resamples=200)
    same = compare(root / "b", root / "b-shuffled", resamples=200)
    for entry in [*same["scores"].values(), *(e for g in same["groups"].values() for e in g["scores"].values())]:
        assert entry["difference"] == 0 and entry["ci95"] == [0.0, 0.0] and entry["p_value"] == 1.0
    backward = compare(root / "b", root / "a", resamples=200)
    for metric, entry in forward["scores"].items():
        assert backward["scores"][metric]["difference"] == -entry["difference"]
        assert backward["scores"][metric]["p_value"] == entry["p_value"]
        assert backward["scores"][metric]["ci95"] == pytest.approx([-entry["ci95"][1], -entry["ci95"][0]])
    assert forward["scores"]["CIDEr"]["difference"] > 0 and forward["scores"]["CIDEr"]["p_value"] < 0.05
    assert main(["compare", str(root / "a"), str(root / "b"), "--resamples", "200", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert json.loads((tmp_path / "compare.json").read_text()) == json.loads(json.dumps(forward))
    cider = forward["scores"]["CIDEr"]
    assert f"| all | CIDEr | {cider['a']:.2f} | {cider['b']:.2f} | {cider['difference']:+.2f} ±" in printed
    assert "A only / B only" not in printed  # no McNemar counts for caption metrics


def test_a_damaged_prediction_is_named(scored, tmp_path):
    import shutil

    root, *_ = scored
    shutil.copytree(root / "b", tmp_path / "b")
    lines = (tmp_path / "b" / "samples.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    record["prediction"] = 7
    lines[2] = json.dumps(record)
    (tmp_path / "b" / "samples.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"samples\.jsonl, line 3 \(id '{record['id']}'\): prediction is 7, not a caption"):
        compare(root / "a", tmp_path / "b", resamples=10)


def test_module_doctests():
    assert doctest.testmod(captions_compare).failed == 0


def test_references_from_the_build_when_the_records_have_none(scored, tmp_path, monkeypatch):
    import shutil

    root, *_ = scored
    for side in ("a", "b"):
        shutil.copytree(root / side, tmp_path / side)
        records = [json.loads(line) for line in (tmp_path / side / "samples.jsonl").read_text().splitlines()]
        (tmp_path / side / "samples.jsonl").write_text("".join(
            json.dumps({k: v for k, v in r.items() if k != "references"}) + "\n" for r in records))
    monkeypatch.setattr(building, "cache_root", lambda: root / "cache")
    from_build, recorded = compare(tmp_path / "a", tmp_path / "b", resamples=50), compare(root / "a", root / "b", resamples=50)
    assert from_build["scores"] == recorded["scores"] and from_build["groups"] == recorded["groups"]


@pytest.fixture(scope="module")
def clevr_scored(tmp_path_factory):
    """Folders ``a`` and ``b`` of ``diffbench score captions`` on the CLEVR-Change sample (a semantic and a
    distractor pair a scene): ``a`` each first reference's words reversed, ``b`` the first reference on two
    samples out of three; and how many of the test split's samples are distractors."""
    root = tmp_path_factory.mktemp("compare-clevr-change")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(building, "cache_root", lambda: root / "cache")
        building.build_configs("clevr_change", ["default"], "sample", seed=0, image_size=(32, 24))
        dataset = building.load_built("clevr_change", None, "test")
        firsts = {str(i): refs[0] for i, refs in zip(dataset["id"], dataset["captions"])}
        a = {i: " ".join(first.split()[::-1]) for i, first in firsts.items()}
        b = {i: first if n % 3 else a[i] for n, (i, first) in enumerate(firsts.items())}
        for name, predictions in (("a", a), ("b", b)):
            (root / f"{name}.json").write_text(json.dumps(predictions))
            assert main(["score", "captions", str(root / f"{name}.json"), "--dataset", "clevr_change", "--metrics",
                         "bleu", "rouge", "cider", "--resamples", "20", "--out", str(root / name)]) == 0
    return root, sum(dataset["distractor"])


def test_clevr_change_is_compared_in_its_official_parts(clevr_scored):
    root, distractors = clevr_scored
    comparison = compare(root / "a", root / "b", resamples=100)
    results = {side: json.loads((root / side / "results.json").read_text()) for side in ("a", "b")}
    # the parts the scoring reports, in the official order (semantic_change, its types, distractor)
    assert list(comparison["groups"]) == list(results["a"]["groups"])
    assert {"semantic_change", "distractor"} <= set(comparison["groups"]) and len(comparison["groups"]) > 2
    assert comparison["groups"]["distractor"]["samples"] == distractors > 0
    for group, cell in comparison["groups"].items():
        assert cell["samples"] == results["a"]["groups"][group]["samples"], group
        for metric, entry in cell["scores"].items():  # each part a corpus of its own, as the scoring's
            assert entry["a"] == pytest.approx(results["a"]["groups"][group]["scores"][metric], abs=1e-9)
            assert entry["b"] == pytest.approx(results["b"]["groups"][group]["scores"][metric], abs=1e-9)
    assert comparison["scores"]["CIDEr"]["difference"] > 0
