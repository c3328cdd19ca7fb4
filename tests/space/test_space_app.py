"""The Space's shape (issue 19) and what it shares with the benchmarks' reports, without a browser.

- the Space's code stays small and imports the project's modules at the top (Gradio only in the app);
- what the Score tab shows and lets a visitor download is the reports' (:mod:`diffbench.vismin.report`,
  :mod:`diffbench.captions.report`): the chart's subsets are the table's, results.json is written as
  the reports write theirs;
- a results.json the server cannot write is a one-line message, and the run is not on the board.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from diffbench.captions import report as caption_report
from diffbench.report.layout import group, make_results
from diffbench.space import backend
from diffbench.space.leaderboard import Leaderboard
from diffbench.vismin import report as vismin_report
from test_leaderboard import _space
from test_space import _board_rows, _vismin_rows, _write_csv

ROOT = Path(__file__).resolve().parents[2]
SPACE_FILES = sorted((ROOT / "src" / "diffbench" / "space").glob("*.py")) + [ROOT / "space" / "app.py"]


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_function_of_the_space_is_over_100_lines():
    long = [f"{path.relative_to(ROOT)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for path in SPACE_FILES for f in _functions(path) if f.end_lineno - f.lineno + 1 > 100]
    assert not long, long


def test_the_space_imports_the_project_s_modules_at_the_top():
    inner = []
    for path in SPACE_FILES:
        for function in _functions(path):
            for node in ast.walk(function):
                names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                         else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                if any(name.split(".")[0] in ("diffbench", "gradio", "gradio_client") for name in names):
                    inner.append(f"{path.relative_to(ROOT)}:{node.lineno} {function.name}")
    assert not inner, inner


def _caption_results(evaluation: str) -> dict:
    groups = {"color": group(2, {"CIDEr": 50.0, "METEOR": 20.0}, {"CIDEr": [10.0, 90.0], "METEOR": [15.0, 25.0]}),
              "distractor": group(1, {"METEOR": 10.0}, {"METEOR": [10.0, 10.0]})}  # no CIDEr: no bar, an empty cell
    return make_results(benchmark="omnidiff", config=None, split="test", samples=3, dataset_samples=3,
                        scores={"METEOR": 25.0, "CIDEr": 43.217}, ci95={"METEOR": [20.0, 30.0], "CIDEr": [30.0, 56.0]},
                        groups=groups, uncertainty={"resamples": 1000, "seed": 0}, provenance={"synthetic": False},
                        protocol={"evaluation": evaluation})


@pytest.mark.parametrize("evaluation", ["per_change_type", "clevr_change_official"])
def test_the_caption_chart_has_the_subsets_of_the_report_s_table(evaluation):
    results = _caption_results(evaluation)
    table = backend.caption_table(results)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    frame = backend.caption_chart_frame(results)
    assert list(frame["subset"]) == [s for s in rows if s != "distractor"]  # "total" for CLEVR-Change's parts
    for subset, value, low, high in zip(frame["subset"], frame["value"], frame["low"], frame["high"]):
        # the same number (percent, two decimals) with half its interval
        assert f"| {value:.2f} ±{(high - low) / 2:.2f} |" in rows[subset]
    assert list(frame["value"]) == [43.22, 50.0] and list(frame["high"]) == [56.0, 90.0]


def test_results_json_is_written_as_the_report_writes_it(vismin_built, tmp_path):
    """A submission scored in the Space downloads the results.json ``diffbench score vismin`` writes
    (a name outside ASCII as it is, not ``\\u00e8``)."""
    path = _write_csv(tmp_path / "modèle à moi.csv", _vismin_rows())
    results = backend.score_vismin_run(path, backend.DataStore(names=("vismin",)).vismin_bench()).results
    files = backend.ResultFiles(tmp_path)
    try:
        written = files.write(results)
        (tmp_path / "report").mkdir()
        report = vismin_report.write_report_files(tmp_path / "report", results, label="modèle")[0]
        assert written.read_bytes() == report.read_bytes()
        assert "modèle à moi.csv" in written.read_text(encoding="utf-8")
        assert json.loads(written.read_text(encoding="utf-8")) == results
    finally:
        files.remove()


def test_caption_results_json_is_written_as_the_report_writes_it(tmp_path):
    results = {**_caption_results("per_change_type"), "submission": "légende.json"}
    files = backend.ResultFiles(tmp_path)
    try:
        written = files.write(results)
        (tmp_path / "report").mkdir()
        report = caption_report.write_report_files(tmp_path / "report", results, title="légende")[0]
        assert written.read_bytes() == report.read_bytes()
    finally:
        files.remove()


def test_a_results_file_that_cannot_be_written_is_a_message_and_no_run(tmp_path, monkeypatch, vismin_built):
    """The server's own problem (its temporary folder gone): one line on the page, the traceback in the
    log, and the run is not added to the board (the visitor was told it failed)."""
    from gradio_client import handle_file

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    files = backend.ResultFiles(tmp_path)
    shutil.rmtree(files.root)
    csv_path = _write_csv(tmp_path / "perfect.csv", _vismin_rows())
    with _space(Leaderboard(tmp_path / "leaderboard.sqlite3"), result_files=files) as client:
        message, table, chart, caption_chart, results_path, _ = client.predict(
            handle_file(str(csv_path)), False, "lost run", api_name="/score_vismin")
        board, _ = client.predict("AVG", api_name="/leaderboard")
    assert message.startswith("⚠ Something went wrong on our side (FileNotFoundError)"), message
    assert "\n" not in message and (table, results_path) == ("", None)
    assert "lost run" not in [row["Model"] for row in _board_rows(board)]
