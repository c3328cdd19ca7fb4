"""The Inspect tab's work without a browser (:mod:`diffbench.space.runs`): uploads loaded as runs, the
tab's menus as :mod:`diffbench.report.inspect`'s filters, refusals as one-line messages."""

from __future__ import annotations

import json

import pytest
from test_space import _vismin_rows, _vismin_run, _write_csv

from diffbench.space import runs


@pytest.fixture(scope="module")
def run_folders(vismin_built, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    ids = _vismin_rows()
    right = _vismin_run(root / "right", _write_csv(root / "right.csv", ids))
    swapped = _write_csv(root / "swapped.csv", ids, scores=(0.1, 0.9, 0.8, 0.2))  # every pair wrong
    return right, _vismin_run(root / "wrong", swapped)


def test_an_upload_is_a_run_with_images_and_its_menus(run_folders, tmp_path):
    right, _ = run_folders
    run = runs.load_upload([str(right / "samples.jsonl"), str(right / "results.json")], tmp_path)
    records = [json.loads(line) for line in (right / "samples.jsonl").read_text().splitlines()]
    assert run.view.kind == "vismin" and len(run.records) == len(records)
    categories = sorted({r["category"] for r in records})
    assert runs.groups(run) == ["all", *categories]
    found = runs.selected(run, None, categories[0], "group right")
    assert [r["id"] for r in found] == [r["id"] for r in records if r["category"] == categories[0]]
    assert runs.selected(run, None, "all", "group wrong") == []  # every pair right
    first, second, why = runs.images(run, found[0]["id"])
    assert why == "" and first.size == second.size  # from the build, by id
    text = runs.sample_markdown(run, None, found[0])
    assert "| similarity | image 0 | image 1 |" in text and text.count("| 0.9 | 0.1 |") == 1  # caption 0's row
    assert "group: right ✓" in text
    assert 'id="inspect-table"' in runs.listing_html(found, "vismin", False)


def test_two_runs_side_by_side_where_a_is_right_and_b_wrong(run_folders, tmp_path):
    right, wrong = run_folders
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a = runs.load_upload([str(right / "samples.jsonl"), str(right / "results.json")], tmp_path / "a")
    b = runs.load_upload([str(wrong / "samples.jsonl")], tmp_path / "b")
    found = runs.selected(a, b, "all", "A right, B wrong (group)")
    assert len(found) == len(a.records) and all(r["a_group_correct"] and not r["b_group_correct"] for r in found)
    assert runs.selected(a, b, "all", "A wrong, B right (group)") == []
    text = runs.sample_markdown(a, b, found[0])
    assert text.count("| similarity | image 0 | image 1 |") == 2 and "**B**" in text
    assert text.count("| 0.9 | 0.1 |") == 1 and text.count("| 0.1 | 0.9 |") == 1  # A's row, B's swapped row


@pytest.fixture
def tmp_folders(tmp_path):
    (tmp_path / "a").mkdir()
    return tmp_path / "a"


def test_what_cannot_be_inspected_is_one_line(run_folders, tmp_path, tmp_folders):
    right, _ = run_folders
    with pytest.raises(runs.UserError, match="upload one samples.jsonl"):
        runs.load_upload([str(right / "results.json")], tmp_folders)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(runs.UserError, match="notes.txt: upload a samples.jsonl"):
        runs.load_upload([str(other)], tmp_folders)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "object/0"}\nnot json\n')
    with pytest.raises(runs.UserError) as caught:
        runs.load_upload([str(broken)], tmp_folders)
    message = str(caught.value)
    assert "broken.jsonl" in message and "\n" not in message and str(tmp_folders) not in message, message
    with pytest.raises(runs.UserError, match="is not an outcome here"):
        runs.choose("vismin", False, "worst METEOR first")
