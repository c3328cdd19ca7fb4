"""The upstream layouts each difference-captioning builder reads, as published (and the variants users hold).

CLEVR-Change: ``type_mapping.json`` with the official numbered tails (``"000123.png"``) and with full
names. CLEVR-DC: the published ``captions.json`` / ``split.json`` / ``bef/N.png`` / ``aft/N.png``
(unpadded numbers, each pairing its own images and captions), the action blocks checked against the
captions, and the zero-padded third-party variant. Image Editing Request: the repository's
``dataset/adobe/`` with the images where a user unpacks them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from diffbench.data import building
from diffbench.data.caption_builder import CaptionSourceError
from diffbench.data.synth import captions as synth

SIZE = (32, 32)


def _pairs(name: str, source: Path, tmp_path: Path, **config) -> dict:
    builder = building.builder_class(name)(config_name="default", source=str(source), cache_dir=str(tmp_path / "c"),
                                           **config)
    return builder.read_pairs(Path(source))


def _rows(pairs: dict) -> dict:
    return {split: [(p.id, p.image_before.name, p.image_after.name, p.captions, list(p.change_types)) for p in ps]
            for split, ps in pairs.items()}


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    return root


# -- CLEVR-Change ------------------------------------------------------------------------------------------


def test_clevr_change_reads_official_tails_and_full_names_alike(tmp_path):
    source = synth.write_clevr_change(tmp_path / "cc", 10, 0, SIZE)
    mapping = json.loads((source / "type_mapping.json").read_text())
    assert mapping["color"][0] == "000000.png"  # the official format: the numbered tail
    official = _pairs("clevr_change", source, tmp_path)
    (source / "type_mapping.json").write_text(json.dumps(
        {t: [f"CLEVR_default_{name}" for name in names] for t, names in mapping.items()}))
    assert _rows(_pairs("clevr_change", source, tmp_path)) == _rows(official)
    for pairs in official.values():  # the row contract the official report relies on
        for pair in pairs:
            distractor = pair.extras["distractor"]
            assert pair.id.endswith("_nonsemantic" if distractor else "_semantic")
            assert pair.change_types == ([] if distractor else [mapping_type(mapping, pair.id)])


def mapping_type(mapping: dict, row_id: str) -> str:
    tail = row_id.split("_")[2] + ".png"  # CLEVR_default_000003_semantic -> the official key 000003.png
    return next(t for t, names in mapping.items() if tail in names)


def test_clevr_change_type_mapping_errors_are_located(tmp_path):
    source = synth.write_clevr_change(tmp_path / "cc", 10, 0, SIZE)
    mapping = json.loads((source / "type_mapping.json").read_text())
    mapping["move"].append(mapping["color"][0])
    (source / "type_mapping.json").write_text(json.dumps(mapping))
    with pytest.raises(CaptionSourceError, match=r"type_mapping.json, 'move' entry \d+: '000000.png' is listed under both 'color' and 'move'"):
        _pairs("clevr_change", source, tmp_path)
    mapping["move"][-1] = "default.png"
    (source / "type_mapping.json").write_text(json.dumps(mapping))
    with pytest.raises(CaptionSourceError, match=r"expected a numbered image name like '000123.png', got 'default.png'"):
        _pairs("clevr_change", source, tmp_path)


def test_clevr_change_reads_the_extracted_data_folder(tmp_path):
    source = synth.write_clevr_change(tmp_path / "cc" / "data", 6, 0, SIZE)  # clevr_change.tar.gz extracts data/
    assert _rows(_pairs("clevr_change", source.parent, tmp_path)) == _rows(_pairs("clevr_change", source, tmp_path))


# -- CLEVR-DC ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clevr_dc(tmp_path_factory) -> Path:
    """66 pairs: 11 numbers a block, so unpadded names sort out of number order (10.png < 2.png)."""
    return synth.write_clevr_dc(tmp_path_factory.mktemp("dc") / "clevr_dc", 66, 0, SIZE)


def test_clevr_dc_published_layout_pairs_each_number_with_its_own_images_and_captions(clevr_dc, tmp_path):
    captions = json.loads((clevr_dc / "captions.json").read_text())
    split = json.loads((clevr_dc / "split.json").read_text())
    assert "10" in captions and (clevr_dc / "bef" / "10.png").is_file() and (clevr_dc / "aft" / "8010.png").is_file()
    pairs = _pairs("clevr_dc", clevr_dc, tmp_path)
    upstream = {"train": "train", "validation": "val", "test": "test"}
    for name, ps in pairs.items():
        assert [p.id for p in ps] == [str(n) for n in split[upstream[name]]]  # split.json's order
        for p in ps:
            assert p.image_before == clevr_dc / "bef" / f"{p.id}.png" and p.image_after == clevr_dc / "aft" / f"{p.id}.png"
            assert p.captions == captions[p.id]
            assert p.change_types == [synth.CLEVR_DC_ACTIONS[int(p.id) // 8000]]


def test_clevr_dc_zero_padded_variant_reads_the_same_rows(clevr_dc, tmp_path):
    padded = tmp_path / "padded"
    for old, new in (("bef", "images"), ("aft", "sc_images")):  # as third-party code renames them
        (padded / new).mkdir(parents=True)
        for image in (clevr_dc / old).iterdir():
            shutil.copy(image, padded / new / f"{int(image.stem):06d}.png")
    captions = json.loads((clevr_dc / "captions.json").read_text())
    (padded / "change_captions.json").write_text(json.dumps({f"{int(k):06d}.png": v for k, v in captions.items()}))
    shutil.copy(clevr_dc / "split.json", padded / "splits.json")
    official, variant = _pairs("clevr_dc", clevr_dc, tmp_path), _pairs("clevr_dc", padded, tmp_path)
    strip = lambda rows: {s: [(i, c, t) for i, _, _, c, t in r] for s, r in rows.items()}  # noqa: E731
    assert strip(_rows(variant)) == strip(_rows(official))
    assert variant["test"][0].image_after == padded / "sc_images" / f"{int(variant['test'][0].id):06d}.png"


def test_clevr_dc_block_order_is_checked_against_the_captions(clevr_dc, tmp_path, private_cache):
    source = Path(shutil.copytree(clevr_dc, tmp_path / "swapped"))
    captions = json.loads((source / "captions.json").read_text())
    for position in range(11):  # the color block and the no-change block trade captions
        a, b = str(position), str(5 * 8000 + position)
        captions[a], captions[b] = captions[b], captions[a]
    (source / "captions.json").write_text(json.dumps(captions))
    with pytest.raises(CaptionSourceError) as raised:
        building.build("clevr_dc", "default", source=str(source))
    message = str(raised.value)
    assert "\n" not in message
    assert "captions.json, entry '0': the captions of 11 of the 11 pairs of the 'color' block (numbers 0..7999) say " \
           "nothing changed" in message and "check_action_blocks=False" in message
    summary = building.build("clevr_dc", "default", source=str(source), check_action_blocks=False)
    assert sum(summary.rows.values()) == 66


def test_clevr_dc_number_outside_the_action_blocks_is_an_error(clevr_dc, tmp_path):
    source = Path(shutil.copytree(clevr_dc, tmp_path / "outside"))
    split = json.loads((source / "split.json").read_text())
    split["test"].append(48000)
    (source / "split.json").write_text(json.dumps(split))
    with pytest.raises(CaptionSourceError, match=r"split.json, 'test' entry \d+: image number 48000 is outside the 6 action "
                                             r"blocks of 8,000 \(0..47999\)"):
        _pairs("clevr_dc", source, tmp_path)


# -- Image Editing Request ---------------------------------------------------------------------------------


@pytest.mark.parametrize("images_at", ["dataset/adobe/images", "images", "dataset/adobe"])
def test_image_editing_request_reads_the_repository_layout(images_at, tmp_path):
    flat = synth.write_image_editing_request(tmp_path / "flat", 10, 0, SIZE)
    clone = tmp_path / "VisualRelationships"
    (clone / "dataset" / "adobe").mkdir(parents=True)
    for split in ("train", "valid", "test"):
        shutil.copy(flat / f"{split}.json", clone / "dataset" / "adobe")
    shutil.copytree(flat / "images", clone / images_at, dirs_exist_ok=True)
    pairs = _pairs("image_editing_request", clone, tmp_path)
    assert _rows(pairs) == _rows(_pairs("image_editing_request", flat, tmp_path))
    assert pairs["train"][0].image_before.parent == clone / images_at
