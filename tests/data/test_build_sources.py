"""Where a build came from (provenance), no silent replacement of another source's build, --num-proc for
every config, and which configuration the bare name gives after any order of builds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from diffbench.data import building, provenance, samples
from diffbench.data.synth import vismin as synth

SAMPLE = {"n": 8, "seed": 0, "image_size": (32, 32)}


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    return root


def local_release(folder: Path, n: int = 8, seed: int = 0) -> Path:
    """A local upstream release (bench and train) in the layout of the embedded sample."""
    return samples.write_sample("vismin", folder, n=n, seed=seed, image_size=(32, 32))


# -- provenance ---------------------------------------------------------------------------------------------


def test_a_sample_build_records_its_synthetic_source_and_licence(private_cache):
    building.build_configs("vismin", ["bench", "pairs"], "sample", **SAMPLE)
    for config, split in (("bench", "test"), ("pairs", "train")):
        ds = building.load_built("vismin", config, split)
        record = provenance.of_dataset(ds)
        assert record["dataset"] == "vismin" and record["config"] == config
        assert record["source"] == "synthetic" and record["synthetic"] is True and provenance.is_synthetic(record)
        assert (record["generator"], record["n"], record["seed"], record["image_size"]) == (
            "diffbench.data.synth.vismin", 8, 0, [32, 32])
        assert record["license"] == "apache-2.0" and len(record["build_id"]) == 32
        # The dataset info describes the synthetic data and its licence, not COCO's or the upstream's.
        assert ds.info.license == "apache-2.0"
        assert "synthetic sample" in ds.info.description and "COCO" not in ds.info.description
        assert provenance.SYNTHETIC_NOTE[1:] in ds.info.description


def test_a_local_build_records_folder_and_a_stat_fingerprint_by_default(tmp_path, private_cache):
    source = local_release(tmp_path / "release")
    summary = building.build_configs("vismin", ["bench"], str(source))[0]
    record = provenance.of_dataset(building.load_built("vismin", "bench", "test"))
    assert record["source"] == "local" and record["synthetic"] is False
    assert record["folder"] == str(source.resolve())
    assert record["fingerprint_kind"] == "stat"
    assert record["fingerprint"] == building.folder_fingerprint(source) == building.folder_fingerprint(source, "stat")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", record["fingerprint"])
    assert summary.provenance["fingerprint"] == record["fingerprint"]
    ds = building.load_built("vismin", "bench", "test")
    assert ds.info.license == "cc-by-4.0"
    assert f"Built by diffbench from the folder {source.resolve()}" in ds.info.description
    # The stat fingerprint reads no byte: a rewrite keeping size and mtime is not seen; the content one sees it.
    arrow = next(source.rglob("*.arrow"))
    content_before = building.folder_fingerprint(source, "content")
    times = arrow.stat().st_atime_ns, arrow.stat().st_mtime_ns
    with open(arrow, "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    os.utime(arrow, ns=times)
    assert building.folder_fingerprint(source) == record["fingerprint"]
    assert building.folder_fingerprint(source, "content") != content_before
    # A touched file (new mtime) is seen.
    os.utime(arrow)
    assert building.folder_fingerprint(source) != record["fingerprint"]


def test_the_stat_fingerprint_reads_no_file(tmp_path, monkeypatch):
    source = local_release(tmp_path / "release")
    opened = []
    real_open = open

    def counting_open(file, *args, **kwargs):
        opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    building.folder_fingerprint(source)
    assert opened == []
    building.folder_fingerprint(source, "content")
    assert len(opened) == len([p for p in source.rglob("*") if p.is_file()])


def test_a_content_fingerprint_is_an_explicit_option(tmp_path, private_cache):
    source = local_release(tmp_path / "release")
    building.build_configs("vismin", ["bench", "pairs"], str(source), fingerprint="content")
    for config in ("bench", "pairs"):
        record = provenance.of_dataset(building.load_built("vismin", config))
        assert record["fingerprint_kind"] == "content"
        assert record["fingerprint"] == building.folder_fingerprint(source, "content")
    with pytest.raises(ValueError, match=r"fingerprint must be one of \('stat', 'content'\), got 'bytes'"):
        building.build_configs("vismin", ["bench"], str(source), fingerprint="bytes")


def test_cli_fingerprint_option(tmp_path):
    source = local_release(tmp_path / "release")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "diffbench", "build", "vismin", "--source", str(source),
                           "--fingerprint", "content"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    [record_file] = (tmp_path / "hf" / "datasets" / "vismin" / "bench").glob(f"*/*/{provenance.PROVENANCE_FILE}")
    record = json.loads(record_file.read_text())
    assert record["fingerprint_kind"] == "content"
    assert record["fingerprint"] == building.folder_fingerprint(source, "content")


@pytest.mark.parametrize("kind", ["stat", "content"])
def test_a_source_changed_while_it_is_built_is_an_error_and_replaces_nothing(kind, tmp_path, private_cache,
                                                                            monkeypatch):
    source = local_release(tmp_path / "release")
    building.build_configs("vismin", ["bench"], str(source), fingerprint=kind)
    before = provenance.of_dataset(building.load_built("vismin", "bench", "test"))
    cls = building.builder_class("vismin")
    original = cls._bench_table

    def bench_table_while_a_file_arrives(self, *args, **kwargs):
        (source / "notes.txt").write_text("a file copied in while the build reads")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "_bench_table", bench_table_while_a_file_arrives)
    with pytest.raises(ValueError) as caught:
        building.build_configs("vismin", ["bench"], str(source), fingerprint=kind)
    assert str(caught.value) == (f"{source}: the source changed while it was being built (a file was written, "
                                 "added or removed); nothing was replaced: build again once it is complete")
    assert provenance.of_dataset(building.load_built("vismin", "bench", "test"))["build_id"] == before["build_id"]


def test_a_caption_set_build_gets_provenance_generically(private_cache):
    building.build_configs("omnidiff", ["default"], "sample", n=12, seed=1, image_size=(32, 32))
    record = provenance.of_dataset(building.load_built("omnidiff", None, "test"))
    assert (record["dataset"], record["source"], record["generator"], record["n"], record["seed"]) == (
        "omnidiff", "synthetic", "diffbench.data.synth.captions", 12, 1)


def test_the_hub_provenance_names_the_official_repo():
    assert building.planned_provenance("vismin", "bench", "hub")["repo_id"] == "mair-lab/vismin-bench"
    assert building.planned_provenance("vismin", "pairs", "hub")["repo_id"] == "mair-lab/vismin"
    record = building.planned_provenance("vismin", "bench", "hub", repo_id="me/mirror", revision="v1")
    assert provenance.describe(record) == "the Hub repo me/mirror at revision v1"


def test_build_stamp_changes_on_every_rebuild(private_cache):
    assert building.build_stamp("vismin") is None
    building.build_configs("vismin", ["bench"], "sample", **SAMPLE)
    first = building.build_stamp("vismin")
    assert first and building.build_stamp("vismin", "bench") == first
    building.build_configs("vismin", ["bench"], "sample", **SAMPLE)  # the same source: a refresh, allowed
    assert building.build_stamp("vismin") not in (None, first)


# -- no silent replacement ------------------------------------------------------------------------------------


def _conflict(callable_, *args, **kwargs) -> str:
    with pytest.raises(building.SourceConflictError) as caught:
        callable_(*args, **kwargs)
    text = str(caught.value)
    assert "\n" not in text and text.endswith("pass --overwrite (overwrite=True in Python) to replace it")
    return text


@pytest.mark.parametrize("other", ["n", "seed", "image_size", "folder", "hub"])
def test_building_over_another_source_is_refused_naming_it(other, tmp_path, private_cache):
    building.build_configs("vismin", ["bench", "pairs"], "sample", **SAMPLE)
    before = building.load_built("vismin", "bench", "test")["id"]
    if other == "folder":
        args, kwargs = ("vismin", ["bench", "pairs"], str(local_release(tmp_path / "release"))), {}
    elif other == "hub":
        args, kwargs = ("vismin", ["bench", "pairs"], "hub"), {}
    else:
        changed = {"n": 12, "seed": 1, "image_size": (48, 32)}[other]
        args, kwargs = ("vismin", ["bench", "pairs"], "sample"), {**SAMPLE, other: changed}
    text = _conflict(building.build_configs, *args, **kwargs)
    assert text.startswith("vismin/bench is already built from the synthetic sample (n=8, seed=0, 32x32 images); "
                           "building it from ")
    assert building.load_built("vismin", "bench", "test")["id"] == before
    if other != "hub":  # offline, the Hub cannot be read; the others replace with --overwrite
        summaries = building.build_configs(*args, overwrite=True, **kwargs)
        for summary in summaries:
            built = provenance.of_dataset(building.load_built("vismin", summary.config))
            assert provenance.same_source(built, summary.provenance) and built["build_id"] == summary.provenance["build_id"]
            assert built["source"] == ("local" if other == "folder" else "synthetic")


def test_one_folder_rebuilt_is_a_refresh_another_folder_a_conflict(tmp_path, private_cache):
    first = local_release(tmp_path / "a")
    building.build_configs("vismin", ["bench"], str(first))
    local_release(tmp_path / "a", n=12)  # new content in the same folder
    building.build_configs("vismin", ["bench"], str(first))
    assert building.load_built("vismin", "bench", "test").num_rows == 12
    text = _conflict(building.build_configs, "vismin", ["bench"], str(local_release(tmp_path / "b")))
    assert f"already built from the folder {first.resolve()} (sha256:" in text


def test_a_build_without_recorded_source_is_not_replaced_silently(tmp_path, private_cache):
    building.build_configs("vismin", ["bench"], "sample", **SAMPLE)
    (building.current_build("vismin", "bench") / provenance.PROVENANCE_FILE).unlink()
    text = _conflict(building.build_configs, "vismin", ["bench"], "sample", **SAMPLE)
    assert "already built from an unknown source" in text


def test_cli_conflict_is_one_line_exit_2(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    build = [sys.executable, "-m", "diffbench", "build", "vismin", "--source", "sample", "--image-size", "32"]
    done = subprocess.run([*build, "--n", "8"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "from the synthetic sample (n=8, seed=0, 32x32 images)" in done.stdout
    done = subprocess.run([*build, "--n", "12"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "diffbench build: error: vismin/bench is already built from the synthetic sample (n=8, seed=0, 32x32 images); "
        "building it from the synthetic sample (n=12, seed=0, 32x32 images) would replace it: pass --overwrite "
        "(overwrite=True in Python) to replace it"]


# -- --num-proc ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["bench", "train", "pairs"])
def test_num_proc_works_for_every_config_over_several_source_files(config, tmp_path, private_cache):
    source = tmp_path / "release"
    synth.write_bench(source / "bench", n=12, seed=0, image_size=(32, 32), num_shards=3)
    synth.write_train(source / "train", n=12, seed=1, image_size=(32, 32), num_shards=3)
    summary = building.build_configs("vismin", [config], str(source), num_proc=2)[0]
    rows = {"bench": 12, "train": 24, "pairs": 12}[config]
    assert sum(summary.rows.values()) == rows
    parallel_ids = sorted(building.load_built("vismin", config)[next(iter(summary.rows))][
        "image_id" if config == "train" else "id"])
    assert len(set(parallel_ids)) == rows
    building.build_configs("vismin", [config], str(source), num_proc=None)
    serial_ids = sorted(building.load_built("vismin", config)[next(iter(summary.rows))][
        "image_id" if config == "train" else "id"])
    assert parallel_ids == serial_ids


def test_cli_num_proc_with_the_sample_builds_every_config(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "diffbench", "build", "vismin", "--config", "all", "--source", "sample",
                           "--n", "8", "--image-size", "32x32", "--num-proc", "2"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Sharding is ambiguous" not in done.stderr
    for config in ("bench", "train", "pairs"):
        assert f"vismin/{config}: built" in done.stdout


# -- the bare name ------------------------------------------------------------------------------------------

BARE_NAME = """
import json, logging, io
import datasets
stream = io.StringIO()
handler = logging.StreamHandler(stream)
logging.getLogger("datasets.packaged_modules.cache.cache").addHandler(handler)
ds = datasets.load_dataset("vismin")
print(json.dumps({"splits": sorted(ds), "columns": ds[next(iter(ds))].column_names[:2], "log": stream.getvalue()}))
"""


@pytest.mark.parametrize("order", [("bench", "train", "pairs"), ("pairs", "bench", "train"),
                                   ("train", "pairs", "bench"), ("bench", "pairs", "pairs", "train", "train")])
def test_bare_name_gives_bench_after_any_order_of_builds_dated_honestly(order, tmp_path, private_cache):
    import time

    for config in order:
        building.build_configs("vismin", [config], "sample", **SAMPLE)
    env = {**os.environ, "HF_DATASETS_CACHE": str(private_cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", BARE_NAME], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["splits"] == ["test"] and loaded["columns"] == ["id", "upstream_id"]
    assert "configuration 'bench'" in loaded["log"]
    year = re.search(r"last modified on \w+ \w+ +\d+ [\d:]+ (\d{4})", loaded["log"]).group(1)
    assert int(year) == time.gmtime().tm_year, loaded["log"]
    mtimes = {c: building.current_build("vismin", c).stat().st_mtime for c in set(order)}
    assert max(mtimes, key=mtimes.get) == "bench"
    assert mtimes["bench"] <= time.time()


def test_a_map_cache_written_into_another_config_is_undone_by_keep_default_newest(tmp_path, private_cache):
    building.build_configs("vismin", ["bench", "pairs"], "sample", **SAMPLE)
    pairs = building.load_built("vismin", "pairs", "train")
    pairs.map(lambda row: {"x": 1})  # writes cache-*.arrow into the pairs build folder: now the newest
    newest = lambda: max(("bench", "pairs"), key=lambda c: building.current_build("vismin", c).stat().st_mtime)  # noqa: E731
    assert newest() == "pairs"
    assert building.keep_default_newest("vismin") == building.current_build("vismin", "bench")
    assert newest() == "bench"


@pytest.mark.parametrize("module_name", ["diffbench.data.building", "diffbench.data.provenance", "diffbench.data.samples",
                                         "diffbench.data.publishing", "diffbench.commands.build",
                                         "diffbench.data.image_checks", "diffbench.data.hub_folders",
                                         "diffbench.data.synth.scenes", "diffbench.data.synth.captions",
                                         "diffbench.data.synth.vismin"])
def test_module_doctests(module_name):
    import doctest
    import importlib

    failures, attempted = doctest.testmod(importlib.import_module(module_name))
    assert attempted > 0 and failures == 0


def test_caption_builder_doctests_in_an_interpreter_of_their_own():
    """Its examples show ``pathlib.Path`` results; once a process has made a builder, datasets has put its
    streaming ``xPath`` in the module's ``Path`` (it patches every builder's module and its bases)."""
    code = ("import doctest, diffbench.data.caption_builder as m; r = doctest.testmod(m); "
            "print(r.attempted, r.failed)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    attempted, failed = map(int, done.stdout.split()[-2:])
    assert attempted > 0 and failed == 0, done.stdout[-3000:]


def test_a_hub_build_records_repo_and_commit_read_from_the_local_hub_cache(tmp_path, private_cache, monkeypatch):
    """The real Hub code path, offline: a snapshot of mair-lab/vismin-bench already in the Hub cache."""
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    hub_cache = tmp_path / "hub"
    repo = hub_cache / "datasets--mair-lab--vismin-bench"
    synth.write_bench(repo / "snapshots" / commit, n=8, seed=0, image_size=(32, 32))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    summary = building.build_configs("vismin", ["bench"], "hub")[0]
    record = provenance.of_dataset(building.load_built("vismin", "bench", "test"))
    assert (record["source"], record["repo_id"], record["revision"], record["synthetic"]) == (
        "hub", "mair-lab/vismin-bench", commit, False)
    assert summary.rows == {"test": 8}
    assert f"the Hub repo mair-lab/vismin-bench at revision {commit}" in summary.format()
    # Another folder over it is refused, naming the repo and the commit.
    text = _conflict(building.build_configs, "vismin", ["bench"], str(local_release(tmp_path / "release")))
    assert text.startswith(f"vismin/bench is already built from the Hub repo mair-lab/vismin-bench at revision {commit}")
