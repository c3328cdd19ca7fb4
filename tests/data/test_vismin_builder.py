"""The VisMin builder: configs, bare-name loading, byte-exact images, and every kind of bad source."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from diffbench.data import building
from diffbench.data.synth import vismin as synth
from conftest import VISMIN_SAMPLE_N


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    """A datasets cache of this test's own, so its builds never replace the session's."""
    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    return root


def write_source(tmp_path: Path, rows: list[dict], layout: str, split: str = "test") -> Path:
    """Write rows as an upstream release: ``save_to_disk`` Arrow folder or parquet files."""
    from datasets import Dataset, Features

    features = synth._upstream_features(split)
    if rows and set(rows[0]) != set(features):
        features = Features({k: v for k, v in features.items() if k in rows[0]})
    folder = tmp_path / f"source-{layout}"
    if layout == "arrow":
        dataset = Dataset.from_list(rows, features=features)
        from datasets import DatasetDict

        DatasetDict({split: dataset}).save_to_disk(str(folder / "data"))
    else:
        (folder / "data").mkdir(parents=True)
        Dataset.from_list(rows, features=features).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def bench_rows(n=8, size=(48, 32)) -> list[dict]:
    return list(synth.generate_bench(n=n, seed=3, image_size=size))


# -- the session build ------------------------------------------------------------------------------


def test_every_config_builds_with_every_category(vismin_built):
    by_config = {summary.config: summary for summary in vismin_built}
    assert by_config["bench"].rows == {"test": VISMIN_SAMPLE_N}
    assert by_config["pairs"].rows == {"train": VISMIN_SAMPLE_N}
    assert by_config["train"].rows == {"train": 2 * VISMIN_SAMPLE_N}  # each original and its edit
    assert set(by_config["bench"].counts["test"]) == {"object", "attribute", "counting", "relation"}
    assert sum(by_config["bench"].counts["test"].values()) == VISMIN_SAMPLE_N


def test_bench_rows_follow_the_schema(vismin_built):
    bench = building.load_built("vismin", "bench", "test")
    assert bench.features["category"].names == ["object", "attribute", "counting", "relation"]
    ids = bench["id"]
    assert len(set(ids)) == len(ids)
    names = bench.features["category"].names
    for row in bench.select(range(8)):
        category = names[row["category"]]
        assert row["id"] == f"{category}/{row['upstream_id']}"
        assert row["text_0"] != row["text_1"]
        assert row["image_0"].size == (96, 72)
        assert row["text_question_0"].startswith("Does this image best match: (A) " + row["text_0"])


def test_pairs_join_each_edit_to_its_source(vismin_built):
    train = building.load_built("vismin", "train", "train")
    pairs = building.load_built("vismin", "pairs", "train").cast_column("image_0", _raw_image()).cast_column(
        "image_1", _raw_image()
    )
    by_id = {row["image_id"]: row for row in train.cast_column("image", _raw_image())}
    for pair in pairs.select(range(5)):
        edit = by_id[pair["id"]]
        source = by_id[edit["source_image_id"]]
        assert (pair["text_0"], pair["text_1"]) == (source["caption"], edit["caption"])
        assert pair["image_0"]["bytes"] == source["image"]["bytes"]
        assert pair["image_1"]["bytes"] == edit["image"]["bytes"]


def _raw_image():
    from datasets import Image as ImageFeature

    return ImageFeature(decode=False)


def test_bare_name_gives_every_config_from_any_directory(vismin_built, tmp_path, monkeypatch):
    """``load_dataset("vismin", config)`` from a folder with no ``vismin`` in it: the builds, by bare name
    (the same in a fresh interpreter: tests/release/test_fresh_env.py proves that once, for the core install)."""
    from datasets import load_dataset

    monkeypatch.chdir(tmp_path)
    loaded = {str(config): {split: [d.num_rows, d.column_names[:2]] for split, d in load_dataset("vismin", config).items()}
              for config in (None, "bench", "train", "pairs")}
    assert loaded["None"] == loaded["bench"] == {"test": [VISMIN_SAMPLE_N, ["id", "upstream_id"]]}
    assert loaded["train"] == {"train": [2 * VISMIN_SAMPLE_N, ["image_id", "image"]]}
    assert loaded["pairs"] == {"train": [VISMIN_SAMPLE_N, ["id", "category"]]}


# -- sources ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["arrow", "parquet"])
def test_image_bytes_are_copied_not_reencoded(layout, tmp_path, private_cache):
    rows = bench_rows()
    # Bytes no encoder would produce again: an uncompressed PNG with a text chunk, and a JPEG.
    from PIL import PngImagePlugin

    for i, row in enumerate(rows):
        image = Image.open(io.BytesIO(row["image_0"]["bytes"]))
        buffer = io.BytesIO()
        if i % 2:
            info = PngImagePlugin.PngInfo()
            info.add_text("source", f"row {i}")
            image.save(buffer, format="PNG", compress_level=0, pnginfo=info)
        else:
            image.convert("RGB").save(buffer, format="JPEG", quality=73)
        row["image_0"] = {"bytes": buffer.getvalue(), "path": None}
    source = write_source(tmp_path, rows, layout)
    building.build("vismin", "bench", source=str(source))
    built = building.load_built("vismin", "bench", "test").cast_column("image_0", _raw_image())
    by_key = {(r["category"], r["id"]): r["image_0"]["bytes"] for r in rows}
    names = built.features["category"].names
    for row in built:
        assert row["image_0"]["bytes"] == by_key[(names[row["category"]], row["upstream_id"])]
        assert row["image_0"]["path"] is None


def test_images_stored_as_paths_beside_the_source_are_embedded(tmp_path, private_cache):
    rows = bench_rows(4)
    folder = tmp_path / "source-parquet" / "data"
    folder.mkdir(parents=True)
    for i, row in enumerate(rows):
        name = f"img{i}.png"
        (folder / name).write_bytes(row["image_1"]["bytes"])
        row["image_1"] = {"bytes": None, "path": name}
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), folder / "test.parquet")
    building.build("vismin", "bench", source=str(folder.parent))
    built = building.load_built("vismin", "bench", "test").cast_column("image_1", _raw_image())
    assert sorted(r["image_1"]["bytes"] for r in built) == sorted((folder / f"img{i}.png").read_bytes() for i in range(4))


def test_num_proc_shards_the_build_over_source_files(tmp_path, private_cache):
    rows = list(synth.generate_train(n=12, seed=5, image_size=(32, 32)))
    source = tmp_path / "train-src"
    synth.write_save_to_disk(iter(rows), source, "train", num_shards=3)
    summary = building.build("vismin", "pairs", num_proc=2, source=str(source))
    assert summary.rows == {"train": 12}
    assert sorted(building.load_built("vismin", "pairs", "train")["id"]) == sorted(
        r["image_id"] for r in rows if r["source_image_id"]
    )


def test_hub_source_offline_says_what_to_do(private_cache):
    with pytest.raises(ValueError, match=r"hf://datasets/mair-lab/vismin-bench: the Hub is not reachable"):
        building.build("vismin", "bench", source="hub")


# -- bad input: a clear error, and the previous build stays -----------------------------------------


def _drop_text_1(rows):
    for row in rows:
        del row["text_1"]


def _bad_image(rows):
    rows[5]["image_0"] = {"bytes": b"\x89PNG\r\n\x1a\n truncated", "path": None}


def _empty_caption(rows):
    rows[3]["text_1"] = "   "


def _unknown_category(rows):
    rows[2]["category"] = "colour"


def _duplicate(rows):
    rows[6]["category"], rows[6]["id"] = rows[1]["category"], rows[1]["id"]


BAD_SOURCES = {
    "missing column": (_drop_text_1, r"missing column\(s\) \['text_1'\].*", "text_1", None),
    "undecodable image": (_bad_image, r"undecodable image", "image_0", 5),
    "empty caption": (_empty_caption, r"empty caption", "text_1", 3),
    "unknown category": (_unknown_category, r"unknown category 'colour'", "category", 2),
    "duplicate": (_duplicate, r"duplicate category/id", "id", 6),
}


@pytest.mark.parametrize("layout", ["arrow", "parquet"])
@pytest.mark.parametrize("case", list(BAD_SOURCES))
def test_bad_source_names_file_row_and_column_and_keeps_the_last_build(case, layout, tmp_path, private_cache):
    good = write_source(tmp_path / "good", bench_rows(), layout)
    building.build("vismin", "bench", source=str(good))
    before = building.load_built("vismin", "bench", "test")["id"]

    rows = bench_rows()
    corrupt, message, column, row = BAD_SOURCES[case]
    corrupt(rows)
    bad = write_source(tmp_path / "bad", rows, layout)
    with pytest.raises(ValueError) as caught:
        building.build("vismin", "bench", source=str(bad), overwrite=True)
    text = str(caught.value)
    assert str(bad) in text  # the file
    assert f"column {column!r}" in text
    if row is not None:
        assert f"row {row}," in text
    import re

    assert re.search(message, text), text
    assert building.load_built("vismin", "bench", "test")["id"] == before
    assert not [p for p in (private_cache / building.STAGING_DIRNAME).iterdir() if p.is_dir()]


def test_missing_source_path(private_cache, tmp_path):
    with pytest.raises(ValueError, match=r"nowhere: source path does not exist"):
        building.build("vismin", "bench", source=str(tmp_path / "nowhere"))
    with pytest.raises(building.NotBuiltError, match=r"vismin/bench is not built: run `diffbench build vismin"):
        building.load_built("vismin", "bench")


def test_cli_reports_bad_input_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "diffbench", "build", "vismin", "--source", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**_env(), "HF_HOME": str(tmp_path / "hf")})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"diffbench build: error: {tmp_path / 'x'}: source path does not exist"]


def _env():
    import os

    return dict(os.environ)


def test_large_samples_terminate_when_caption_forms_run_out():
    # The counting category has a few hundred caption pairs; 3,000 samples need repeats.
    rows = [row[4:] for row in synth.generate_pairs(n=3000, seed=2)]
    assert len(rows) == 3000
    assert len(set(rows)) < 3000


@pytest.mark.parametrize("layout", ["arrow", "parquet"])
def test_the_upstream_image_file_name_is_kept(layout, tmp_path, private_cache):
    rows = bench_rows(4)
    for i, row in enumerate(rows):
        row["image_0"] = {"bytes": row["image_0"]["bytes"], "path": f"COCO_val2017_{i:012d}.png"}
    source = write_source(tmp_path, rows, layout)
    building.build("vismin", "bench", source=str(source))
    built = building.load_built("vismin", "bench", "test").cast_column("image_0", _raw_image())
    paths = {row["upstream_id"]: row["image_0"]["path"] for row in built}
    assert paths == {row["id"]: row["image_0"]["path"] for row in rows}
    # rows without a name keep none (image_1 had path None upstream)
    assert set(built.cast_column("image_1", _raw_image())["image_1"][i]["path"] for i in range(4)) == {None}


def test_the_builder_knows_the_same_categories_as_the_library():
    from diffbench.vismin import schema as vismin_schema

    cls = building.builder_class("vismin")
    module = sys.modules[cls.__module__]
    # The Hub folder keeps its own ClassLabel order (changing it changes the schema); the names are the same.
    assert set(module.CATEGORIES) == set(vismin_schema.CATEGORIES) and len(module.CATEGORIES) == 4
    assert synth.CATEGORIES == vismin_schema.CATEGORIES
    assert set(synth.CATEGORY_COUNTS) == set(vismin_schema.CATEGORIES)


def test_a_seed_gives_the_same_synthetic_samples_as_before():
    """The synthetic sample uses vismin_schema's categories, and its samples did not change with that."""
    import hashlib

    digest = hashlib.sha256()
    for row in synth.generate_bench(n=7, seed=3, image_size=(32, 24)):
        digest.update(f"{row['category']}|{row['id']}|{row['text_0']}|{row['text_1']}|".encode())
    assert [synth.split_counts(n) for n in (4, 5, 13)] == [
        {"object": 1, "attribute": 1, "counting": 1, "relation": 1},
        {"object": 1, "attribute": 2, "counting": 1, "relation": 1},
        {"object": 3, "attribute": 2, "counting": 4, "relation": 4},
    ]
    # taken from the synthetic generator before it imported vismin_schema (captions and ids, not PNG
    # bytes, which depend on the zlib build)
    assert digest.hexdigest() == "34e070e4fa447c12bdbadb66017930e095ca9759b24311c01a72419740ef995e"
