"""Hostile input to the difference-captioning builders (issue 14, items 1 and 2; issue 23).

Each case feeds one bad thing to a real build over a good build of the same dataset and checks that
the error is one line naming the file, the row (entry) and the column, and that the good build is
still what a reader loads, byte for byte. The layouts are the samples ``diffbench.data.synth.captions`` writes
in each official layout; the images are real PNGs (a decompression bomb is a real 20000x20000 PNG).
Most cases are one table, :data:`HOSTILE_RELEASES`: the dataset, the edit, and the parts the message holds.
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


# -- the edits of the table (each returns the values its expected parts name, beside ``source``) -------------

DIGITS = "1" * 5000  # past Python's int<->str limit (4,300 digits): int() and json.loads fail naming nothing
BIG = "__5000_DIGITS__"  # written into the JSON as a bare 5,000-digit integer (json.dumps cannot write one)


def _edit_raw(path: Path, change) -> None:
    """:func:`_edit`, then :data:`BIG` (a JSON string) turned into a bare 5,000-digit integer literal."""
    _edit(path, change)
    path.write_text(path.read_text().replace(f'"{BIG}"', DIGITS))


def _first_train_id_again_in_test(source: Path) -> dict:
    """The first training img_id, with a leading zero, as the first test pair's."""
    first = json.loads((source / "data/annotations/train.json").read_text())[0]["img_id"]
    _edit(source / "data/annotations/test.json", lambda e: e[0].update(img_id="0" + first))
    return {"first": first}


def _omnidiff_image_outside(source: Path) -> None:
    (source / "test.jsonl").write_text("".join(
        json.dumps({**json.loads(line), "image_after": "/etc/hostname"}) + "\n" if n == 1 else line + "\n"
        for n, line in enumerate((source / "test.jsonl").read_text().splitlines())))


def _bad_after_image(blob_of):
    """An edit giving the first test pair of a Spot-the-Diff sample the after image ``blob_of(its bytes)``."""
    def edit(source: Path) -> dict:
        img_id = json.loads((source / "data/annotations/test.json").read_text())[0]["img_id"]
        image = source / "data/resized_images" / f"{img_id}_2.png"
        image.write_bytes(blob_of(image.read_bytes()))
        return {"image": image, "where": f"(referenced by {source / 'data/annotations/test.json'}, entry 0, column "
                                         "'image_after' (upstream 'img_id'))"}
    return edit


def _bomb(blob: bytes) -> bytes:
    bomb = _png((20000, 20000))
    assert len(bomb) < 100_000  # 400 megapixels in a few tens of kilobytes
    return bomb


def _omnidiff_line(source: Path) -> None:
    lines = (source / "test.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace(json.dumps(json.loads(lines[1])["id"]), DIGITS, 1)
    (source / "test.jsonl").write_text("\n".join(lines) + "\n")


def _clevr_dc_key(source: Path) -> None:
    _edit(source / "captions.json", lambda c: c.update({DIGITS: c["0"]}))


def _clevr_change_name(source: Path) -> None:
    _edit(source / "type_mapping.json", lambda t: t["color"].insert(0, DIGITS + ".png"))


def _one_id_of_5000_digits_in_two_spellings(source: Path) -> None:
    """Spot-the-Diff ids are digit strings: normalising one (``"07"`` is ``"7"``) must not call int()."""
    _edit(source / "data/annotations/test.json", lambda e: e[0].update(img_id="0" + DIGITS))
    _edit(source / "data/annotations/val.json", lambda e: e[0].update(img_id=DIGITS))


#: (dataset, edit of a copy of its good source, the parts of the one-line error: ``str.format`` templates
#: of ``source`` and what the edit returns); the id is the name the case had as a test of its own
HOSTILE_RELEASES = [
    # -- ids
    pytest.param("spot_the_diff", lambda s: _edit(s / "data/annotations/test.json", lambda e: e[1].update(img_id=None)),
                 ["{source}/data/annotations/test.json, entry 1, column 'img_id': expected a non-empty string, got None"],
                 id="null-img-id-is-an-error-never-the-string-none"),
    pytest.param("spot_the_diff", _first_train_id_again_in_test,
                 ["test.json, entry 0", "duplicate id '0{first}' (the same as '{first}' after normalisation), first "
                  "seen at", "train.json, entry 0"],
                 id="ids-equal-after-normalisation-are-duplicates"),
    pytest.param("image_editing_request", lambda s: _edit(s / "valid.json", lambda e: e[1].update(uid=7)),
                 ["valid.json, entry 1, column 'uid': expected a non-empty string, got 7"],
                 id="uid-of-another-type-is-an-error"),
    pytest.param("clevr_dc", lambda s: _edit(s / "captions.json", lambda c: c.update({"08000": c["8000"]})),
                 ["captions.json, entry '08000': image number 8000 appears twice (also '8000')"],
                 id="clevr-dc-caption-keys-equal-as-numbers-are-duplicates"),
    # -- captions
    pytest.param("spot_the_diff",
                 lambda s: _edit(s / "data/annotations/val.json", lambda e: e[1].update(sentences=[123, {"a": 1}, "ok"])),
                 ["val.json, entry 1, column 'sentences': sentence 0 is not a string: 123"],
                 id="non-string-captions-are-errors"),
    pytest.param("clevr_change",
                 lambda s: _edit(s / "change_captions.json", lambda c: c.update({"CLEVR_default_000003.png": ["ok", None]})),
                 ["change_captions.json, entry 'CLEVR_default_000003.png'",
                  "column 'captions': caption 1 is not a string: None"],
                 id="non-string-captions-are-errors-in-every-builder"),
    pytest.param("image_editing_request",
                 lambda s: _edit(s / "test.json", lambda e: e[0].update(sents=["make it brighter", " ", "ok"])),
                 ["test.json, entry 0, column 'captions' (upstream 'sents'): caption 1 is blank: ' '"],
                 id="blank-caption-is-an-error-where-upstream-has-none"),
    # -- paths
    pytest.param("spot_the_diff",
                 lambda s: _edit(s / "data/annotations/test.json", lambda e: e[0].update(img_id="../../../../outside/secret")),
                 ["test.json, entry 0, column 'img_id': path '../../../../outside/secret.png' leaves the source folder"],
                 id="path-leaving-the-source-folder-spot_the_diff"),
    pytest.param("image_editing_request", lambda s: _edit(s / "train.json", lambda e: e[3].update(img1="../../etc/passwd")),
                 ["train.json, entry 3, column 'img1': path '../../etc/passwd' leaves the source folder"],
                 id="path-leaving-the-source-folder-image_editing_request"),
    pytest.param("omnidiff", _omnidiff_image_outside,
                 ["test.jsonl, line 2, column 'image_after': path '/etc/hostname' leaves the source folder"],
                 id="path-leaving-the-source-folder-omnidiff"),
    # -- images
    pytest.param("spot_the_diff", _bad_after_image(lambda blob: blob[:-20]), ["{image}: undecodable image (", "{where}"],
                 id="truncated-png-is-an-error"),
    pytest.param("spot_the_diff", _bad_after_image(lambda blob: blob[:8] + b"garbage " * 64),
                 ["{image}: undecodable image (UnidentifiedImageError: cannot identify image file)", "{where}"],
                 id="garbage-after-a-png-signature-is-an-error"),
    pytest.param("spot_the_diff", _bad_after_image(_bomb),
                 ["{image}: image of 400,000,000 pixels exceeds the limit of 89,478,485 pixels (max_image_pixels)",
                  "{where}"],
                 id="decompression-bomb-is-an-error"),
    # -- issue 23: integers and digit strings too long for Python
    pytest.param("spot_the_diff", lambda s: _edit_raw(s / "data/annotations/test.json", lambda e: e[1].update(img_id=BIG)),
                 ["test.json, entry 1, column 'img_id': expected a non-empty string, got an integer of 5,000 digits"],
                 id="5000-digit-spot_the_diff-img_id"),
    pytest.param("image_editing_request", lambda s: _edit_raw(s / "valid.json", lambda e: e[1].update(uid=BIG)),
                 ["valid.json, entry 1, column 'uid': expected a non-empty string, got an integer of 5,000 digits"],
                 id="5000-digit-image_editing_request-uid"),
    pytest.param("omnidiff", _omnidiff_line,
                 ["test.jsonl, line 2, column 'id': expected a non-empty string, got an integer of 5,000 digits"],
                 id="5000-digit-omnidiff-id"),
    pytest.param("clevr_dc", lambda s: _edit_raw(s / "split.json", lambda t: t["test"].insert(0, BIG)),
                 ["split.json, 'test' entry 0: expected an image number, got an integer of 5,000 digits"],
                 id="5000-digit-clevr_dc-split-number"),
    pytest.param("clevr_dc", _clevr_dc_key,
                 [f"captions.json, entry {'1' * 60!r}... (5,000 characters): expected a key naming an image number (at "
                  "most 18 digits)"],
                 id="5000-digit-clevr_dc-captions-key"),
    pytest.param("clevr_change", lambda s: _edit_raw(s / "splits.json", lambda t: t["test"].insert(0, BIG)),
                 ["splits.json, 'test' entry 0: expected an index into images/, got an integer of 5,000 digits"],
                 id="5000-digit-clevr_change-split-index"),
    pytest.param("clevr_change", _clevr_change_name,
                 [f"type_mapping.json, 'color' entry 0: expected a numbered image name like '000123.png', got "
                  f"{'1' * 60!r}... (5,004 characters)"],
                 id="5000-digit-clevr_change-type-mapping-name"),
    # Normalised, the two are one id: the duplicate is the error (before any image file is looked for).
    pytest.param("spot_the_diff", _one_id_of_5000_digits_in_two_spellings,
                 ["test.json, entry 0: duplicate id", "(5,001 characters) (the same as",
                  "after normalisation), first seen at", "val.json, entry 0"],
                 id="a-5000-digit-string-id-is-normalised-without-int"),
]


@pytest.mark.parametrize("name, edit, expected", HOSTILE_RELEASES)
def test_a_hostile_release_is_one_located_line_and_the_good_build_stays(name, edit, expected, sources, good, tmp_path):
    source = _copy(sources, name, tmp_path)
    values = edit(source) or {}
    message = _fails(name, source, good, [part.format(source=source, **values) for part in expected])
    assert len(message) < 1000, message  # a long value is named, not printed


# -- cases beyond one failing build ------------------------------------------------------------------------


def test_blank_caption_is_kept_where_upstream_has_them(sources, tmp_path, cache):
    source = _copy(sources, "spot_the_diff", tmp_path)
    _edit(source / "data/annotations/test.json", lambda e: e[0].update(sentences=[""]))
    _build("spot_the_diff", source)
    test = building.load_built("spot_the_diff", None, "test")
    assert test[0]["captions"] == [""]  # verbatim; a recipe filters: ds.filter(lambda r: any(c.strip() ...))
    _build("spot_the_diff", sources["spot_the_diff"])  # the module's good build back


def test_image_above_the_pixel_limit_is_an_error_unless_the_limit_is_raised(sources, good, tmp_path):
    source = _copy(sources, "spot_the_diff", tmp_path)
    values = _bad_after_image(lambda blob: _png((10000, 10000)))(source)
    _fails("spot_the_diff", source, good, [f"{values['image']}: image of 10000x10000 = 100,000,000 pixels exceeds the "
                                           "limit of 89,478,485 pixels (max_image_pixels)", values["where"]])
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
        assert result["type"] == "CaptionSourceError", result
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
