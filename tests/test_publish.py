"""`diffbench publish`: parquet shards + card that load back byte for byte, and stream."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from diffbench import building, publishing


@pytest.fixture(scope="module")
def published(vismin_built, tmp_path_factory):
    out = tmp_path_factory.mktemp("publish") / "vismin-hub"
    done = subprocess.run(
        [sys.executable, "-m", "diffbench", "publish", "vismin", "--out", str(out), "--max-shard-size", "60KB"],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _raw(dataset):
    from datasets import Image

    for name, feature in dataset.features.items():
        if isinstance(feature, Image):
            dataset = dataset.cast_column(name, Image(decode=False))
    return dataset


@pytest.mark.parametrize("config", ["bench", "train", "pairs"])
def test_published_config_loads_back_byte_for_byte(published, config):
    from datasets import load_dataset

    built = building.load_built("vismin", config)
    loaded = load_dataset(str(published), config)
    assert list(loaded) == list(built)
    for split in built:
        assert loaded[split].features == built[split].features
        assert _raw(loaded[split]).to_list() == _raw(built[split]).to_list()
    shards = sorted((published / config).glob("*.parquet"))
    assert len(shards) >= 2, "the small --max-shard-size splits the config"
    assert all(p.stat().st_size < 200_000 for p in shards)


def test_bare_folder_gives_the_default_config_and_streams(published):
    from datasets import load_dataset

    assert list(load_dataset(str(published))) == ["test"]
    streamed = load_dataset(str(published), split="test", streaming=True)
    first = next(iter(streamed))
    assert first["id"] == building.load_built("vismin", "bench", "test")[0]["id"]
    assert first["image_0"].size == (96, 72)


def test_card_declares_configs_features_license_and_citation(published):
    text = (published / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    configs = {c["config_name"]: c for c in front["configs"]}
    assert configs["bench"]["default"] is True and "default" not in configs["train"]
    assert configs["pairs"]["data_files"] == [{"split": "train", "path": "pairs/train-*"}]
    infos = {i["config_name"]: i for i in front["dataset_info"]}
    assert [f["name"] for f in infos["bench"]["features"]][:3] == ["id", "upstream_id", "category"]
    assert infos["bench"]["splits"][0]["num_examples"] == len(building.load_built("vismin", "bench", "test"))
    # The session's build is the synthetic sample: the card describes it, under its own licence.
    assert front["license"] == "apache-2.0"
    assert front["pretty_name"] == "VisMin (synthetic sample)" and "synthetic" in front["tags"]
    assert "COCO" not in text and "cc-by" not in text.lower()
    assert "Synthetic sample: not comparable to published results" in text
    assert "The real dataset: https://vismin.net" in text
    assert front["size_categories"] == ["n<1K"]
    assert "@inproceedings{awal2024vismin" in text
    assert "| `bench` | the synthetic sample (n=40, seed=0, 96x72 images) (synthetic sample: not comparable" in text
    records = json.loads((published / publishing.PROVENANCE_INDEX).read_text())
    assert {c: r["synthetic"] for c, r in records.items()} == {"bench": True, "train": True, "pairs": True}


@pytest.fixture
def local_build(tmp_path, monkeypatch):
    """Every VisMin config built from a local folder (not the sample), in a cache of this test's own."""
    from diffbench import samples

    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    source = samples.write_sample("vismin", tmp_path / "release", n=8, image_size=(32, 32))
    building.build_configs("vismin", ["bench", "train", "pairs"], str(source))
    return source


def test_a_local_build_publishes_with_the_upstream_card_and_its_provenance(local_build, tmp_path):
    out = publishing.publish("vismin", tmp_path / "out")
    text = (out / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["license"] == ["cc-by-4.0", "cc-by-sa-4.0"] and front["pretty_name"] == "VisMin"
    assert "Images come from COCO 2017" in text
    assert f"| `bench` | the folder {local_build.resolve()} (sha256:" in text
    bench_only = publishing.publish("vismin", tmp_path / "bench-only", configs=["bench"])
    front = yaml.safe_load((bench_only / "README.md").read_text().split("---")[1])
    assert front["license"] == "cc-by-4.0"  # the licence of what is published
    assert [c["config_name"] for c in front["configs"]] == ["bench"]


def test_existing_folder_is_not_overwritten_without_asking(vismin_built, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not empty; pass --overwrite"):
        publishing.publish("vismin", out, configs=["bench"])
    assert (out / "keep.txt").read_text() == "mine"


def test_overwrite_replaces_only_a_folder_publish_wrote(vismin_built, tmp_path):
    thesis = tmp_path / "thesis"
    (thesis / ".git").mkdir(parents=True)
    (thesis / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (thesis / "thesis.tex").write_text("\\documentclass{book}")
    with pytest.raises(ValueError) as caught:
        publishing.publish("vismin", thesis, configs=["bench"], overwrite=True)
    assert str(caught.value) == (f"{thesis} was not written by diffbench publish (no .diffbench-publish in it): "
                                 "refusing to replace it; choose another --out")
    assert (thesis / "thesis.tex").read_text() == "\\documentclass{book}" and (thesis / ".git" / "HEAD").is_file()

    out = tmp_path / "hub"
    publishing.publish("vismin", out, configs=["bench"])
    assert (out / publishing.MARKER).is_file()
    (out / "stale.txt").write_text("from an earlier publish")
    publishing.publish("vismin", out, configs=["bench", "pairs"], overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "pairs").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "thesis"], "no scratch folder left beside them"


def test_cli_out_onto_a_file_or_a_foreign_folder_is_one_line(vismin_built, tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("id,score\n")
    foreign = tmp_path / "thesis"
    (foreign / ".git").mkdir(parents=True)
    (foreign / "thesis.tex").write_text("x")
    for out, flags, message in (
        (target, [], f"{target} exists and is not a folder: --out must name a folder"),
        (target, ["--overwrite"], f"{target} exists and is not a folder: --out must name a folder"),
        (foreign, ["--overwrite"], f"{foreign} was not written by diffbench publish"),
    ):
        done = subprocess.run([sys.executable, "-m", "diffbench", "publish", "vismin", "--out", str(out), *flags],
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 2, done.stderr[-2000:]
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"diffbench publish: error: {message}"), line
    assert target.read_text() == "id,score\n" and (foreign / "thesis.tex").read_text() == "x"


def test_a_difference_captioning_set_publishes_with_its_splits_and_card(tmp_path, monkeypatch):
    """publish is generic: the OmniDiff sample round-trips with all three splits and its card."""
    from datasets import load_dataset

    root = tmp_path / "cache"  # a cache of this test's own: the session's OmniDiff builds stay as they are
    monkeypatch.setattr(building, "cache_root", lambda: root)
    building.build_configs("omnidiff", ["default"], "sample", n=24, seed=0, image_size=(32, 32))
    out = publishing.publish("omnidiff", tmp_path / "omnidiff-hub")
    built, loaded = building.load_built("omnidiff"), load_dataset(str(out))
    assert list(loaded) == list(built) == ["train", "validation", "test"]
    for split in built:
        assert loaded[split].features == built[split].features
        assert _raw(loaded[split]).to_list() == _raw(built[split]).to_list() and len(built[split]) > 0
    card = (tmp_path / "omnidiff-hub" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["configs"] == [{"config_name": "default", "data_files": [
        {"split": s, "path": f"default/{s}-*"} for s in ("train", "validation", "test")], "default": True}]
    assert "arXiv" in card or "arxiv" in card


def test_a_publish_clears_what_a_killed_publish_left_and_not_a_running_one_s(vismin_built, tmp_path):
    staging = tmp_path / ".hub.publishing"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = staging / f"{gone.stdout.strip()}-0000aaaa" / "new"  # its process has exited
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as running:
        try:
            busy = staging / f"{running.pid}-0000bbbb" / "new"
            for folder in (killed, busy):
                folder.mkdir(parents=True)
                (folder / "part.parquet").write_bytes(b"shard")
            out = publishing.publish("vismin", tmp_path / "hub", configs=["bench"])
            assert (out / publishing.MARKER).is_file()
            assert not killed.parent.exists()
            assert (busy / "part.parquet").read_bytes() == b"shard"
        finally:
            running.kill()
