"""`diffbench score vismin`: official submission CSVs joined on the built benchmark, the paper's table."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from diffbench.cli import main
from diffbench.vismin.published import published_results
from diffbench.vismin.report import format_table
from diffbench.vismin.scoring import score_submission
from diffbench.vismin.submission import read_submission

FIELDS = ["T0_I0", "T0_I1", "T1_I0", "T1_I1"]


@pytest.fixture(scope="module")
def bench(vismin_built):
    from diffbench.data.building import load_built

    return load_built("vismin", "bench", "test")


@pytest.fixture(scope="module")
def keys(bench):
    table = bench.select_columns(["id", "upstream_id", "category"]).to_pandas()
    table["category"] = bench.features["category"].int2str(table["category"].tolist())
    return table


def random_scores(keys, seed=0):
    rng = np.random.default_rng(seed)
    # Few distinct values: ties, which count as wrong.
    return pd.DataFrame({"id": keys["id"], **{f: rng.integers(0, 3, len(keys)) / 2 for f in FIELDS}})


def official_cells(frame, categories):
    counts = defaultdict(lambda: [0, 0, 0, 0])
    for row, category in zip(frame.to_dict("records"), categories):
        text = row["T0_I0"] > row["T1_I0"] and row["T1_I1"] > row["T0_I1"]
        image = row["T0_I0"] > row["T0_I1"] and row["T1_I1"] > row["T1_I0"]
        c = counts[category]
        c[0] += text
        c[1] += image
        c[2] += text and image
        c[3] += 1
    return {k: [round(v[i] * 100 / v[3], 2) for i in range(3)] for k, v in counts.items()}


def write(frame, path):
    frame.to_csv(path, index=False)
    return path


def test_scores_match_the_official_rules_in_both_id_forms(bench, keys, tmp_path):
    ours = random_scores(keys)
    expected = official_cells(ours, keys["category"])
    upstream = ours.assign(id=keys["upstream_id"], category=keys["category"]).sample(frac=1, random_state=1)
    positional = ours.assign(id=keys["upstream_id"])  # the official scorer's row order, no category column
    results = [score_submission(write(f, tmp_path / f"{name}.csv"), bench)
               for name, f in (("ours", ours), ("upstream", upstream), ("positional", positional))]
    for result in results:
        cells = result["groups"]
        assert {c: [round(cells[c]["scores"][k], 2) for k in ("text", "image", "group")] for c in cells} == expected
        assert result["scores"] == results[0]["scores"] and result["ci95"] == results[0]["ci95"]
        assert result["kind"] == "scores" and result["samples"] == len(keys) and result["missing_ids"] == []


def test_answers_with_the_lenient_and_strict_parser(bench, keys, tmp_path):
    answers = pd.DataFrame({"id": keys["id"], "Text_Q0": "The answer is (A).", "Text_Q1": "B", "Image_Q0": "First",
                            "Image_Q1": "Second"})
    path = write(answers, tmp_path / "answers.csv")
    assert score_submission(path, bench)["scores"]["group"] == 100.0
    strict = score_submission(path, bench, parser="strict")
    assert strict["protocol"]["parser"] == "strict"
    assert (strict["scores"]["text"], strict["scores"]["image"]) == (0.0, 100.0)


def test_cli_prints_the_table_and_writes_results(bench, keys, tmp_path, capsys):
    perfect = pd.DataFrame({"id": keys["id"], "T0_I0": 1.0, "T0_I1": 0.0, "T1_I0": 0.0, "T1_I1": 1.0})
    path = write(perfect, tmp_path / "perfect.csv")
    out = tmp_path / "out"
    assert main(["score", "vismin", str(path), "--out", str(out), "--compare", "GPT4-o"]) == 0
    printed = capsys.readouterr().out
    assert "| Model | Object T | Object I | Object G | Attribute T" in printed
    assert "| perfect | 100.00 ±0.00 | 100.00 ±0.00 | 100.00 ±0.00 |" in printed
    assert "| GPT4-o (zero-shot, published) | 95.51 |" in printed
    results = json.loads((out / "results.json").read_text())
    assert results == json.loads(json.dumps(score_submission(path, bench)))
    assert results["scores"]["avg"] == 100.0
    assert (out / "results.md").read_text().strip() in printed
    from diffbench.data.provenance import SYNTHETIC_NOTE

    # The session's build is the synthetic sample: results.json says so, and so do the table and the figure.
    assert results["provenance"]["dataset"] == "vismin" and results["provenance"]["synthetic"] is True
    assert results["provenance"]["n"] == len(keys)
    assert SYNTHETIC_NOTE in (out / "results.md").read_text() and SYNTHETIC_NOTE in (out / "results.svg").read_text()
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "GPT4-o (published)" in (out / "results.svg").read_text()


def test_cli_writes_into_out_only_and_takes_a_name(bench, keys, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(random_scores(keys), tmp_path / "scores.csv")
    assert main(["score", "vismin", str(path), "--out", "runs/a", "--name", "my | model"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs" / "a").iterdir()) == [
        ".diffbench-files.json", "results.json", "results.md", "results.png", "results.svg",
        "samples.jsonl"]  # and their manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "scores.csv"]  # nothing in the cwd
    assert "| my \\| model | " in capsys.readouterr().out  # the label cannot break the table


def test_cli_missing_samples_hint_names_the_flag(bench, keys, tmp_path, capsys):
    path = write(random_scores(keys).iloc[2:], tmp_path / "partial.csv")
    assert main(["score", "vismin", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "2 of" in err and "--allow-missing scores the others" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing half-written
    assert main(["score", "vismin", str(path), "--out", str(tmp_path / "o"), "--allow-missing"]) == 0


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys, vismin_built):
    path = tmp_path / "bad.csv"
    path.write_text("id,T0_I0,T0_I1,T1_I0\nobject/0,1,0,0\n")
    assert main(["score", "vismin", str(path)]) == 2
    err = capsys.readouterr().err
    assert "missing columns ['T1_I1']" in err and str(path) in err


CSV_ERRORS = [
    ("non-numeric", "id,T0_I0,T0_I1,T1_I0,T1_I1\nobject/0,1,0,0,1\nobject/1,1,high,0,1\n", r"bad\.csv, line 3 \(id 'object/1'\), column T0_I1: 'high' is not a finite number"),
    ("nan", "id,T0_I0,T0_I1,T1_I0,T1_I1\nobject/0,nan,0,0,1\n", r"line 2 .*column T0_I0: 'nan'"),
    ("inf", "id,T0_I0,T0_I1,T1_I0,T1_I1\nobject/0,1,0,0,inf\n", r"line 2 .*column T1_I1: 'inf'"),
    ("empty cell", "id,T0_I0,T0_I1,T1_I0,T1_I1\nobject/0,1,,0,1\n", r"line 2 .*column T0_I1: ''"),
    ("missing answers column", "id,Text_Q0,Text_Q1,Image_Q0\nobject/0,A,B,First\n", r"missing columns \['Image_Q1'\]"),
    ("no id column", "T0_I0,T0_I1,T1_I0,T1_I1\n1,0,0,1\n", r"missing columns \['id'\]"),
    ("both kinds", "id,T0_I0,T0_I1,T1_I0,T1_I1,Text_Q0,Text_Q1,Image_Q0,Image_Q1\n", r"both the score columns and the answer columns"),
    ("empty id", "id,T0_I0,T0_I1,T1_I0,T1_I1\n,1,0,0,1\n", r"line 2, column id: empty id"),
    ("header only", "id,T0_I0,T0_I1,T1_I0,T1_I1\n", r"a header but no rows"),
    ("empty file", "", r"the file is empty"),
]


@pytest.mark.parametrize("text,message", [pytest.param(t, m, id=n) for n, t, m in CSV_ERRORS])
def test_read_submission_names_file_line_and_column(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_submission(path)


def test_read_submission_keeps_empty_answers_as_wrong_strings(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("id,Text_Q0,Text_Q1,Image_Q0,Image_Q1\nobject/0,,B,First,Second\n")
    frame = read_submission(path)
    assert frame.attrs["kind"] == "answers" and frame.at[0, "Text_Q0"] == ""


def test_answers_that_are_not_strings_in_a_frame(bench, keys):
    frame = pd.DataFrame({"id": keys["id"][:1], "Text_Q0": [1], "Text_Q1": ["B"], "Image_Q0": ["First"], "Image_Q1": ["Second"]})
    with pytest.raises(ValueError, match=r"line 2 \(id 'object/0'\), column Text_Q0: 1 is not a string"):
        score_submission(frame, bench)


def test_missing_extra_and_duplicate_ids_are_reported_together(bench, keys):
    frame = random_scores(keys)
    frame = pd.concat([frame.iloc[2:], frame.iloc[[5]], frame.iloc[[6]].assign(id="object/999")], ignore_index=True)
    with pytest.raises(ValueError) as err:
        score_submission(frame, bench)
    message = str(err.value)
    assert f"1 duplicate ids ({keys['id'][5]} at lines [5, {len(keys)}])" in message
    assert "1 ids not in the dataset (object/999 at line" in message
    assert f"2 of {len(keys)} dataset samples missing ({keys['id'][0]}, {keys['id'][1]})" in message


def test_allow_missing_scores_the_rest_and_says_so(bench, keys):
    frame = random_scores(keys).iloc[3:]
    results = score_submission(frame, bench, allow_missing=True)
    assert results["missing_ids"] == keys["id"][:3].tolist()
    assert results["samples"] == len(keys) - 3
    assert f"Scored {len(keys) - 3:,} of {len(keys):,} samples: 3 missing." in format_table(results)


def test_ambiguous_upstream_ids(bench, keys):
    frame = random_scores(keys).assign(id=keys["upstream_id"]).iloc[::-1]  # not in the dataset's order
    with pytest.raises(ValueError, match="integer ids restart at 0 in each VisMin category"):
        score_submission(frame, bench)


def test_category_column_contradicting_the_id(bench, keys):
    frame = random_scores(keys).assign(category="object")
    with pytest.raises(ValueError, match=r"column category: 'object' contradicts id 'attribute/0'"):
        score_submission(frame, bench)


def test_id_in_neither_form(bench, keys):
    frame = random_scores(keys).assign(id=["x"] + keys["id"][1:].tolist())
    with pytest.raises(ValueError, match=r"line 2, column id: 'x' is neither <category>/<id> nor an upstream integer id"):
        score_submission(frame, bench)


def test_published_results_are_the_shipped_copy(shared_dir):
    table = published_results()
    assert len(table) == 17 and set(table["table"]) == {"zero-shot", "fine-tuned"}
    shipped = pd.read_csv(shared_dir / "reference" / "vismin_published_results.csv")
    pd.testing.assert_frame_equal(table, shipped)
    assert table.loc[table.model == "GPT4-o", "counting_group"].item() == 68.42


def test_format_table_unknown_comparison(bench, keys):
    results = score_submission(random_scores(keys), bench)
    with pytest.raises(ValueError, match="no published VisMin result for 'CLIP-XL'; known: Random Chance"):
        format_table(results, compare=["CLIP-XL"])


def test_module_doctest():
    import doctest

    from diffbench.vismin import submission as vismin_submission

    results = doctest.testmod(vismin_submission)
    assert results.failed == 0 and results.attempted >= 1


# -- issue 20: comparable numbers ---------------------------------------------------------------------------


def test_intervals_are_reproducible_and_hold_the_score(bench, keys, tmp_path):
    """A 95% bootstrap interval for every score and every category, the same for the same file and seed, another
    seed another interval; each interval holds its score; one layout (schema, benchmark, samples, scores, ci95,
    groups, provenance, protocol)."""
    path = write(random_scores(keys), tmp_path / "scores.csv")
    first, again = score_submission(path, bench), score_submission(path, bench)
    other_seed = score_submission(path, bench, seed=1)
    assert first == again and first["ci95"] != other_seed["ci95"]
    assert {"schema", "benchmark", "samples", "scores", "ci95", "groups", "provenance", "protocol"} <= set(first)
    assert first["schema"] == "diffbench.results/1" and first["scale"] == "percent"
    assert set(first["ci95"]) == set(first["scores"]) == {"text", "image", "group", "avg"}
    for name, (low, high) in first["ci95"].items():
        assert low <= first["scores"][name] <= high and high - low > 0, name
    for category, cell in first["groups"].items():
        assert cell["samples"] == sum(keys["category"] == category)
        for name, (low, high) in cell["ci95"].items():
            assert low <= cell["scores"][name] <= high, (category, name)
    assert first["uncertainty"]["resamples"] == 1000 and first["uncertainty"]["seed"] == 0


def test_samples_jsonl_agrees_with_the_official_rule_on_every_sample(bench, keys, tmp_path):
    frame = random_scores(keys)
    path = write(frame, tmp_path / "scores.csv")
    out = tmp_path / "out"
    assert main(["score", "vismin", str(path), "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == frame["id"].tolist()
    for record, row in zip(records, frame.to_dict("records")):
        text = row["T0_I0"] > row["T1_I0"] and row["T1_I1"] > row["T0_I1"]
        image = row["T0_I0"] > row["T0_I1"] and row["T1_I1"] > row["T1_I0"]
        assert (record["text_correct"], record["image_correct"], record["group_correct"]) == (text, image, text and image)
        assert record["scores"] == {c: row[c] for c in ("T0_I0", "T0_I1", "T1_I0", "T1_I1")}
        assert record["category"] == record["id"].split("/")[0]


def test_results_md_shows_every_published_avg_on_one_convention(bench, keys, tmp_path):
    """GPT4-o's AVG as the mean of its twelve cells (80.44), the published 73.93 beside it with a note."""
    out = tmp_path / "out"
    assert main(["score", "vismin", str(write(random_scores(keys), tmp_path / "s.csv")), "--out", str(out)]) == 0
    table = (out / "results.md").read_text()
    gpt4o = next(line for line in table.splitlines() if line.startswith("| GPT4-o (zero-shot, published)"))
    assert gpt4o.rstrip(" |").endswith("80.44 (published 73.93²)"), gpt4o
    assert "² the published AVG is the mean of the row's four group cells" in table
    assert "45.31 (published 38.28¹)" in table and "¹ the published AVG is the mean of neither" in table
    clip = next(line for line in table.splitlines() if line.startswith("| CLIP (ViT-B/32) (zero-shot"))
    assert clip.rstrip(" |").endswith("| 41.14"), clip  # the mean of its cells; its published 41.15 rounds alike
