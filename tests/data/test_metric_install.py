"""`diffbench install-metrics`: metric folders become loadable by bare name from any directory."""

from __future__ import annotations

import pytest

import evaluate
from diffbench.data import hub_folders
from diffbench.cli import main
from diffbench.data.metric_install import install_metrics, modules_root

TOY = '''\
"""A toy metric."""
import datasets
import evaluate

VERSION = {version!r}


class ToyMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="toy", citation="", features=datasets.Features({{"predictions": datasets.Value("int64")}}))

    def _compute(self, predictions):
        return {{"version": VERSION, "n": len(predictions)}}
'''


def test_installs_where_evaluate_looks_and_loads_by_bare_name_elsewhere(tmp_path, hf_home, monkeypatch):
    """Installed where evaluate's Hub download would put it; the bare name then loads from a directory
    with no metric folder (in a fresh interpreter and from an installed wheel: tests/release/test_fresh_env.py)."""
    installed = install_metrics(["vismin_group_score"])
    assert installed[0].name == "vismin_group_score.py"
    assert installed[0].parent.parent.name == "evaluate-metric--vismin_group_score"
    assert installed[0].parent.parent.parent == modules_root() / "metrics"
    assert len(installed[0].parent.name) == 64 and int(installed[0].parent.name, 16) >= 0
    monkeypatch.chdir(tmp_path)
    metric = evaluate.load("vismin_group_score")
    assert metric.compute(T0_I0=[1.0, 0.0], T0_I1=[0.0, 1.0], T1_I0=[0.0, 0.0], T1_I1=[1.0, 1.0]) == {
        "text_score": 50.0, "image_score": 50.0, "group_score": 50.0, "num_samples": 2}


@pytest.fixture
def toy_metrics_root(tmp_path, monkeypatch):
    """A metrics/ folder of our own, to check the command is generic over every metric folder."""
    root = tmp_path / "hub"
    (root / "metrics" / "toy_metric").mkdir(parents=True)
    (root / "datasets").symlink_to(hub_folders.hub_root("datasets"))  # the CLI lists the datasets too
    monkeypatch.setattr(hub_folders, "_CANDIDATE_ROOTS", (root,))
    return root / "metrics" / "toy_metric"


def test_reinstalling_makes_the_latest_version_load(toy_metrics_root):
    script = toy_metrics_root / "toy_metric.py"
    script.write_text(TOY.format(version="v1"))
    (toy_metrics_root / "README.md").write_text("# toy\n")
    [first] = install_metrics()  # all folders: just the toy one here
    assert (first.parent / "README.md").is_file()
    assert evaluate.load("toy_metric").compute(predictions=[1, 2]) == {"version": "v1", "n": 2}
    script.write_text(TOY.format(version="v2"))
    [second] = install_metrics(["toy_metric"])
    assert second.parent != first.parent  # a new hash for new code
    assert evaluate.load("toy_metric").compute(predictions=[1]) == {"version": "v2", "n": 1}
    script.write_text(TOY.format(version="v1"))
    [again] = install_metrics(["toy_metric"])
    assert again == first  # same code, same hash folder, now the newest again
    assert evaluate.load("toy_metric").compute(predictions=[1]) == {"version": "v1", "n": 1}


def test_unknown_name_writes_nothing(toy_metrics_root):
    (toy_metrics_root / "toy_metric.py").write_text(TOY.format(version="v1"))
    before = sorted(p.name for p in (modules_root() / "metrics").glob("*")) if (modules_root() / "metrics").exists() else []
    with pytest.raises(ValueError, match="unknown metric 'nope'; known: toy_metric"):
        install_metrics(["toy_metric", "nope"])
    after = sorted(p.name for p in (modules_root() / "metrics").glob("*")) if (modules_root() / "metrics").exists() else []
    assert after == before


def test_cli(toy_metrics_root, capsys):
    (toy_metrics_root / "toy_metric.py").write_text(TOY.format(version="v3"))
    assert main(["install-metrics"]) == 0
    assert "toy_metric: evaluate.load('toy_metric') ->" in capsys.readouterr().out
    assert main(["install-metrics", "nope"]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err
