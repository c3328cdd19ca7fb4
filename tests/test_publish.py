"""`diffbench publish`: parquet shards + card that load back byte for byte, and stream."""

from __future__ import annotations

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
    assert front["license"] == ["cc-by-4.0", "cc-by-sa-4.0"]
    assert front["size_categories"] == ["n<1K"]
    assert "@inproceedings{awal2024vismin" in text


def test_publishing_one_config_states_its_own_license(vismin_built, tmp_path):
    out = publishing.publish("vismin", tmp_path / "bench-only", configs=["bench"])
    front = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert front["license"] == "cc-by-4.0"
    assert [c["config_name"] for c in front["configs"]] == ["bench"]


def test_existing_folder_is_not_overwritten_without_asking(vismin_built, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not empty; pass --overwrite"):
        publishing.publish("vismin", out, configs=["bench"])
    assert (out / "keep.txt").read_text() == "mine"
    publishing.publish("vismin", out, configs=["bench"], overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "bench").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["taken"], "no scratch folder left beside it"
