"""``diffbench compare``'s reading, refusals and writing (what every benchmark shares), on folders the real
``diffbench score vismin`` wrote: one line (exit 2) for results of different benchmarks, configurations,
builds or samples, for a missing, old or damaged file; compare.json / compare.md as one set."""

from __future__ import annotations

import doctest
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from diffbench import files
from diffbench.cli import main
from diffbench.report import compare as generic

FIELDS = ["T0_I0", "T0_I1", "T1_I0", "T1_I1"]


@pytest.fixture(scope="module")
def scored(vismin_built, tmp_path_factory):
    """Folders of ``diffbench score vismin``: ``a`` and ``b`` (two random submissions) and ``partial`` (b
    without its first three samples, scored with --allow-missing)."""
    from diffbench.data.building import load_built

    root = tmp_path_factory.mktemp("compare")
    ids = load_built("vismin", "bench", "test")["id"]
    for name, seed, rows in (("a", 0, slice(None)), ("b", 1, slice(None)), ("partial", 1, slice(3, None))):
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame({"id": ids, **{f: rng.integers(0, 3, len(ids)) / 2 for f in FIELDS}}).iloc[rows]
        frame.to_csv(root / f"{name}.csv", index=False)
        assert main(["score", "vismin", str(root / f"{name}.csv"), "--out", str(root / name), "--allow-missing"]) == 0
    return root


def edited(source, target, change) -> str:
    """A copy of the folder ``source`` with its results.json changed by ``change(results)``."""
    shutil.copytree(source, target)
    results = json.loads((target / "results.json").read_text())
    change(results)
    (target / "results.json").write_text(json.dumps(results))
    return str(target)


def refusal(capsys, *argv) -> str:
    assert main(["compare", *map(str, argv)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffbench compare: error: ") and captured.out == ""
    return lines[0]


def test_results_of_other_benchmarks_configurations_and_builds_are_refused(scored, tmp_path, capsys):
    a = scored / "a"
    cases = [
        (lambda r: r.update(benchmark="spot_the_diff"), "different benchmarks ('vismin' in"),
        (lambda r: r.update(config="full"), "different configs ('bench' in"),
        (lambda r: r.update(split="validation"), "different splits"),
        (lambda r: r["provenance"].update(seed=1), "scored on different data (A: the synthetic sample (n=40, seed=0"),
    ]
    for number, (change, message) in enumerate(cases):
        line = refusal(capsys, a, edited(scored / "b", tmp_path / str(number), change))
        assert message in line, line
    # the same data built again (a new build id and date) is the same data
    rebuilt = edited(scored / "b", tmp_path / "rebuilt", lambda r: r["provenance"].update(build_id="x", built_at="y"))
    assert main(["compare", str(a), rebuilt]) == 0


def test_different_samples_are_refused_with_counts_or_compared_on_those_shared(scored, tmp_path, capsys):
    line = refusal(capsys, scored / "a", scored / "partial")
    assert "A and B cover different samples: 3 ids only in A" in line and "0 only in B" in line
    assert "--intersect compares the 37 they share" in line
    out = tmp_path / "out"
    assert main(["compare", str(scored / "a"), str(scored / "partial"), "--intersect", "--out", str(out)]) == 0
    comparison = json.loads((out / "compare.json").read_text())
    assert comparison["samples"] == 37 and comparison["data"]["samples_only_a"] == 3
    assert sum(g["samples"] for g in comparison["groups"].values()) == 37
    assert "3 only in A and 0 only in B left out" in (out / "compare.md").read_text()
    # on the shared samples B and partial are one result: nothing differs
    assert all(e["difference"] == 0 and e["p_value"] == 1.0
               for e in generic.compare(generic.load_run(scored / "b"), generic.load_run(scored / "partial"),
                                        _vismin(), intersect=True, resamples=50, seed=0)["scores"].values())


def _vismin():
    from diffbench.vismin.compare import compare_vismin

    return compare_vismin


def test_missing_old_and_damaged_files_are_named(scored, tmp_path, capsys):
    a = scored / "a"
    assert "no results at" in refusal(capsys, a, tmp_path / "nowhere")
    old = edited(scored / "b", tmp_path / "old", lambda r: r.pop("schema"))
    assert "results of schema None, not 'diffbench.results/1' (written before results were versioned" in refusal(capsys, a, old)
    no_samples = tmp_path / "no-samples"
    shutil.copytree(scored / "b", no_samples)
    (no_samples / "samples.jsonl").unlink()
    assert f"no samples.jsonl beside {no_samples / 'results.json'}" in refusal(capsys, a, no_samples)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text('{"schema": ')
    assert f"{tmp_path / 'broken' / 'results.json'}: not valid JSON (line 1, column 12" in refusal(capsys, a, tmp_path / "broken")
    for name, damage, message in [("cut", lambda lines: lines[6][:20], "line 7: not valid JSON"),
                                  ("list", lambda lines: "[1, 2]", "line 7: not a JSON object"),
                                  ("no-id", lambda lines: '{"category": "object"}', "line 7: no id"),
                                  ("twice", lambda lines: lines[1], f"line 7: id {json.loads(_line(scored, 1))['id']!r} again (first at line 2)")]:
        folder = tmp_path / name
        shutil.copytree(scored / "b", folder)
        lines = (folder / "samples.jsonl").read_text().splitlines()
        lines[6] = damage(lines)
        (folder / "samples.jsonl").write_text("\n".join(lines) + "\n")
        assert f"{folder / 'samples.jsonl'}, {message}" in refusal(capsys, a, folder)
    short = tmp_path / "short"
    shutil.copytree(scored / "b", short)
    (short / "samples.jsonl").write_text("".join((scored / "b" / "samples.jsonl").read_text().splitlines(True)[:-1]))
    assert "holds 39 samples but" in refusal(capsys, a, short)


def _line(scored, index: int) -> str:
    return (scored / "b" / "samples.jsonl").read_text().splitlines()[index]


def test_results_json_path_or_folder_and_one_set_never_over_a_users_file(scored, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "compare.md").write_text("my notes")
    assert "which diffbench did not write" in refusal(capsys, scored / "a", scored / "b", "--out", out)
    assert (out / "compare.md").read_text() == "my notes" and not (out / "compare.json").exists()
    assert main(["compare", str(scored / "a" / "results.json"), str(scored / "b"), "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "compare.json").read_text())["a"]["results"] == str(scored / "a" / "results.json")
    first = (out / "compare.json").read_bytes()
    assert main(["compare", str(scored / "a"), str(scored / "b"), "--out", str(out)]) == 0  # ours now: replaced
    assert (out / "compare.json").read_bytes() == first  # the same inputs and seed: the same bytes
    assert sorted(files.recorded(out)) == ["compare.json", "compare.md"]


def test_module_doctests():
    assert doctest.testmod(generic).failed == 0
