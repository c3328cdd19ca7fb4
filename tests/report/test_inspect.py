"""``diffbench inspect`` and :mod:`diffbench.report.inspect` on runs written by the real CLI: VisMin
submissions scored by ``diffbench score vismin`` on the built sample, caption predictions scored by
``diffbench score captions`` on the built OmniDiff sample. What is listed is checked against the official
rule written out on the submitted similarities, and against samples.jsonl sorted here."""

from __future__ import annotations

import doctest
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from diffbench.captions import inspect as captions_inspect
from diffbench.cli import main
from diffbench.data import building
from diffbench.report import inspect
from diffbench.vismin import inspect as vismin_inspect

FIELDS = ["T0_I0", "T0_I1", "T1_I0", "T1_I1"]
OMNIDIFF_N = 60  # 12 in the test split


def official(frame: pd.DataFrame) -> pd.DataFrame:
    """The official rule (vismin-bench metric.py), written out: text, image, group right per sample (strict >)."""
    text = (frame.T0_I0 > frame.T1_I0) & (frame.T1_I1 > frame.T0_I1)
    image = (frame.T0_I0 > frame.T0_I1) & (frame.T1_I1 > frame.T1_I0)
    return pd.DataFrame({"text": text.to_numpy(), "image": image.to_numpy(), "group": (text & image).to_numpy()},
                        index=frame["id"])


@pytest.fixture(scope="module")
def vismin_runs(vismin_built, tmp_path_factory):
    """Folders of ``diffbench score vismin`` for A (random similarities with ties, a third made right) and B
    (A with half the samples made right and the others wrong both ways), and the two submissions."""
    root = tmp_path_factory.mktemp("inspect-vismin")
    ids = building.load_built("vismin", "bench", "test")["id"]
    rng = np.random.default_rng(5)
    a = pd.DataFrame({"id": ids, **{f: rng.integers(0, 3, len(ids)) / 2 for f in FIELDS}})
    a.loc[rng.random(len(ids)) < 1 / 3, FIELDS] = [1.0, 0.0, 0.0, 1.0]
    b = a.copy()
    right = rng.random(len(ids)) < 1 / 2
    b.loc[right, FIELDS] = [1.0, 0.0, 0.0, 1.0]
    b.loc[~right, FIELDS] = [0.0, 1.0, 1.0, 0.0]
    for name, frame in (("a", a), ("b", b)):
        frame.to_csv(root / f"{name}.csv", index=False)
        assert main(["score", "vismin", str(root / f"{name}.csv"), "--out", str(root / name)]) == 0
    return root, a, b


@pytest.fixture(scope="module")
def omnidiff_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect-omnidiff-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(building, "cache_root", lambda: root)
        building.build_configs("omnidiff", ["default"], "sample", n=OMNIDIFF_N, seed=0, image_size=(32, 32))
    return root


@pytest.fixture(scope="module")
def caption_runs(omnidiff_cache, tmp_path_factory):
    """Folders of ``diffbench score captions`` (default metrics: BLEU, METEOR, ROUGE-L, CIDEr-D) on the
    OmniDiff sample: ``a`` (a third of the samples given their first reference, the others its words
    reversed, a few dropped), ``b`` (the other way round)."""
    root = tmp_path_factory.mktemp("inspect-captions")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(building, "cache_root", lambda: omnidiff_cache)
        test = building.load_built("omnidiff", None, "test")
        references = {i: list(c) for i, c in zip(test["id"], test["captions"])}
        # each reference's words reversed, its first few dropped (as many as the pair's position mod 4)
        reversed_words = {i: " ".join(refs[0].split()[n % 4:][::-1]) for n, (i, refs) in enumerate(references.items())}
        a = {i: refs[0] if n % 3 == 0 else reversed_words[i] for n, (i, refs) in enumerate(references.items())}
        b = {i: reversed_words[i] if n % 3 == 0 else refs[0] for n, (i, refs) in enumerate(references.items())}
        for name, predictions in (("a", a), ("b", b)):
            (root / f"{name}.json").write_text(json.dumps(predictions))
            assert main(["score", "captions", str(root / f"{name}.json"), "--dataset", "omnidiff",
                         "--out", str(root / name)]) == 0
    return root


@pytest.fixture
def omnidiff_built(omnidiff_cache, monkeypatch):
    monkeypatch.setattr(building, "cache_root", lambda: omnidiff_cache)


def json_rows(capsys, *argv) -> list[dict]:
    assert main(["inspect", *map(str, argv), "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def samples_of(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


# -- VisMin -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["text", "image", "group"])
def test_wrong_lists_exactly_the_samples_the_official_rule_marks_wrong(vismin_runs, capsys, outcome):
    root, a, _ = vismin_runs
    rule = official(a)
    listed = json_rows(capsys, root / "a", "--wrong", outcome)
    assert sorted(r["id"] for r in listed) == sorted(rule.index[~rule[outcome]])
    assert 0 < len(listed) < len(a)  # the submission has both kinds: the filter filtered
    right = json_rows(capsys, root / "a", "--right", "text", "--wrong", "image", "--category", "counting")
    counting = set(a["id"][a["id"].str.startswith("counting/")])
    expected = rule.index[rule["text"] & ~rule["image"]]
    assert sorted(r["id"] for r in right) == sorted(i for i in expected if i in counting)
    # each row carries the submitted similarities and the build's texts
    first = listed[0]
    submitted = a.set_index("id").loc[first["id"]]
    assert [first[f] for f in FIELDS] == submitted[FIELDS].tolist()
    bench = building.load_built("vismin", "bench", "test")
    position = bench["id"].index(first["id"])
    assert (first["text_0"], first["text_1"]) == (bench[position]["text_0"], bench[position]["text_1"])


def test_the_table_shows_the_wrong_samples_first(vismin_runs, capsys):
    root, a, _ = vismin_runs
    rule = official(a)
    assert main(["inspect", str(root / "a"), "-n", "5"]) == 0
    printed = capsys.readouterr().out
    shown = [line.split()[0] for line in printed.splitlines() if line.split() and line.split()[0] in rule.index]
    assert len(shown) == 5 and not rule.loc[shown, "group"].any()
    assert f"{len(a)} samples" in printed and "the first 5 shown" in printed
    ordered = inspect.rows(inspect.load(root / "a"))
    verdicts = [r["group_correct"] for r in ordered]
    assert verdicts == sorted(verdicts)  # every group-wrong sample before every group-right one


def test_side_by_side_finds_exactly_the_samples_a_gets_right_and_b_wrong(vismin_runs, capsys):
    root, a, b = vismin_runs
    rule_a, rule_b = official(a), official(b)
    for outcome in ("text", "image", "group"):
        only_a = json_rows(capsys, root / "a", root / "b", "--only-a", outcome)
        assert sorted(r["id"] for r in only_a) == sorted(rule_a.index[rule_a[outcome] & ~rule_b[outcome]])
        only_b = json_rows(capsys, root / "a", root / "b", "--only-b", outcome)
        assert sorted(r["id"] for r in only_b) == sorted(rule_a.index[~rule_a[outcome] & rule_b[outcome]])
    assert only_a and only_b  # both kinds of discordant samples occur
    every = json_rows(capsys, root / "a", root / "b")
    assert len(every) == len(a)
    kinds = [0 if r["a_group_correct"] > r["b_group_correct"] else 1 if r["a_group_correct"] < r["b_group_correct"]
             else 2 for r in every]
    assert kinds == sorted(kinds)  # A right and B wrong first, then B right and A wrong, then the rest
    assert all(r["a_T0_I0"] == a.set_index("id").loc[r["id"], "T0_I0"] for r in every)


def test_two_runs_on_other_data_or_samples_are_refused(vismin_runs, tmp_path, capsys):
    root, *_ = vismin_runs
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(root / "b", rebuilt)
    results = json.loads((rebuilt / "results.json").read_text())
    results["provenance"]["seed"] = 99  # the same generator drawing other samples
    (rebuilt / "results.json").write_text(json.dumps(results))
    assert main(["inspect", str(root / "a"), str(rebuilt)]) == 2
    assert "scored on different data" in capsys.readouterr().err
    fewer = tmp_path / "fewer"
    shutil.copytree(root / "b", fewer)
    lines = (fewer / "samples.jsonl").read_text().splitlines(keepends=True)
    (fewer / "samples.jsonl").write_text("".join(lines[1:]))
    results = json.loads((fewer / "results.json").read_text())
    results["samples"] -= 1
    (fewer / "results.json").write_text(json.dumps(results))
    assert main(["inspect", str(root / "a"), str(fewer)]) == 2
    assert "cover different samples" in capsys.readouterr().err
    shared = json_rows(capsys, root / "a", fewer, "--intersect")
    assert len(shared) == len(lines) - 1


def test_images_come_back_from_the_build_and_their_absence_never_fails_the_listing(vismin_runs, tmp_path, capsys,
                                                                                   monkeypatch):
    root, a, _ = vismin_runs
    run = inspect.load(root / "a")
    bench = building.load_built("vismin", "bench", "test")
    sample_id = bench["id"][7]
    found = inspect.images(run, sample_id)
    expected = bench[7]
    assert set(found) == {"image_0", "image_1"}
    for column in found:
        assert np.array_equal(np.asarray(found[column]), np.asarray(expected[column]))
    example = inspect.example(run, sample_id)
    assert example["text_0"] == expected["text_0"] and example["group_correct"] == bool(official(a).loc[sample_id, "group"])
    # the same run, the build gone: the rows still come, without texts or images, saying why
    monkeypatch.setattr(building, "cache_root", lambda: tmp_path / "empty-cache")
    run = inspect.load(root / "a")
    assert inspect.images(run, sample_id) is None and "not built" in inspect.built(run).note
    assert all(r["text_0"] is None for r in inspect.rows(run, texts=True))
    assert main(["inspect", str(root / "a"), "--wrong", "group"]) == 0
    printed = capsys.readouterr().out
    assert "not built: run `diffbench build vismin --config bench`" in printed
    assert any(line.startswith(i) for i in official(a).index[~official(a)["group"]] for line in printed.splitlines())


def test_a_samples_jsonl_alone_is_a_run_and_its_text_is_shown_as_text(vismin_runs, tmp_path, capsys):
    root, a, _ = vismin_runs
    records = samples_of(root / "a")
    records[0] = {**records[0], "id": "evil\x1b]0;pwned\x07\u202e", "group_correct": False}
    bare = tmp_path / "upload.jsonl"
    bare.write_text("".join(json.dumps(r) + "\n" for r in records))
    run = inspect.load(bare)
    assert run.results is None and run.benchmark == "vismin" and len(run.records) == len(a)
    assert inspect.images(run, records[0]["id"]) is None  # an id the build does not hold: no images, no error
    assert main(["inspect", str(bare), "--wrong", "group", "-n", "0"]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\u202e" not in printed and "evil\\x1b]0;pwned\\x07\\u202e" in printed
    (tmp_path / "damaged.jsonl").write_text(bare.read_text() + "{not json\n")
    assert main(["inspect", str(tmp_path / "damaged.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"damaged.jsonl, line {len(records) + 1}: not valid JSON" in err and err.count("\n") == 1


def test_filters_that_do_not_apply_are_one_line_errors(vismin_runs, caption_runs, capsys):
    root, *_ = vismin_runs
    for argv, said in ((["--worst", "cider"], "right or wrong"), (["--change-type", "color"], "category"),
                       (["--category", "colour"], "choose from object"), (["--only-a", "group"], "give OTHER")):
        assert main(["inspect", str(root / "a"), *argv]) == 2
        assert said in capsys.readouterr().err
    assert main(["inspect", str(caption_runs / "a"), "--wrong", "group"]) == 2
    assert "not right or wrong" in capsys.readouterr().err
    assert main(["inspect", str(root / "a"), str(caption_runs / "a")]) == 2
    assert "different benchmarks" in capsys.readouterr().err


# -- captions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric, key", [("cider", "CIDEr"), ("meteor", "METEOR")])
def test_worst_order_equals_sorting_samples_jsonl(caption_runs, capsys, metric, key):
    records = samples_of(caption_runs / "a")
    assert len({r[key] for r in records}) > 2  # the order is not the file's by accident
    listed = json_rows(capsys, caption_runs / "a", "--worst", metric)
    assert [r["id"] for r in listed] == [r["id"] for r in sorted(records, key=lambda r: r[key])]
    assert [(r["prediction"], r["references"], r[key]) for r in listed] == \
        [(r["prediction"], r["references"], r[key]) for r in sorted(records, key=lambda r: r[key])]
    change_type = records[0]["change_types"][0]
    typed = json_rows(capsys, caption_runs / "a", "--worst", metric, "--change-type", change_type, "-n", "1")
    assert [r["id"] for r in typed] == [min((r for r in records if change_type in r["change_types"]),
                                            key=lambda r: r[key])["id"]]


def test_captions_side_by_side_is_a_minus_b(caption_runs, capsys, omnidiff_built):
    a = {r["id"]: r for r in samples_of(caption_runs / "a")}
    b = {r["id"]: r for r in samples_of(caption_runs / "b")}
    listed = json_rows(capsys, caption_runs / "a", caption_runs / "b")
    assert sorted(r["id"] for r in listed) == sorted(a)
    for row in listed:
        assert row["CIDEr_a_minus_b"] == a[row["id"]]["CIDEr"] - b[row["id"]]["CIDEr"]
        assert (row["a_prediction"], row["b_prediction"]) == (a[row["id"]]["prediction"], b[row["id"]]["prediction"])
    differences = [r["CIDEr_a_minus_b"] for r in listed]
    assert differences == sorted(differences, reverse=True) and differences[0] > 0 > differences[-1]
    worst = json_rows(capsys, caption_runs / "a", caption_runs / "b", "--worst", "meteor")
    assert [r["METEOR_a_minus_b"] for r in worst] == sorted(a[i]["METEOR"] - b[i]["METEOR"] for i in a)
    assert main(["inspect", str(caption_runs / "a"), str(caption_runs / "b"), "-n", "2"]) == 0
    printed = capsys.readouterr().out
    assert listed[0]["id"] in printed and "A prediction" in printed


def test_caption_images_come_back_from_the_build(caption_runs, omnidiff_built):
    run = inspect.load(caption_runs / "a" / "samples.jsonl")  # the run: results.json is beside it
    assert run.results is not None and run.benchmark == "omnidiff"
    test = building.load_built("omnidiff", None, "test")
    found = inspect.images(run, test["id"][3])
    for column in ("image_before", "image_after"):
        assert np.array_equal(np.asarray(found[column]), np.asarray(test[3][column]))
    table = inspect.frame(inspect.rows(run, worst="cider", n=3))
    assert list(table["id"]) == [r["id"] for r in inspect.rows(run, worst="cider")[:3]]


def test_module_doctests():
    for module in (inspect, vismin_inspect, captions_inspect):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_answers_show_what_the_lenient_parser_read(vismin_built, tmp_path, capsys):
    from diffbench.vismin.schema import ANSWER_COLUMNS, QUESTION_OPTIONS, parse_answer

    ids = building.load_built("vismin", "bench", "test")["id"]
    replies = ["(A) the first one", "B", "First.", "I cannot tell", "Second image", "A or B"]
    frame = pd.DataFrame({"id": ids, **{c: [replies[(n + k) % len(replies)] for n in range(len(ids))]
                                        for k, c in enumerate(ANSWER_COLUMNS)}})
    frame.to_csv(tmp_path / "answers.csv", index=False)
    assert main(["score", "vismin", str(tmp_path / "answers.csv"), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    listed = {r["id"]: r for r in json_rows(capsys, tmp_path / "run", "-n", "0")}
    for _, given in frame.iterrows():
        row = listed[given["id"]]
        for column, options in zip(ANSWER_COLUMNS, QUESTION_OPTIONS):
            assert row[column] == given[column] and row[f"{column}_parsed"] == parse_answer(given[column], options)
    assert main(["inspect", str(tmp_path / "run"), "-n", "0"]) == 0
    assert "[unread]" in capsys.readouterr().out  # after an answer, what the parser read: nothing
    assert any("[unread]" in inspect.format_table([row], inspect.load(tmp_path / "run").view) for row in listed.values())
