"""Issue 20's acceptance check, end to end through the CLI as a user runs it: two VisMin submissions that differ
compared (the exact McNemar p-value of the group score, overall and per category), a reproducible ``ci95``,
GPT4-o's AVG on the paper's convention with the published value beside it, ``--limit 20`` covering every
category and ``--limit 40`` extending that run, ``samples.jsonl`` agreeing with the official rule on every
sample, and one results.json layout for both benchmarks.

The p-values are checked against the exact binomial written out here with ``math.comb`` (twice the smaller tail,
capped at 1), not against the library's own function.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diffbench.cli import main
from diffbench.report import layout

FIELDS = ["T0_I0", "T0_I1", "T1_I0", "T1_I1"]
CATEGORIES = ("object", "attribute", "relation", "counting")


def mcnemar_exact(b01: int, b10: int) -> float:
    n = b01 + b10
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b01, b10) + 1)) / 2**n
    return min(1.0, 2 * tail)


def official(frame: pd.DataFrame) -> pd.DataFrame:
    """The rule of vismin-bench/metric.py written out: strict >, ties wrong."""
    text = (frame.T0_I0 > frame.T1_I0) & (frame.T1_I1 > frame.T0_I1)
    image = (frame.T0_I0 > frame.T0_I1) & (frame.T1_I1 > frame.T1_I0)
    return pd.DataFrame({"text": text, "image": image, "group": text & image}).set_index(frame["id"].astype(str))


@pytest.fixture(scope="module")
def two_submissions(vismin_built, tmp_path_factory):
    from diffbench.data.building import load_built

    bench = load_built("vismin", "bench", "test")
    root = tmp_path_factory.mktemp("issue20")
    rng = np.random.default_rng(7)
    a = pd.DataFrame({"id": bench["id"], **{f: rng.integers(0, 3, len(bench)) / 2 for f in FIELDS}})
    b = a.copy()
    b.loc[rng.random(len(b)) < 0.6, FIELDS] = [1.0, 0.0, 0.0, 1.0]  # B right on most samples
    categories = dict(zip(map(str, bench["id"]), bench.features["category"].int2str(bench["category"])))
    folders = {}
    for name, frame in (("a", a), ("b", b)):
        frame.to_csv(root / f"{name}.csv", index=False)
        assert main(["score", "vismin", str(root / f"{name}.csv"), "--out", str(root / name), "--name", name]) == 0
        folders[name] = root / name
    return root, folders, {"a": a, "b": b}, categories


def test_compare_gives_the_exact_mcnemar_p_value_of_the_group_score(two_submissions):
    root, folders, frames, categories = two_submissions
    assert main(["compare", str(folders["a"]), str(folders["b"]), "--out", str(root / "ab")]) == 0
    compared = json.loads((root / "ab" / "compare.json").read_text())
    right = {name: official(frame) for name, frame in frames.items()}
    ids = list(right["a"].index)
    for group, members in [(None, ids)] + [(c, [i for i in ids if categories[i] == c]) for c in CATEGORIES]:
        a, b = right["a"].loc[members, "group"], right["b"].loc[members, "group"]
        b01, b10 = int((~a & b).sum()), int((a & ~b).sum())
        entry = (compared["scores"] if group is None else compared["groups"][group]["scores"])["group"]
        assert (entry["b01"], entry["b10"]) == (b01, b10), group
        assert entry["test"].startswith("mcnemar") and entry["p_value"] == pytest.approx(mcnemar_exact(b01, b10),
                                                                                          rel=1e-12), group
        assert entry["difference"] == pytest.approx(100 * (b.mean() - a.mean()))
    assert (root / "ab" / "compare.md").is_file()


def test_results_carry_a_reproducible_ci95_and_gpt4o_on_the_papers_avg(two_submissions):
    root, folders, frames, _ = two_submissions
    results = json.loads((folders["a"] / "results.json").read_text())
    assert main(["score", "vismin", str(root / "a.csv"), "--out", str(root / "a-again")]) == 0
    again = json.loads((root / "a-again" / "results.json").read_text())
    assert again["ci95"] == results["ci95"] and again["groups"] == results["groups"]
    for name in ("text", "image", "group", "avg"):
        low, high = results["ci95"][name]
        assert low <= results["scores"][name] <= high and high > low
    [gpt4o] = [line for line in (folders["a"] / "results.md").read_text().splitlines() if line.startswith("| GPT4-o")]
    assert "80.44 (published 73.93" in gpt4o


def test_samples_jsonl_agrees_with_the_official_rule_on_every_sample(two_submissions):
    _, folders, frames, _ = two_submissions
    right = official(frames["b"])
    records = [json.loads(line) for line in (folders["b"] / "samples.jsonl").read_text().splitlines()]
    assert len(records) == len(right)
    for record in records:
        expected = right.loc[str(record["id"])]
        assert (record["text_correct"], record["image_correct"], record["group_correct"]) == tuple(map(bool, expected))


@pytest.mark.slow
def test_limit_20_covers_every_category_and_limit_40_extends_that_run(vismin_built, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["eval", "vismin", "--out", str(out), "--num-workers", "0", "--no-progress"]
    assert main([*args, "--limit", "20"]) == 0, capsys.readouterr().err
    first = json.loads((out / "results.json").read_text())
    assert set(first["groups"]) == set(CATEGORIES) and first["samples"] == 20
    assert main([*args, "--limit", "40"]) == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["environment"]["predictions"] == {"kept": 20, "predicted": 20}
    assert json.loads((out / "results.json").read_text())["samples"] == 40


def test_both_benchmarks_share_the_results_layout(two_submissions, tmp_path):
    from diffbench.data import building

    _, folders, _, _ = two_submissions
    vismin = json.loads((folders["a"] / "results.json").read_text())
    root = tmp_path / "cache"
    with pytest.MonkeyPatch.context() as patch:  # a caption build of this test's own
        patch.setattr(building, "cache_root", lambda: root)
        building.build_configs("omnidiff", ["default"], "sample", n=12, seed=0, image_size=(32, 32))
        test = building.load_built("omnidiff", None, "test")
        predictions = tmp_path / "predictions.json"
        predictions.write_text(json.dumps({i: c[0] for i, c in zip(test["id"], test["captions"])}))
        assert main(["score", "captions", str(predictions), "--dataset", "omnidiff", "--metrics", "bleu",
                     "--out", str(tmp_path / "captions")]) == 0
    captions = json.loads((tmp_path / "captions" / "results.json").read_text())
    for results in (vismin, captions):
        layout.check(results)
        assert [key for key in results if key in layout.REQUIRED] == list(layout.REQUIRED)
        assert results["scale"] == "percent" and all(isinstance(v, float) for v in results["scores"].values())
        assert set(results["ci95"]) == set(results["scores"])
    assert Path(tmp_path / "captions" / "samples.jsonl").is_file()
