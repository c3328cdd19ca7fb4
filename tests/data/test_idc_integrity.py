"""Hostile input to the image-difference-captioning builders (issue 14, items 1 and 2).

Each case feeds one bad thing to a real build over a good build of the same dataset and checks that
the error is one line naming the file, the row (entry) and the column, and that the good build is
still what a reader loads, byte for byte. The layouts are the samples ``diffbench.data.synth.captions`` writes
in each official layout; the images are real PNGs (a decompression bomb is a real 20000x20000 PNG).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from diffbench.data import building, caption_builder
from diffbench.data.synth import captions as synth

SIZE = (32, 32)
N = 12
NAMES = ["omnidiff", "spot_the_diff", "clevr_change", "clevr_dc", "image_editing_request"]


def _png(size, mode="1") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One datasets cache for this module: the good builds every case must leave untouched."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(building, "cache_root", lambda: root)
        yield root


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    return {name: synth.WRITERS[name](root / name, N, 0, SIZE) for name in NAMES}


def _build(name: str, source: Path, **config):
    kwargs = {"overwrite": True} if "overwrite" in inspect.signature(building.build).parameters else {}
    return building.build(name, "default", source=str(source), **kwargs, **config)


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def good(cache, sources):
    """name -> (rows,) of the good builds."""
    return {name: (_build(name, sources[name]).rows,) for name in NAMES}


def _copy(sources, name, tmp_path) -> Path:
    return Path(shutil.copytree(sources[name], tmp_path / name))


def _fails(name: str, source: Path, good, expected: list[str], **config) -> str:
    """Build ``source``, expect a one-line error holding every ``expected`` part, and the good build kept:
    the same rows, and every file of the dataset's cache folder byte for byte as it was."""
    before = _digest(building.cache_root() / name)
    with pytest.raises(ValueError) as raised:
        _build(name, source, **config)
    message = str(raised.value)
    assert "\n" not in message, message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert {split: len(d) for split, d in building.load_built(name).items()} == good[name][0]
    assert _digest(building.cache_root() / name) == before
    return message


def _edit(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value, indent=1))


def _spot_test_pair(source: Path) -> tuple[int, str]:
    """(entry, img_id) of the first test pair of a Spot-the-Diff sample."""
    return 0, json.loads((source / "data/annotations/test.json").read_text())[0]["img_id"]


# -- ids ---------------------------------------------------------------------------------------------


def test_null_img_id_is_an_error_never_the_string_none(sources, good, tmp_path):
    source = _copy(sources, "spot_the_diff", tmp_path)
    _edit(source / "data/annotations/test.json", lambda e: e[1].update(img_id=None))
    _fails("spot_the_diff", source, good, [f"{source / 'data/annotations/test.json'}, entry 1, column 'img_id': "
                                           "expected a non-empty string, got None"])


def test_ids_equal_after_normalisation_are_duplicates(sources, good, tmp_path):
    source = _copy(sources, "spot_the_diff", tmp_path)
    first = json.loads((source / "data/annotations/train.json").read_text())[0]["img_id"]
    _edit(source / "data/annotations/test.json", lambda e: e[0].update(img_id="0" + first))
    _fails("spot_the_diff", source, good, ["test.json, entry 0", f"duplicate id '0{first}' (the same as '{first}' after "
                                           "normalisation), first seen at", "train.json, entry 0"])


def test_uid_of_another_type_is_an_error(sources, good, tmp_path):
    source = _copy(sources, "image_editing_request", tmp_path)
    _edit(source / "valid.json", lambda e: e[1].update(uid=7))
    _fails("image_editing_request", source, good, ["valid.json, entry 1, column 'uid': expected a non-empty string, got 7"])


def test_clevr_dc_caption_keys_equal_as_numbers_are_duplicates(sources, good, tmp_path):
    source = _copy(sources, "clevr_dc", tmp_path)
    _edit(source / "captions.json", lambda c: c.update({"08000": c["8000"]}))
    _fails("clevr_dc", source, good, ["captions.json, entry '08000': image number 8000 appears twice (also '8000')"])


# -- captions ------------------------------------------------------------------------------------------


def test_non_string_captions_are_errors(sources, good, tmp_path):
    source = _copy(sources, "spot_the_diff", tmp_path)
    _edit(source / "data/annotations/val.json", lambda e: e[1].update(sentences=[123, {"a": 1}, "ok"]))
    _fails("spot_the_diff", source, good, ["val.json, entry 1, column 'sentences': sentence 0 is not a string: 123"])


def test_non_string_captions_are_errors_in_every_builder(sources, good, tmp_path):
    source = _copy(sources, "clevr_change", tmp_path)
    _edit(source / "change_captions.json", lambda c: c.update({"CLEVR_default_000003.png": ["ok", None]}))
    _fails("clevr_change", source, good, ["change_captions.json, entry 'CLEVR_default_000003.png'",
                                          "column 'captions': caption 1 is not a string: None"])


def test_blank_caption_is_an_error_where_upstream_has_none(sources, good, tmp_path):
    source = _copy(sources, "image_editing_request", tmp_path)
    _edit(source / "test.json", lambda e: e[0].update(sents=["make it brighter", " ", "ok"]))
    _fails("image_editing_request", source, good, ["test.json, entry 0, column 'captions' (upstream 'sents'): "
                                                   "caption 1 is blank: ' '"])


def test_blank_caption_is_kept_where_upstream_has_them(sources, tmp_path, cache):
    source = _copy(sources, "spot_the_diff", tmp_path)
    _edit(source / "data/annotations/test.json", lambda e: e[0].update(sentences=[""]))
    _build("spot_the_diff", source)
    test = building.load_built("spot_the_diff", None, "test")
    assert test[0]["captions"] == [""]  # verbatim; a recipe filters: ds.filter(lambda r: any(c.strip() ...))
    _build("spot_the_diff", sources["spot_the_diff"])  # the module's good build back


# -- paths ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, edit, expected", [
    ("spot_the_diff", lambda s: _edit(s / "data/annotations/test.json", lambda e: e[0].update(img_id="../../../../outside/secret")),
     ["test.json, entry 0, column 'img_id': path '../../../../outside/secret.png' leaves the source folder"]),
    ("image_editing_request", lambda s: _edit(s / "train.json", lambda e: e[3].update(img1="../../etc/passwd")),
     ["train.json, entry 3, column 'img1': path '../../etc/passwd' leaves the source folder"]),
    ("omnidiff", lambda s: (s / "test.jsonl").write_text("".join(
        json.dumps({**json.loads(line), "image_after": "/etc/hostname"}) + "\n" if n == 1 else line + "\n"
        for n, line in enumerate((s / "test.jsonl").read_text().splitlines()))),
     ["test.jsonl, line 2, column 'image_after': path '/etc/hostname' leaves the source folder"]),
], ids=["spot_the_diff", "image_editing_request", "omnidiff"])
def test_a_path_leaving_the_source_folder_is_an_error(name, edit, expected, sources, good, tmp_path):
    source = _copy(sources, name, tmp_path)
    edit(source)
    _fails(name, source, good, expected)


# -- images --------------------------------------------------------------------------------------------


def _bad_after_image(sources, tmp_path, blob_of) -> tuple[Path, Path, str]:
    source = _copy(sources, "spot_the_diff", tmp_path)
    entry, img_id = _spot_test_pair(source)
    image = source / "data/resized_images" / f"{img_id}_2.png"
    image.write_bytes(blob_of(image.read_bytes()))
    return source, image, f"(referenced by {source / 'data/annotations/test.json'}, entry {entry}, column 'image_after' (upstream 'img_id'))"


def test_truncated_png_is_an_error(sources, good, tmp_path):
    source, image, where = _bad_after_image(sources, tmp_path, lambda blob: blob[:-20])
    _fails("spot_the_diff", source, good, [f"{image}: undecodable image (", where])


def test_garbage_after_a_png_signature_is_an_error(sources, good, tmp_path):
    source, image, where = _bad_after_image(sources, tmp_path, lambda blob: blob[:8] + b"garbage " * 64)
    _fails("spot_the_diff", source, good, [f"{image}: undecodable image (UnidentifiedImageError: cannot identify image file)",
                                           where])


def test_decompression_bomb_is_an_error(sources, good, tmp_path):
    bomb = _png((20000, 20000))
    assert len(bomb) < 100_000  # 400 megapixels in a few tens of kilobytes
    source, image, where = _bad_after_image(sources, tmp_path, lambda blob: bomb)
    _fails("spot_the_diff", source, good, [f"{image}: image of 400,000,000 pixels exceeds the limit of 89,478,485 pixels "
                                           "(max_image_pixels)", where])


def test_image_above_the_pixel_limit_is_an_error_unless_the_limit_is_raised(sources, good, tmp_path):
    large = _png((10000, 10000))
    source, image, where = _bad_after_image(sources, tmp_path, lambda blob: large)
    _fails("spot_the_diff", source, good, [f"{image}: image of 10000x10000 = 100,000,000 pixels exceeds the limit of "
                                           "89,478,485 pixels (max_image_pixels)", where])
    summary = _build("spot_the_diff", source, max_image_pixels=100_000_000)  # the config field raises it
    assert sum(summary.rows.values()) == sum(good["spot_the_diff"][0].values())
    _build("spot_the_diff", sources["spot_the_diff"])  # the module's good build back


def test_images_are_stored_as_their_original_bytes(good, sources):
    from datasets import Image as ImageFeature

    test = building.load_built("clevr_dc", None, "test").cast_column("image_before", ImageFeature(decode=False))
    for row in test:
        assert row["image_before"]["bytes"] == (sources["clevr_dc"] / "bef" / f"{row['id']}.png").read_bytes()


# -- unreadable files and folders ------------------------------------------------------------------------

_UNREADABLE = r"""
import json, os, sys
from pathlib import Path
from diffbench.data import building
source, case = Path(sys.argv[1]), sys.argv[2]
name = {"file": "spot_the_diff", "folder": "clevr_change"}[case]
cls = building.builder_class(name)
if case == "file":
    test = json.loads((source / "data/annotations/test.json").read_text())
    os.chmod(source / "data/resized_images" / f"{test[0]['img_id']}_2.png", 0)
else:
    os.chmod(source / "nsc_images", 0)
try:
    cls(config_name="default", source=str(source), cache_dir=sys.argv[3]).download_and_prepare()
    print(json.dumps({"error": None}))
except Exception as err:
    print(json.dumps({"error": str(err), "type": type(err).__name__}))
"""


def _without_read_override() -> list[str]:
    """A command prefix under which permissions apply (root reads a mode-000 file otherwise)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("case, expected", [
    ("file", ["_2.png: cannot be read: Permission denied", "test.json, entry 0, column 'image_after'"]),
    ("folder", ["nsc_images/CLEVR_nonsemantic_", ": image file cannot be read: Permission denied (referenced by",
                "no_change_captions.json, entry 'CLEVR_default_", "column 'image_after'"]),
])
def test_unreadable_file_or_folder_is_an_error_never_skipped(case, expected, sources, tmp_path):
    name = {"file": "spot_the_diff", "folder": "clevr_change"}[case]
    source = _copy(sources, name, tmp_path)
    done = subprocess.run([*_without_read_override(), sys.executable, "-c", _UNREADABLE, str(source), case,
                           str(tmp_path / "c")], capture_output=True, text=True, timeout=120)
    try:
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["type"] == "IDCSourceError", result
        assert "\n" not in result["error"]
        for part in expected:
            assert part in result["error"], result["error"]
    finally:
        for path in source.rglob("*"):
            path.chmod(0o755)


# -- --num-proc ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_num_proc_2_builds_the_same_rows(name, sources, good, monkeypatch):
    monkeypatch.setattr(caption_builder, "CHUNK_ROWS", 3)  # several shards a split, so two processes share them
    _build(name, sources[name])
    one = {split: d["id"] for split, d in building.load_built(name).items()}
    summary = building.build(name, "default", num_proc=2, source=str(sources[name]),
                             **({"overwrite": True} if "overwrite" in inspect.signature(building.build).parameters else {}))
    assert len(list(summary.path.glob("*-train-*.arrow"))) == 2  # written by two jobs
    two = {split: d["id"] for split, d in building.load_built(name).items()}
    assert two == one


# -- issue 23: integers and digit strings too long for Python ---------------------------------------------

DIGITS = "1" * 5000  # past Python's int<->str limit (4,300 digits): int() and json.loads fail naming nothing
BIG = "__5000_DIGITS__"  # written into the JSON as a bare 5,000-digit integer (json.dumps cannot write one)


def _edit_raw(path: Path, change) -> None:
    """:func:`_edit`, then :data:`BIG` (a JSON string) turned into a bare 5,000-digit integer literal."""
    _edit(path, change)
    path.write_text(path.read_text().replace(f'"{BIG}"', DIGITS))


def _omnidiff_line(source: Path) -> None:
    lines = (source / "test.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace(json.dumps(json.loads(lines[1])["id"]), DIGITS, 1)
    (source / "test.jsonl").write_text("\n".join(lines) + "\n")


def _clevr_dc_key(source: Path) -> None:
    _edit(source / "captions.json", lambda c: c.update({DIGITS: c["0"]}))


def _clevr_change_name(source: Path) -> None:
    _edit(source / "type_mapping.json", lambda t: t["color"].insert(0, DIGITS + ".png"))


@pytest.mark.parametrize("name, edit, expected", [
    ("spot_the_diff", lambda s: _edit_raw(s / "data/annotations/test.json", lambda e: e[1].update(img_id=BIG)),
     "test.json, entry 1, column 'img_id': expected a non-empty string, got an integer of 5,000 digits"),
    ("image_editing_request", lambda s: _edit_raw(s / "valid.json", lambda e: e[1].update(uid=BIG)),
     "valid.json, entry 1, column 'uid': expected a non-empty string, got an integer of 5,000 digits"),
    ("omnidiff", _omnidiff_line,
     "test.jsonl, line 2, column 'id': expected a non-empty string, got an integer of 5,000 digits"),
    ("clevr_dc", lambda s: _edit_raw(s / "split.json", lambda t: t["test"].insert(0, BIG)),
     "split.json, 'test' entry 0: expected an image number, got an integer of 5,000 digits"),
    ("clevr_dc", _clevr_dc_key,
     f"captions.json, entry {'1' * 60!r}... (5,000 characters): expected a key naming an image number (at most 18 "
     "digits)"),
    ("clevr_change", lambda s: _edit_raw(s / "splits.json", lambda t: t["test"].insert(0, BIG)),
     "splits.json, 'test' entry 0: expected an index into images/, got an integer of 5,000 digits"),
    ("clevr_change", _clevr_change_name,
     f"type_mapping.json, 'color' entry 0: expected a numbered image name like '000123.png', got {'1' * 60!r}... "
     "(5,004 characters)"),
], ids=["spot_the_diff-img_id", "image_editing_request-uid", "omnidiff-id", "clevr_dc-split-number",
        "clevr_dc-captions-key", "clevr_change-split-index", "clevr_change-type-mapping-name"])
def test_a_5000_digit_id_names_file_entry_and_column(name, edit, expected, sources, good, tmp_path):
    source = _copy(sources, name, tmp_path)
    edit(source)
    message = _fails(name, source, good, [expected])
    assert len(message) < 1000, message  # the number is named, not printed


def test_a_5000_digit_string_id_is_normalised_without_int(sources, good, tmp_path):
    """Spot-the-Diff ids are digit strings: normalising one (``"07"`` is ``"7"``) must not call int()."""
    source = _copy(sources, "spot_the_diff", tmp_path)
    _edit(source / "data/annotations/test.json", lambda e: e[0].update(img_id="0" + DIGITS))
    _edit(source / "data/annotations/val.json", lambda e: e[0].update(img_id=DIGITS))
    # Normalised, the two are one id: the duplicate is the error (before any image file is looked for).
    _fails("spot_the_diff", source, good, ["test.json, entry 0: duplicate id", "(5,001 characters) (the same as",
                                           "after normalisation), first seen at", "val.json, entry 0"])
