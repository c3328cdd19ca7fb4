"""The difference-captioning builders: one schema, real annotations, bare names, bad input.

Real Spot-the-Diff and Image Editing Request annotations come from ``../shared`` (``shared_dir``),
with generated placeholder PNGs at their real file names (each one distinct: a ``tEXt`` chunk names
it, so byte-exact copying is checked, and thousands are written in well under a second).
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from diffbench.data import building, samples
from diffbench.data.caption_builder import CaptionSourceError
from diffbench.data.synth import captions as synth
from conftest import REPO_ROOT

NAMES = ["omnidiff", "spot_the_diff", "clevr_change", "clevr_dc", "image_editing_request"]
SCHEMA = ["id", "image_before", "image_after", "captions", "change_types", "domain", "scenario"]
SAMPLE_N = 48  # four pairs a change type for OmniDiff; a few dozen pairs for each set
SIZE = (32, 32)


def _placeholder_base() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", SIZE, (90, 120, 150)).save(buffer, format="PNG")
    return buffer.getvalue()


_BASE_PNG = _placeholder_base()


def placeholder_png(name: str) -> bytes:
    """A valid 32x32 PNG whose bytes are unique to ``name`` (a tEXt chunk after IHDR)."""
    data = b"Comment\0" + name.encode()
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return _BASE_PNG[:33] + chunk + _BASE_PNG[33:]


def write_images(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in set(names):
        (folder / name).write_bytes(placeholder_png(name))


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    """A datasets cache of this test's own, so its builds never replace the session's."""
    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    return root


@pytest.fixture(scope="session")
def caption_sets_built(hf_home):
    """Every difference-captioning sample built into the session's datasets cache: name -> BuildSummary."""
    from diffbench.data.building import build_configs

    # overwrite: other test files build these samples at other sizes into the same session cache
    return {name: build_configs(name, ["default"], "sample", n=SAMPLE_N, seed=0, image_size=SIZE, overwrite=True)[0]
            for name in NAMES}


def raw(dataset):
    from datasets import Image as ImageFeature

    return dataset.cast_column("image_before", ImageFeature(decode=False)).cast_column(
        "image_after", ImageFeature(decode=False)
    )


# -- real annotations --------------------------------------------------------------------------------


def spot_the_diff_subset(shared_dir: Path, out: Path, pairs_per_split: int = 120) -> Path:
    """The first ``pairs_per_split`` distinct img_ids of each real split and every pair whose only
    sentence is blank, with every entry of each (so sentences spread over several entries are
    gathered), in the official layout."""
    for split in ("train", "val", "test"):
        entries = json.loads((shared_dir / "data/spot_the_diff/annotations" / f"{split}.json").read_text())
        blank = {e["img_id"] for e in entries if not any(s.strip() for s in e["sentences"])}
        keep = [i for n, i in enumerate(dict.fromkeys(e["img_id"] for e in entries)) if n < pairs_per_split or i in blank]
        kept = [e for e in entries if e["img_id"] in set(keep)]
        (out / "data/annotations").mkdir(parents=True, exist_ok=True)
        (out / "data/annotations" / f"{split}.json").write_text(json.dumps(kept))
        write_images(out / "data/resized_images", [n for i in keep for n in (f"{i}.png", f"{i}_2.png")])
    return out


#: the 7 test pairs whose only reference is an empty sentence, kept by the official ground truth
#: (harsh19/spot-the-diff, code/predictions/ddla_rerun_gtfile.json: 1,270 pairs, 2,107 references)
BLANK_TEST_PAIRS = ["9420", "8682", "8693", "10644", "12201", "12326", "12187"]


def test_spot_the_diff_real_annotations_keep_every_pair_and_reference(shared_dir, tmp_path):
    cls = building.builder_class("spot_the_diff")
    builder = cls(config_name="default", source=str(tmp_path), cache_dir=str(tmp_path / "c"))
    splits = builder.read_pairs(shared_dir / "data" / "spot_the_diff")  # annotations/ without data/
    assert {s: len(p) for s, p in splits.items()} == {"train": 8566, "validation": 1493, "test": 1270}
    assert {s: sum(len(p.captions) for p in pairs) for s, pairs in splits.items()} == {
        "train": 17676, "validation": 3310, "test": 2107}
    blank = {s: [p.id for p in pairs if not any(c.strip() for c in p.captions)] for s, pairs in splits.items()}
    assert {s: len(ids) for s, ids in blank.items()} == {"train": 37, "validation": 4, "test": 7}
    assert sorted(blank["test"]) == sorted(BLANK_TEST_PAIRS)
    test = {p.id: p for p in splits["test"]}
    assert test["9420"].captions == [""]
    for split, upstream in (("train", "train"), ("validation", "val"), ("test", "test")):
        entries = json.loads((shared_dir / "data/spot_the_diff/annotations" / f"{upstream}.json").read_text())
        gathered = {}
        for e in entries:  # the official ground truth: first appearance order, sentences verbatim
            gathered.setdefault(e["img_id"], []).extend(e["sentences"])
        assert [(p.id, p.captions) for p in splits[split]] == list(gathered.items())
    assert test["256"].captions == ["person with umbrella is gone", "person with red coat is moved",
                                    "car up at top to left is now missing"]
    assert test["256"].image_after.name == "256_2.png"


def test_spot_the_diff_builds_real_annotations_byte_exact(shared_dir, tmp_path, private_cache):
    source = spot_the_diff_subset(shared_dir, tmp_path / "std")
    summary = building.build("spot_the_diff", "default", source=str(source))
    assert set(summary.rows) == {"train", "validation", "test"}
    test = raw(building.load_built("spot_the_diff", None, "test"))
    assert test.column_names == SCHEMA
    entries = json.loads((source / "data/annotations/test.json").read_text())
    gathered = {}
    for e in entries:
        gathered.setdefault(e["img_id"], []).extend(e["sentences"])
    assert test["id"] == list(gathered)
    assert set(BLANK_TEST_PAIRS) <= set(test["id"])  # kept, as the official ground truth keeps them
    for row in test:
        assert row["captions"] == gathered[row["id"]]
        assert row["image_before"]["bytes"] == placeholder_png(f"{row['id']}.png")
        assert row["image_after"]["bytes"] == placeholder_png(f"{row['id']}_2.png")
        assert row["change_types"] == [] and row["domain"] == "real"
    assert any(len(c) > 1 for c in test["captions"])  # pairs spread over entries were gathered


def test_image_editing_request_builds_every_real_annotation(shared_dir, tmp_path, private_cache):
    source = tmp_path / "iedit"
    source.mkdir()
    names = []
    for split in ("train", "valid", "test"):
        shutil.copy(shared_dir / "data/image_editing_request" / f"{split}.json", source)
        names += [e[k] for e in json.loads((source / f"{split}.json").read_text()) for k in ("img0", "img1")]
    write_images(source / "images", names)
    summary = building.build("image_editing_request", "default", source=str(source))
    assert summary.rows == {"train": 3061, "validation": 383, "test": 495}
    valid = raw(building.load_built("image_editing_request", None, "validation"))
    upstream = {e["uid"]: e for e in json.loads((source / "valid.json").read_text())}
    for row in valid.select(range(0, 383, 7)):
        entry = upstream[row["id"]]
        assert row["captions"] == entry["sents"] and len(row["captions"]) == 3  # verbatim
        assert row["image_before"]["bytes"] == placeholder_png(entry["img0"])
        assert row["image_after"]["bytes"] == placeholder_png(entry["img1"])


# -- the samples, the schema, bare names ---------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_sample_builds_on_the_shared_schema(caption_sets_built, name):
    dataset = building.load_built(name)
    assert sorted(dataset) == ["test", "train", "validation"]
    cls = building.builder_class(name)
    vocabulary = set(cls.CHANGE_TYPES)
    ids = []
    for split in dataset.values():
        assert split.column_names[: len(SCHEMA)] == SCHEMA
        assert split.features["captions"].feature.dtype == "string"
        assert all(captions and all(c.strip() for c in captions) for captions in split["captions"])
        assert {t for types in split["change_types"] for t in types} <= vocabulary
        ids += split["id"]
    assert len(ids) == len(set(ids))
    row = dataset["test"][0]
    assert row["image_before"].size == SIZE
    # A sample build describes the synthetic data under diffbench's licence, not the release, and cites the paper.
    info = building.load_built(name, None, "test").info
    assert f"Built by diffbench from the synthetic sample (n={SAMPLE_N}, seed=0, 32x32 images)" in info.description
    assert "Synthetic sample: not comparable to published results" in info.description
    assert info.license == samples.SAMPLE_LICENSE and info.citation == cls.CITATION


def test_omnidiff_sample_covers_all_twelve_change_types(caption_sets_built):
    dataset = building.load_built("omnidiff")
    seen = {t for split in dataset.values() for types in split["change_types"] for t in types}
    assert seen == set(synth.OMNIDIFF_CHANGE_TYPES)
    row = dataset["train"][0]
    assert row["domain"] == "synthetic" and row["scenario"]
    assert row["captions"][0].startswith("The camera has moved")


def test_clevr_change_pairs_each_default_image_with_a_change_and_a_distractor(caption_sets_built):
    test = building.load_built("clevr_change", None, "test")
    assert test.column_names == SCHEMA + ["distractor"]
    by_id = dict(zip(test["id"], zip(test["distractor"], test["change_types"])))
    for row_id, (distractor, types) in by_id.items():
        stem, kind = row_id.rsplit("_", 1)
        assert distractor == (kind == "nonsemantic") and bool(types) == (not distractor)
        assert f"{stem}_{'semantic' if distractor else 'nonsemantic'}" in by_id


def test_cli_builds_each_dataset_and_its_bare_name_loads_that_build(shared_dir, tmp_path, private_cache, monkeypatch,
                                                                      capsys):
    """``diffbench build NAME`` then ``load_dataset(NAME)`` gives that build, for the five datasets; a
    rebuild from another source (``--overwrite``) is what the bare name gives next. (A fresh interpreter
    in another directory is tests/release/test_fresh_env.py's proof; this one runs in-process.)"""
    from datasets import load_dataset

    from diffbench import cli
    from diffbench.data import provenance

    source = spot_the_diff_subset(shared_dir, tmp_path / "std", pairs_per_split=10)
    monkeypatch.chdir(tmp_path)  # no folder here is named like a dataset
    for name in NAMES:
        assert cli.main(["build", name, "--source", "sample", "--n", "12", "--image-size", "32x32"]) == 0, name
    assert cli.main(["build", "spot_the_diff", "--source", str(source), "--overwrite"]) == 0  # replaces the sample
    capsys.readouterr()
    for name in NAMES:
        loaded = load_dataset(name, cache_dir=str(private_cache))
        assert sorted(loaded) == ["test", "train", "validation"], name
        record = provenance.of_dataset(loaded)
        assert record["dataset"] == name and record["config"] == building.default_config(name)
        if name == "spot_the_diff":
            assert record["source"] == "local" and record["folder"] == str(source.resolve())
            for split, upstream in (("train", "train"), ("validation", "val"), ("test", "test")):
                entries = json.loads((source / "data/annotations" / f"{upstream}.json").read_text())
                assert loaded[split]["id"] == list(dict.fromkeys(e["img_id"] for e in entries)), split
            assert loaded["test"].num_rows == 10 + len(BLANK_TEST_PAIRS)  # the real subset, blank pairs too
        else:
            assert (record["source"], record["n"], record["image_size"]) == ("synthetic", 12, [32, 32]), name
            assert loaded["test"][0]["image_before"].size == SIZE
    assert sum(map(len, load_dataset("omnidiff", cache_dir=str(private_cache)).values())) == 12


# -- bad input ---------------------------------------------------------------------------------------


def _sample(name: str, tmp_path: Path) -> Path:
    return synth.WRITERS[name](tmp_path / f"src-{name}", 18, 0, SIZE)


def _edit_json(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value, indent=1))


def _missing_images(source: Path):
    removed = [source / "data/resized_images/1000.png", source / "data/resized_images/1011_2.png",
               source / "data/resized_images/1017.png"]  # one in each split
    for path in removed:
        path.unlink()
    return [f"{removed[0]}: image file missing (referenced by", "2 more image file(s) missing"] + [
        str(p) for p in removed]


def _malformed_json(source: Path):
    path = source / "data/annotations/val.json"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"img_id":', '"img_id"')  # line 3: a missing colon
    path.write_text("\n".join(lines))
    after_key = lines[2].index('"img_id"') + len('"img_id"')
    column = after_key + len(lines[2][after_key:]) - len(lines[2][after_key:].lstrip()) + 1  # the value's quote
    return [f"{path}, line 3, column {column}: malformed JSON: Expecting ':' delimiter"]


def _malformed_jsonl(source: Path):
    path = source / "validation.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:-1]  # line 2 loses its closing brace
    path.write_text("\n".join(lines) + "\n")
    return [f"{path}, line 2, column {len(lines[1]) + 1}: malformed JSON"]


def _index_out_of_range(source: Path):
    _edit_json(source / "splits.json", lambda s: s["test"].append(18))
    return ["splits.json, 'test' entry", "index 18 out of range: images/ holds 18 images"]


def _clevr_dc_index_out_of_range(source: Path):
    _edit_json(source / "split.json", lambda s: s["val"].insert(0, -1))
    return ["split.json, 'val' entry 0: expected an image number, got -1"]


def _duplicate_ids(source: Path):
    first = json.loads((source / "train.jsonl").read_text().splitlines()[0])["id"]
    path = source / "test.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    record["id"] = first
    lines[1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    return [f"{path}, line 2", f"duplicate id {first!r}, first seen at {source / 'train.jsonl'}, line 1"]


def _duplicate_uid(source: Path):
    _edit_json(source / "valid.json", lambda e: e[1].update(uid=e[0]["uid"]))
    return ["valid.json, entry 1", "duplicate id 'Synthetic_"]


def _no_captions(source: Path):
    _edit_json(source / "data/annotations/test.json", lambda e: e[0].update(sentences=[]))
    return ["test.json, entry 0", "annotation without captions (img_id '1015'"]


def _no_captions_omnidiff(source: Path):
    path = source / "train.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[3])
    del record["captions"]
    lines[3] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    return [f"{path}, line 4", "annotation without captions"]


def _no_captions_clevr(source: Path):
    _edit_json(source / "no_change_captions.json", lambda c: c.pop("CLEVR_default_000004.png"))
    return ["no_change_captions.json", "annotation without captions for CLEVR_default_000004.png"]


def _unknown_change_type(source: Path):
    path = source / "test.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record["change_types"] = ["colour"]
    lines[0] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    return [f"{path}, line 1", "unknown change type(s) ['colour']"]


#: (dataset, edit of its sample returning the parts of the error), by case
BAD_INPUTS = [
    pytest.param("spot_the_diff", _missing_images, id="missing-images"),
    pytest.param("spot_the_diff", _malformed_json, id="malformed-json"),
    pytest.param("omnidiff", _malformed_jsonl, id="malformed-jsonl"),
    pytest.param("clevr_change", _index_out_of_range, id="index-out-of-range"),
    pytest.param("clevr_dc", _clevr_dc_index_out_of_range, id="clevr-dc-index-out-of-range"),
    pytest.param("omnidiff", _duplicate_ids, id="duplicate-ids"),
    pytest.param("image_editing_request", _duplicate_uid, id="duplicate-uid"),
    pytest.param("spot_the_diff", _no_captions, id="no-captions"),
    pytest.param("omnidiff", _no_captions_omnidiff, id="no-captions-jsonl"),
    pytest.param("clevr_change", _no_captions_clevr, id="no-captions-clevr"),
    pytest.param("omnidiff", _unknown_change_type, id="unknown-change-type"),
]


@pytest.mark.parametrize("previous", [False, True], ids=["first-build", "over-a-good-build"])
@pytest.mark.parametrize("name, edit", BAD_INPUTS)
def test_bad_input_is_located_and_leaves_nothing_partial(name, edit, previous, tmp_path, private_cache):
    source = _sample(name, tmp_path)
    if previous:
        good = building.build(name, "default", source=str(source))
    expected = edit(source)
    with pytest.raises(CaptionSourceError) as raised:
        building.build(name, "default", source=str(source))
    message = str(raised.value)
    for part in expected:
        assert part in message, message
    if previous:  # the last good build is what a reader gets
        assert {s: len(d) for s, d in building.load_built(name).items()} == good.rows
    else:
        with pytest.raises(building.NotBuiltError):
            building.load_built(name)
    assert not list(private_cache.glob(f"{name}/*/*/*.incomplete"))
    assert not [p for p in (private_cache / building.STAGING_DIRNAME).glob("*") if p.is_dir()]


def test_undecodable_image_is_named(tmp_path, private_cache):
    source = _sample("clevr_dc", tmp_path)
    broken = source / "aft" / "8000.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(CaptionSourceError) as raised:
        building.build("clevr_dc", "default", source=str(source))
    message = str(raised.value)
    assert message.startswith(f"{broken}: undecodable image (UnidentifiedImageError"), message
    assert message.endswith(f"(referenced by {source / 'captions.json'}, entry '8000', column 'image_after')"), message


def test_hub_source_without_an_official_repo_says_what_to_do(private_cache):
    with pytest.raises(CaptionSourceError, match="no official Hub repo: pass repo_id="):
        building.build("spot_the_diff", "default", source="hub")


# -- cards ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_card_cites_the_paper_and_states_the_license(name):
    card = (REPO_ROOT / "datasets" / name / "README.md").read_text()
    cls = building.builder_class(name)
    key = cls.CITATION.split("{", 1)[1].split(",", 1)[0]
    assert key in card, f"the card of {name} does not cite {key}"
    assert f"license: {cls.LICENSE}" in card
    assert "pip install diffbench" in card
