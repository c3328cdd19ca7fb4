"""``--limit``: a stratified, deterministic, nested draw; a rerun with a larger limit extends the run; a refusal
names what really differs (issue 20, item 4).

The draw's properties are checked on plain lists (every limit, skewed strata, shuffled rows); the run's on the
built VisMin sample (40 samples, ten a category) with the embedded tiny CLIP, through ``diffbench.cli.main``.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from diffbench.harness import draws, outputs

CATEGORIES = ("object", "attribute", "relation", "counting")


# -- the draw ---------------------------------------------------------------------------------------------


def skewed(sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    keys = [key for key, size in sizes.items() for _ in range(size)]
    return keys, [f"{key}/{i}" for i, key in enumerate(keys)]


SIZES = {"object": 622, "attribute": 294, "relation": 616, "counting": 552, "rare": 3}  # VisMin's, plus a tiny one


def test_every_draw_is_nested_in_the_next_and_covers_every_stratum():
    keys, ids = skewed(SIZES)
    order = draws.draw_order(keys, ids)
    assert sorted(order) == list(range(len(keys)))  # the whole sequence is every row once
    previous: set[int] = set()
    for count in (1, 2, 3, 5, 7, 20, 40, 100, 333, len(keys)):
        chosen = set(draws.draw_order(keys, ids, count=count))
        assert len(chosen) == count and previous <= chosen, count
        per = Counter(keys[i] for i in chosen)
        if count >= len(SIZES):
            assert set(per) == set(SIZES), (count, per)  # at least one a stratum once N allows
        for key, size in SIZES.items():  # then in proportion: within one row of the exact share, or all it has
            assert abs(per[key] - count * size / len(keys)) < 1.5 or per[key] in (1, size), (count, key, per)
        previous = chosen


def test_the_draw_depends_on_the_ids_only():
    """Row order and a fresh process change nothing: a hash of each id, exact priorities."""
    keys, ids = skewed(SIZES)
    rows = list(zip(keys, ids))
    random.Random(7).shuffle(rows)
    shuffled_keys, shuffled_ids = map(list, zip(*rows))
    first = {ids[i] for i in draws.draw_order(keys, ids, count=50)}
    assert {shuffled_ids[i] for i in draws.draw_order(shuffled_keys, shuffled_ids, count=50)} == first
    assert {ids[i] for i in draws.draw_order(keys, ids, seed=1, count=50)} != first  # the seed is what fixes it


def test_counts_fractions_and_list_strata():
    assert [draws.sample_count(f, 2084) for f in (0.1, 0.001, 0.0001)] == [208, 2, 1]
    assert draws.sample_count(5000, 2084) == 2084 and draws.sample_count(None, 7) == 7
    # a pair's change types, in any order, are one stratum
    keys = [draws.stratum_key(v) for v in (["move", "add"], ["add", "move"], ["color"], [], None)]
    assert keys == ["add+move", "add+move", "color", "", ""]


def test_limit_values_are_checked_in_one_line(capsys):
    from diffbench.cli import main
    from diffbench.harness.options import RunOptions

    for bad in ("0", "-3", "1.0", "1.5", "nan", "ten"):
        assert main(["eval", "vismin", "--limit", bad]) == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]  # argparse's usage, then the one error line
        assert line.startswith("diffbench eval: error: argument --limit: ") and "limit must be a number of samples (20) or a fraction of them between 0 and 1 (0.1)" in line, line
    with pytest.raises(ValueError, match="limit must be"):
        RunOptions(limit=True)


# -- run.json: what a refusal names ----------------------------------------------------------------------


def manifest(**changes) -> dict:
    base = {"task": "vismin", "dataset": "vismin", "config": "bench", "split": "test", "model": "models/a",
            "revision": None, "processor": None, "kind": "contrastive", "model_type": "clip", "preset": None,
            "limit": 20, "samples": 20, "split_samples": 40, "sample_draw": draws.record("category"),
            "data_files": None, "fast_decode": False, "dtype": "float32",
            "weights": {"source": "local", "sha256": "1" * 64}, "dataset_fingerprint": "f" * 16,
            "provenance": {"source": "synthetic"}, "settings": {}, "environment": {"date": "today"}}
    return {**base, **changes}


@pytest.mark.parametrize("changes, said, unsaid", [
    ({"model": "models/b", "weights": {"source": "local", "sha256": "2" * 64}, "model_type": "siglip"},
     "another run: another model (model: 'models/a' -> 'models/b')", ["weights", "model_type"]),
    ({"weights": {"source": "local", "sha256": "2" * 64}}, "the model's weights changed since", ["model"]),
    ({"dataset_fingerprint": "e" * 16}, "the data was rebuilt or changed since these predictions were made "
                                        "(dataset_fingerprint: 'ffffffffffffffff' -> 'eeeeeeeeeeeeeeee')", ["weights"]),
    ({"split": "train", "dataset_fingerprint": "e" * 16}, "other data (split: 'test' -> 'train')",
     ["dataset_fingerprint"]),
    ({"dtype": "float16"}, "other settings (dtype: 'float32' -> 'float16')", ["model", "weights"]),
    ({"sample_draw": {**draws.record("category"), "seed": 1}, "limit": 30, "samples": 30},
     "--limit drew its samples another way", []),
])
def test_a_refusal_names_what_differs_and_how_to_proceed(tmp_path, changes, said, unsaid):
    outputs.check_manifest(tmp_path, manifest())
    with pytest.raises(outputs.RunMismatchError) as refused:
        outputs.check_manifest(tmp_path, manifest(**changes))
    message = str(refused.value)
    assert said in message and message.endswith("use another --out, or --overwrite to compute afresh"), message
    for key in unsaid:  # keys that differ only as a consequence are not named
        assert f"{key}: " not in message, (key, message)
    assert json.loads((tmp_path / "run.json").read_text())["model"] == "models/a"  # nothing written


def test_draws_may_grow_never_shrink_and_an_older_first_rows_run_is_named(tmp_path):
    outputs.check_manifest(tmp_path, manifest())
    grown = manifest(limit=None, samples=40, sample_draw=None)
    assert outputs.check_manifest(tmp_path, grown)["samples"] == 20  # the earlier draw, for the loop to extend
    with pytest.raises(outputs.RunMismatchError, match=r"holds a run of 40 samples \(no --limit\); this one draws "
                                                       r"20 of them \(--limit 20\).*rerun with --limit 40 or more"):
        outputs.check_manifest(tmp_path, manifest())
    older = {k: v for k, v in manifest().items() if k not in ("samples", "split_samples", "sample_draw")}
    outputs.write_json(tmp_path / "run.json", older)  # what diffbench wrote before the draw: the first 20 rows
    with pytest.raises(outputs.RunMismatchError, match="an earlier diffbench, whose --limit 20 took the first rows"):
        outputs.check_manifest(tmp_path, manifest())


# -- the run ----------------------------------------------------------------------------------------------


@pytest.fixture
def eval_vismin(eval_cli):
    """``diffbench eval vismin ARGS`` with the default model, the data read in this process: (exit code, stderr)."""
    def run(*args):
        code, _, err = eval_cli("vismin", *args, "--num-workers", 0, check=False)
        return code, err

    return run


def scores(out: Path) -> dict[str, dict]:
    with open(out / "vismin_scores.csv", newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def category_sizes() -> Counter:
    from diffbench.data.building import load_built

    bench = load_built("vismin", "bench", "test")
    return Counter(bench.features["category"].int2str(bench["category"]))


def assert_stratified(results: dict, count: int) -> None:
    """Every category drawn, each within one sample of its share of ``count``."""
    sizes = category_sizes()
    drawn = {c: g["samples"] for c, g in results["groups"].items()}
    assert set(drawn) == set(CATEGORIES) and sum(drawn.values()) == count == results["samples"], drawn
    for category, size in sizes.items():
        assert abs(drawn[category] - count * size / sum(sizes.values())) <= 1, (drawn, sizes)


def this_run_row(out: Path) -> str:
    [row] = [line for line in (out / "results.md").read_text().splitlines() if line.startswith("| ") and "(this run)" in line]
    return row


@pytest.mark.slow
def test_limit_20_covers_every_category_and_limit_40_extends_it(vismin_built, tmp_path, eval_vismin):
    out = tmp_path / "run"
    code, err = eval_vismin("--limit", 20, "--out", out)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert_stratified(results, 20)  # was: the first 20 rows, all "object", "–" for three categories
    assert "–" not in this_run_row(out)
    assert results["protocol"]["sample_draw"] == "20 of 40 samples (--limit 20), stratified by category"
    run = json.loads((out / "run.json").read_text())
    assert (run["limit"], run["samples"], run["split_samples"]) == (20, 20, 40)
    assert run["environment"]["predictions"] == {"kept": 0, "predicted": 20}
    first = scores(out)

    code, err = eval_vismin("--limit", 40, "--out", out)  # over the same folder: extended
    assert code == 0, err
    assert "resuming: 20 of 40 samples already predicted" in err and "20 samples, 1 process(es)" in err
    run = json.loads((out / "run.json").read_text())
    assert run["environment"]["predictions"] == {"kept": 20, "predicted": 20} and run["samples"] == 40
    extended = scores(out)
    assert len(extended) == 40 and all(extended[i] == row for i, row in first.items())  # kept as they were
    results = json.loads((out / "results.json").read_text())
    assert results["samples"] == 40 and "sample_draw" not in results["protocol"]  # the whole split now

    code, err = eval_vismin("--limit", 0.25, "--out", out)  # fewer than the folder holds: refused, nothing lost
    assert code == 2 and "holds a run of 40 samples (--limit 40); this one draws 10 of them (--limit 0.25)" in err
    assert scores(out) == extended


@pytest.mark.slow
def test_a_fraction_draws_its_share_and_another_model_is_named(vismin_built, tmp_path, eval_vismin):
    from diffbench.data.building import load_built
    from diffbench.models import tiny as tiny_models

    out = tmp_path / "run"
    code, err = eval_vismin("--limit", 0.25, "--out", out)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert_stratified(results, 10)
    bench = load_built("vismin", "bench", "test")
    assert set(scores(out)) == set(draws.draw(bench, 10, "category")["id"])

    other = tiny_models.build_tiny_clip(tmp_path / "other-clip", words=["a"], seed=1)
    code, err = eval_vismin("--model", other, "--limit", 0.25, "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "holds predictions of another run: another model (model: " in err and f"-> '{other}')" in err
    assert "weights" not in err  # the weights differ because the model does: not named as a reason of its own
