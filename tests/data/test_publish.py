"""`diffbench publish`: parquet shards + card that load back byte for byte, and stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from diffbench.data import building, publishing


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
    from diffbench.data import samples

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
    with pytest.raises(ValueError, match=r"exists and is not empty; pass --overwrite \(overwrite=True in Python\)"):
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
    publishing.publish("vismin", out, configs=["bench", "pairs"], max_shard_bytes=60_000)
    assert (out / publishing.MARKER).is_file()
    old_shards = sorted((out / "bench").glob("*.parquet"))
    publishing.publish("vismin", out, configs=["bench"], overwrite=True)
    assert not (out / "pairs").exists(), "a config the new publish leaves out goes: publish wrote it"
    assert sorted((out / "bench").glob("*.parquet")) != old_shards  # one shard now, not several
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "thesis"], "no scratch folder left beside them"


def _tree(folder):
    """relative path -> bytes (files) or None (folders), symlinks as their target."""
    return {p.relative_to(folder).as_posix(): (f"-> {p.readlink()}" if p.is_symlink() else
                                               None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


USER_ENTRIES = (".git", "NOTES.md", "link", "bench/README-bench.txt")


def _add_user_entries(out):
    """What a user keeps in a published folder (a git clone of the Hub repo, notes, a file beside the shards,
    a symlink); returns them as :func:`_tree` shows them."""
    entries = {".git/HEAD": b"ref: refs/heads/main\n", ".git/objects/ab/cdef": bytes(range(256)) * 4,
               "NOTES.md": "# my notes \u00e9\n".encode(), "bench/README-bench.txt": b"mine"}
    for name, data in entries.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    (out / ".git" / "empty-dir").mkdir()
    (out / "link").symlink_to("NOTES.md")
    return _users(out)


def _users(out):
    return {n: d for n, d in _tree(out).items() if n in USER_ENTRIES or n.startswith(".git/")}


def test_cli_overwrite_keeps_what_the_user_added(vismin_built, tmp_path):
    """Hostile row 1: --overwrite over a published folder holding the user's .git and NOTES.md replaced only
    publish's files; the user's survive byte for byte and the dataset loads."""
    from datasets import load_dataset

    out = tmp_path / "hub"
    publishing.publish("vismin", out, configs=["bench", "pairs"], max_shard_bytes=60_000)
    user = _add_user_entries(out)
    assert len(user) == 9  # .git, HEAD, empty-dir, objects, ab, cdef, NOTES.md, link, README-bench.txt
    done = subprocess.run([sys.executable, "-m", "diffbench", "publish", "vismin", "--out", str(out), "--config",
                           "bench", "--overwrite"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kept, not written by publish: .git, NOTES.md, bench/README-bench.txt, link" in done.stdout
    assert _users(out) == user
    assert not (out / "pairs").exists()
    marker = json.loads((out / publishing.MARKER).read_text())
    assert marker["files"] == ["README.md", "bench/test-00000-of-00001.parquet", publishing.PROVENANCE_INDEX]
    assert len(load_dataset(str(out), "bench", split="test")) == len(building.load_built("vismin", "bench", "test"))
    publishing.publish("vismin", out, configs=["bench"], overwrite=True)  # the next publish keeps them too
    assert _users(out) == user
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"], "no scratch folder left beside it"


def test_overwrite_refuses_a_user_file_where_the_new_publish_writes(vismin_built, tmp_path):
    out = tmp_path / "hub"
    publishing.publish("vismin", out, configs=["bench"])
    (out / "pairs").mkdir()
    (out / "pairs" / "train-00000-of-00001.parquet").write_bytes(b"my own shard")
    (out / "pairs" / "notes.txt").write_bytes(b"my notes")
    before = _tree(out)
    with pytest.raises(ValueError) as caught:
        publishing.publish("vismin", out, configs=["bench", "pairs"], overwrite=True)
    assert str(caught.value) == (f"{out} holds pairs/train-00000-of-00001.parquet, which diffbench publish did not "
                                 "write, where the new publish writes: refusing to replace them; move them out, or "
                                 "choose another --out")
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]
    # without the clash, the user's folder joins the new publish's folder of that name
    (out / "pairs" / "train-00000-of-00001.parquet").unlink()
    publishing.publish("vismin", out, configs=["bench", "pairs"], overwrite=True)
    assert (out / "pairs" / "notes.txt").read_bytes() == b"my notes" and list((out / "pairs").glob("train-*.parquet"))


def test_a_marker_without_a_file_list_replaces_only_a_folder_of_publish_s_files(vismin_built, tmp_path):
    """An older publish's marker lists no files: its folder is replaced when it holds only what a publish
    writes, else refused naming the rest."""
    out = tmp_path / "hub"
    publishing.publish("vismin", out, configs=["bench", "pairs"])
    old_marker = {"dataset": "vismin", "configs": ["bench", "pairs"], "published_at": "2025-01-01T00:00:00Z"}
    (out / publishing.MARKER).write_text(json.dumps(old_marker) + "\n")
    publishing.publish("vismin", out, configs=["bench"], overwrite=True)
    assert not (out / "pairs").exists()
    (out / publishing.MARKER).write_text(json.dumps(old_marker) + "\n")
    (out / "NOTES.md").write_text("mine")
    (out / "bench" / "extra.parquet").write_bytes(b"mine too")
    before = _tree(out)
    with pytest.raises(ValueError) as caught:
        publishing.publish("vismin", out, configs=["bench"], overwrite=True)
    assert str(caught.value) == (f"{out} was written by an older diffbench publish, which did not list its files, and "
                                 "also holds NOTES.md, bench/extra.parquet: refusing to replace it; move those out, "
                                 "or choose another --out")
    assert _tree(out) == before


# Publishes `bench` over OUT with overwrite and kills itself (SIGKILL: no clean-up runs) at one step of the swap.
KILL_PUBLISH_AT = """
import os, signal, sys
from diffbench import files
from diffbench.data import publishing

def kill_at(point):
    if point == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)
files._swap_point = kill_at
publishing.publish("vismin", sys.argv[1], configs=["bench"], overwrite=True)
"""


@pytest.mark.parametrize("stage", ["between-renames", "after-exchange"])
def test_a_publish_killed_while_swapping_loses_none_of_the_user_s_files(vismin_built, tmp_path, stage):
    """Killed with the user's entries moved into the new folder: the next publish puts them back (or finds them
    in place, after the exchange), byte for byte."""
    out = tmp_path / "hub"
    publishing.publish("vismin", out, configs=["bench", "pairs"])
    user = _add_user_entries(out)
    before = _tree(out)
    env = {**os.environ, "DIFFBENCH_NO_RENAME_EXCHANGE": "1" if stage == "between-renames" else ""}
    done = subprocess.run([sys.executable, "-c", KILL_PUBLISH_AT, str(out), stage], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == -9, done.stderr[-2000:]
    staging = tmp_path / ".hub.publishing"
    if stage == "between-renames":
        assert not out.exists() and list(staging.glob("*/kept.json")), "killed with the old folder and entries away"
        publishing.clean_staging(staging)
        assert _tree(out) == before, "the old folder and the user's entries are back"
    else:
        assert _users(out) == user and not (out / "pairs").exists(), "the new folder, with the user's entries"
    publishing.publish("vismin", out, configs=["bench"], overwrite=True)
    assert _users(out) == user
    assert not staging.exists()


@pytest.mark.parametrize("size", ["inf", "1e400", "-inf", "nan", "0.1", "lots"])
def test_cli_an_impossible_shard_size_is_one_line(vismin_built, tmp_path, capsys, size):
    from diffbench.cli import main

    assert main(["publish", "vismin", "--out", str(tmp_path / "hub"), f"--max-shard-size={size}"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("diffbench publish: error: --max-shard-size must ") and repr(size) in line
    assert not (tmp_path / "hub").exists()


def test_cli_push_offline_is_one_line_before_any_work(vismin_built, tmp_path, capsys):
    """HF_HUB_OFFLINE=1 (this test session's setting): refused before publishing, saying it needs the network."""
    from diffbench.cli import main

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert main(["publish", "vismin", "--out", str(tmp_path / "hub"), "--push", "you/vismin"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == ("diffbench publish: error: --push needs the network to reach the Hub, and HF_HUB_OFFLINE is set: "
                    "unset it, or publish without --push")
    assert not (tmp_path / "hub").exists()


def test_cli_push_to_an_unreachable_hub_is_one_line(vismin_built, tmp_path):
    """Online mode, a Hub address where nothing listens (a closed loopback port): exit 2, the network named."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": "hf_unused"}
    done = subprocess.run([sys.executable, "-m", "diffbench", "publish", "vismin", "--out", str(tmp_path / "hub"),
                           "--config", "bench", "--push", "you/vismin"], env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 2, done.stderr[-2000:]
    [line] = [x for x in done.stderr.strip().splitlines() if not x.startswith("Creating parquet")]
    assert line.startswith("diffbench publish: error: the network failed (ConnectError") and "needs the server" in line
    assert (tmp_path / "hub" / publishing.MARKER).is_file()  # the folder itself was written (and listed on stdout)


def _a_file(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("id,score\n")
    return target, lambda: target.read_text() == "id,score\n"


def _a_foreign_folder(tmp_path):
    foreign = tmp_path / "thesis"
    (foreign / ".git").mkdir(parents=True)
    (foreign / "thesis.tex").write_text("x")
    return foreign, lambda: (foreign / "thesis.tex").read_text() == "x"


@pytest.mark.parametrize("make_out, flags, message", [
    (_a_file, [], "{out} exists and is not a folder: --out must name a folder"),
    (_a_file, ["--overwrite"], "{out} exists and is not a folder: --out must name a folder"),
    (_a_foreign_folder, ["--overwrite"], "{out} was not written by diffbench publish"),
], ids=["file", "file-overwrite", "foreign-folder-overwrite"])
def test_cli_out_onto_a_file_or_a_foreign_folder_is_one_line(make_out, flags, message, vismin_built, tmp_path):
    out, unchanged = make_out(tmp_path)
    done = subprocess.run([sys.executable, "-m", "diffbench", "publish", "vismin", "--out", str(out), *flags],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stderr[-2000:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"diffbench publish: error: {message.format(out=out)}"), line
    assert unchanged()


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
