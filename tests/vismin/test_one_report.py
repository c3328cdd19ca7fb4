"""One VisMin submission, three front ends, one report: ``diffbench eval``'s own report, ``diffbench score
vismin`` on the submission file eval wrote, and the Space's scoring of that file give identical scores and
the same table (issue 19: the report is built in one place)."""

from __future__ import annotations

import json

from diffbench.cli import main
from diffbench.data import building
from diffbench.space import backend
from diffbench.vismin.report import format_table


def test_eval_score_and_the_space_give_one_vismin_report(vismin_built, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["eval", "vismin", "--out", str(run), "--no-progress"]) == 0  # the embedded tiny CLIP
    capsys.readouterr()
    from_eval = json.loads((run / "results.json").read_text())

    scored = tmp_path / "scored"
    assert main(["score", "vismin", str(run / "vismin_scores.csv"), "--out", str(scored)]) == 0
    from_cli = json.loads((scored / "results.json").read_text())

    bench = building.load_built("vismin", "bench", "test")
    from_space = json.loads(json.dumps(backend.score_vismin_run(run / "vismin_scores.csv", bench).results))

    assert from_eval["scores"] == from_cli["scores"] == from_space["scores"]
    assert from_eval["provenance"] == from_cli["provenance"] == from_space["provenance"]
    label = "the run"
    assert (format_table(from_eval, model=label) == format_table(from_cli, model=label)
            == format_table(from_space, model=label))
