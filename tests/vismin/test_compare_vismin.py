"""``diffbench compare`` on two VisMin submissions scored by the real CLI on the built sample: the exact McNemar
p-values against an independent exact binomial computation, the paired intervals against a plain loop, a
result against itself (difference 0, p = 1), A against B and B against A, the files' row order."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pandas as pd
import pytest

from conftest import require_module
from diffbench.cli import main
from diffbench.report.uncertainty import percentile_interval, resample_counts
from diffbench.vismin import compare as vismin_compare
from diffbench.vismin.compare import compare
from diffbench.vismin.schema import CATEGORIES

FIELDS = ["T0_I0", "T0_I1", "T1_I0", "T1_I1"]


def keys_of_sample():
    from diffbench.data.building import load_built

    bench = load_built("vismin", "bench", "test")
    table = bench.select_columns(["id", "category"]).to_pandas()
    table["category"] = bench.features["category"].int2str(table["category"].tolist())
    return table


def submissions(keys) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A: random similarities (ties count as wrong), half the samples made right both ways; B: A with two
    thirds of the samples, drawn afresh, made right both ways and the others wrong both ways, so both kinds
    of discordant samples occur."""
    rng = np.random.default_rng(0)
    a = pd.DataFrame({"id": keys["id"], **{f: rng.integers(0, 3, len(keys)) / 2 for f in FIELDS}})
    a.loc[rng.random(len(keys)) < 1 / 2, FIELDS] = [1.0, 0.0, 0.0, 1.0]
    b = a.copy()
    right = rng.random(len(keys)) < 2 / 3
    b.loc[right, FIELDS] = [1.0, 0.0, 0.0, 1.0]
    b.loc[~right, FIELDS] = [0.0, 1.0, 1.0, 0.0]  # wrong both ways, where A may have been right
    return a, b


def official(frame: pd.DataFrame) -> pd.DataFrame:
    """The official rule, written out: text, image, group right per sample (strict >)."""
    text = (frame.T0_I0 > frame.T1_I0) & (frame.T1_I1 > frame.T0_I1)
    image = (frame.T0_I0 > frame.T0_I1) & (frame.T1_I1 > frame.T1_I0)
    return pd.DataFrame({"id": frame["id"], "text": text, "image": image, "group": text & image})


@pytest.fixture(scope="module")
def scored(vismin_built, tmp_path_factory):
    """Folders of ``diffbench score vismin`` for A, B and B with its rows shuffled, and the submissions."""
    root = tmp_path_factory.mktemp("compare-vismin")
    keys = keys_of_sample()
    a, b = submissions(keys)
    folders = {}
    for name, frame in (("a", a), ("b", b), ("b-shuffled", b.sample(frac=1, random_state=3))):
        frame.to_csv(root / f"{name}.csv", index=False)
        assert main(["score", "vismin", str(root / f"{name}.csv"), "--out", str(root / name)]) == 0
        folders[name] = root / name
    return folders, keys, a, b


def exact_binomial_p(successes: int, trials: int) -> float:
    """Two-sided exact binomial test at 1/2 as scipy.stats.binomtest defines it (the total probability of
    every outcome no more likely than the one seen), in exact rationals by sympy: another definition and
    another implementation than the one tested (twice the smaller tail)."""
    sympy = require_module("sympy", "the independent check of the McNemar p-value uses sympy")
    from sympy import stats

    if trials == 0:
        return 1.0
    pmf = stats.density(stats.Binomial("X", trials, sympy.Rational(1, 2))).dict
    seen = pmf[successes]
    return float(min(1, sum(p for p in pmf.values() if p <= seen)))


def test_mcnemar_p_values_and_discordant_counts_overall_and_per_category(scored):
    folders, keys, a, b = scored
    comparison = compare(folders["a"], folders["b"])
    right_a, right_b = official(a).assign(category=keys["category"]), official(b).assign(category=keys["category"])
    checked = 0
    for group, members in [("all", slice(None))] + [(c, keys["category"] == c) for c in CATEGORIES]:
        scores = comparison["scores"] if group == "all" else comparison["groups"][group]["scores"]
        for metric in ("text", "image", "group"):
            ra, rb = right_a.loc[members, metric].to_numpy(), right_b.loc[members, metric].to_numpy()
            entry = scores[metric]
            assert (entry["b01"], entry["b10"]) == (int(np.sum(~ra & rb)), int(np.sum(ra & ~rb)))
            assert entry["p_value"] == pytest.approx(exact_binomial_p(entry["b01"], entry["b01"] + entry["b10"]),
                                                     rel=1e-12)
            assert entry["test"] == "mcnemar-exact"
            checked += entry["b01"] > 0 and entry["b10"] > 0
    assert checked >= 6  # both kinds of discordant samples, in most cells: the test is not a one-sided count
    assert comparison["scores"]["group"]["p_value"] < 0.05  # two thirds made right: a real difference


def test_scores_are_results_json_scores_and_differences_are_b_minus_a(scored):
    folders, *_ = scored
    comparison = compare(folders["a"], folders["b"])
    results = {side: json.loads((folders[side] / "results.json").read_text()) for side in ("a", "b")}
    for metric, entry in comparison["scores"].items():
        assert (entry["a"], entry["b"]) == (results["a"]["scores"][metric], results["b"]["scores"][metric])
        assert entry["difference"] == entry["b"] - entry["a"]
        assert entry["ci95"][0] <= entry["difference"] <= entry["ci95"][1]
    for category, cell in comparison["groups"].items():
        assert cell["samples"] == results["a"]["groups"][category]["samples"]
        for metric, entry in cell["scores"].items():
            assert entry["b"] == results["b"]["groups"][category]["scores"][metric]
    assert comparison["scores"]["avg"]["test"] == "paired-bootstrap"
    assert comparison["samples"] == results["a"]["samples"] and comparison["schema"] == "diffbench.compare/1"


def test_intervals_equal_a_plain_loop_over_the_same_resamples(scored):
    folders, keys, a, b = scored
    comparison = compare(folders["a"], folders["b"], resamples=200, seed=7)
    order = np.argsort(keys["id"].to_numpy())  # compare's order: the ids sorted
    ra, rb = official(a).iloc[order], official(b).iloc[order]
    categories = keys["category"].to_numpy()[order]
    counts = resample_counts(len(keys), 200, 7, strata=[CATEGORIES.index(c) for c in categories])
    for metric in ("text", "group"):
        diffs = [100 * (np.repeat(rb[metric].to_numpy(), row).mean() - np.repeat(ra[metric].to_numpy(), row).mean())
                 for row in counts]
        assert comparison["scores"][metric]["ci95"] == pytest.approx(percentile_interval(diffs), abs=1e-9)
    cells = [[100 * (np.repeat(r[m].to_numpy()[categories == c], row[categories == c]).mean())
              for c in CATEGORIES for m in ("text", "image", "group")] for r in (ra, rb) for row in counts]
    avg = np.mean(np.array(cells).reshape(2, 200, 12), axis=2)
    assert comparison["scores"]["avg"]["ci95"] == pytest.approx(percentile_interval(avg[1] - avg[0]), abs=1e-9)


def test_a_result_against_itself_and_against_its_rows_shuffled(scored):
    folders, *_ = scored
    for other in ("b", "b-shuffled"):
        same = compare(folders["b"], folders[other])
        entries = [*same["scores"].values(), *(e for g in same["groups"].values() for e in g["scores"].values())]
        assert len(entries) == 4 + 3 * len(CATEGORIES)
        for entry in entries:
            assert entry["difference"] == 0 and entry["ci95"] == [0.0, 0.0] and entry["p_value"] == 1.0
            assert entry.get("b01", 0) == entry.get("b10", 0) == 0


def test_b_against_a_mirrors_a_against_b_and_a_seed_reproduces(scored):
    folders, *_ = scored
    forward, backward = compare(folders["a"], folders["b"]), compare(folders["b"], folders["a"])
    assert forward == compare(folders["a"], folders["b"])  # the same seed: the same intervals
    for metric, entry in forward["scores"].items():
        mirrored = backward["scores"][metric]
        assert mirrored["difference"] == -entry["difference"] and mirrored["p_value"] == entry["p_value"]
        assert mirrored["ci95"] == pytest.approx([-entry["ci95"][1], -entry["ci95"][0]])
        if "b01" in entry:
            assert (mirrored["b01"], mirrored["b10"]) == (entry["b10"], entry["b01"])
    shuffled = compare(folders["a"], folders["b-shuffled"])
    assert shuffled["scores"] == forward["scores"] and shuffled["groups"] == forward["groups"]  # the files' order is not
    assert compare(folders["a"], folders["b"], seed=1)["scores"]["text"]["ci95"] != forward["scores"]["text"]["ci95"]


def test_cli_prints_the_table_and_writes_compare_json_and_md(scored, tmp_path, capsys):
    folders, *_ = scored
    out = tmp_path / "cmp"
    assert main(["compare", str(folders["a"]), str(folders["b"] / "results.json"), "--out", str(out),
                 "--resamples", "300", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    written = json.loads((out / "compare.json").read_text())
    assert written == json.loads(json.dumps(compare(folders["a"], folders["b"], resamples=300, seed=2)))
    assert written["uncertainty"]["resamples"] == 300 and written["a"]["name"] == "a" and written["b"]["name"] == "b"
    markdown = (out / "compare.md").read_text()
    assert markdown in printed and f"wrote {out / 'compare.json'}, {out / 'compare.md'}" in printed
    group = written["scores"]["group"]
    row = next(line for line in markdown.splitlines() if line.startswith("| all | group |"))
    assert f"| {group['a']:.2f} | {group['b']:.2f} | {group['difference']:+.2f} ±" in row
    assert row.endswith(f"| * | {group['b10']} / {group['b01']} |")  # p < 0.05 marked; A only / B only
    assert sorted(p.name for p in out.iterdir()) == [".diffbench-files.json", "compare.json", "compare.md"]
    assert main(["compare", str(folders["a"]), str(folders["b"])]) == 0  # no --out: printed only
    assert "| all | text |" in capsys.readouterr().out


def test_bad_records_name_file_line_and_field(scored, tmp_path):
    import shutil

    folders, *_ = scored
    for field, value, message in [("text_correct", "yes", "text_correct is 'yes', not true or false"),
                                  ("category", "colour", "category 'colour' is not one of object"),
                                  ("group_correct", None, "group_correct contradicts")]:
        copy = tmp_path / field
        shutil.copytree(folders["b"], copy)
        lines = (copy / "samples.jsonl").read_text().splitlines()
        record = json.loads(lines[4])
        record[field] = value if value is not None else not record["group_correct"]
        lines[4] = json.dumps(record)
        (copy / "samples.jsonl").write_text("\n".join(lines) + "\n")
        with pytest.raises(ValueError, match=rf"samples\.jsonl, line 5 \(id '{record['id']}'\): {message}"):
            compare(folders["a"], copy)


def test_module_doctests():
    assert doctest.testmod(vismin_compare).failed == 0


def test_an_eval_run_against_its_submission_scored_again(vismin_built, tmp_path, capsys):
    run, scored = tmp_path / "run", tmp_path / "scored"
    assert main(["eval", "vismin", "--out", str(run), "--no-progress"]) == 0  # the embedded tiny CLIP
    assert main(["score", "vismin", str(run / "vismin_scores.csv"), "--out", str(scored)]) == 0
    capsys.readouterr()
    assert main(["compare", str(run), str(scored), "--resamples", "100"]) == 0
    printed = capsys.readouterr().out
    assert f"- A: {json.loads((run / 'results.json').read_text())['model']} (" in printed  # the model's name
    same = compare(run, scored, resamples=100)  # one result twice: nothing differs
    assert all(e["difference"] == 0 and e["p_value"] == 1.0 for e in same["scores"].values())
    assert same["a"]["model"] and same["b"]["model"] is None and "| all | group |" in printed
