"""Hostile VisMin sources (issue 14): each is a one-line error naming file, row and column, and the
previous build still loads afterwards (nothing lost)."""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from diffbench.data import building
from diffbench.data.synth import vismin as synth


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    return root


def bench_rows(n=8, size=(48, 32)) -> list[dict]:
    return list(synth.generate_bench(n=n, seed=3, image_size=size))


def write_parquet(folder: Path, rows: list[dict], id_type: pa.DataType | None = None) -> Path:
    """``data/test-00000-of-00001.parquet`` (the Hub's parquet export layout) with ``id`` of ``id_type``."""
    table = pa.Table.from_pylist(rows)
    if id_type is not None:
        index = table.schema.get_field_index("id")
        table = table.set_column(index, pa.field("id", id_type), pa.array([r["id"] for r in rows], id_type))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "data" / "test-00000-of-00001.parquet")
    return folder


def png_of_size(width: int, height: int) -> bytes:
    """A valid all-black bilevel PNG of any size, written chunk by chunk (a 20000x20000 one is ~50 KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + b"\0" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@functools.cache
def bomb_png() -> bytes:
    """A 20000x20000 PNG (400 megapixels) in under 100 KB, made once."""
    data = png_of_size(20000, 20000)
    assert len(data) < 100_000
    return data


def _build_good_then(bad_source: Path, private_cache: Path, tmp_path: Path, **config) -> str:
    """Build a good source, then the bad one over it; the error text. Checks that nothing was lost."""
    good = write_parquet(tmp_path / "good", bench_rows())
    building.build("vismin", "bench", source=str(good), overwrite=True)
    before = building.load_built("vismin", "bench", "test")["id"]
    with pytest.raises(ValueError) as caught:
        building.build("vismin", "bench", source=str(bad_source), overwrite=True, **config)
    assert building.load_built("vismin", "bench", "test")["id"] == before
    assert not [p for p in (private_cache / building.STAGING_DIRNAME).iterdir() if p.is_dir()]
    text = str(caught.value)
    assert "\n" not in text
    return text


def _where(text: str, source: Path, row: int, column: str) -> None:
    assert str(source / "data" / "test-00000-of-00001.parquet") in text, text
    assert f"row {row}, column {column!r}" in text, text


# -- ids ------------------------------------------------------------------------------------------------


def test_ids_0_and_00_of_one_category_are_duplicates(tmp_path, private_cache):
    rows = bench_rows()
    same = [i for i, r in enumerate(rows) if r["category"] == rows[0]["category"]][:2]
    for i, value in zip(same, ("0", "00")):
        rows[i]["id"] = value
    for r in rows:
        r["id"] = str(r["id"])
    bad = write_parquet(tmp_path / "bad", rows, pa.string())
    text = _build_good_then(bad, private_cache, tmp_path)
    _where(text, bad, same[1], "id")
    assert f"duplicate category/id ('{rows[0]['category']}', 0)" in text


def test_string_ids_in_digits_build_as_integers(tmp_path, private_cache):
    rows = bench_rows()
    for r in rows:
        r["id"] = f"{r['id']:03d}"
    source = write_parquet(tmp_path / "src", rows, pa.string())
    building.build("vismin", "bench", source=str(source))
    built = building.load_built("vismin", "bench", "test")
    assert sorted(built["upstream_id"]) == sorted(int(r["id"]) for r in rows)


@pytest.mark.parametrize(("value", "id_type", "message"), [
    (None, pa.int64(), "missing id"),
    ("0.0", pa.string(), "id '0.0' is not a whole number"),
    ("abc7", pa.string(), "id 'abc7' is not a whole number"),
    (0.5, pa.float64(), "ids must be integers (upstream type int64), got"),
    (1.0, pa.float64(), "ids must be integers (upstream type int64), got"),
], ids=["null", "0.0", "abc7", "0.5", "whole-float"])
def test_ids_of_another_type_are_errors_never_cast(value, id_type, message, tmp_path, private_cache):
    rows = bench_rows()
    for r in rows:
        r["id"] = str(r["id"]) if id_type == pa.string() else float(r["id"]) if id_type == pa.float64() else r["id"]
    rows[4]["id"] = value
    bad = write_parquet(tmp_path / "bad", rows, id_type)
    text = _build_good_then(bad, private_cache, tmp_path)
    assert message in text, text
    expected_row = 4 if id_type == pa.string() or value is None else 0  # a float column is wrong from row 0
    _where(text, bad, expected_row, "id")


def test_non_text_caption_is_an_error(tmp_path, private_cache):
    rows = bench_rows()
    for i, r in enumerate(rows):
        r["text_1"] = i
    bad = write_parquet(tmp_path / "bad", rows)
    text = _build_good_then(bad, private_cache, tmp_path)
    assert "expected text (upstream type string), got int64" in text
    _where(text, bad, 0, "text_1")


# -- images ---------------------------------------------------------------------------------------------


def _truncated_png_tail(tmp_path: Path) -> dict:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 60).save(buffer, format="PNG")  # noise: the last IDAT bytes carry pixels
    return {"bytes": buffer.getvalue()[:-20], "path": None}


def _garbage_after_a_png_signature(tmp_path: Path) -> dict:
    return {"bytes": b"\x89PNG\r\n\x1a\n" + os.urandom(200), "path": None}


def _bomb(tmp_path: Path) -> dict:
    return {"bytes": bomb_png(), "path": None}


def _path_leaving_the_source(tmp_path: Path) -> dict:
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(bench_rows()[0]["image_0"]["bytes"])
    return {"bytes": None, "path": "../../outside/secret.png"}


#: case -> (row, column, the bad cell (made in ``tmp_path``), what the error says)
BAD_IMAGE_CELLS = {
    "truncated-png-tail": (6, "image_1", _truncated_png_tail, "undecodable image"),
    "garbage-after-a-png-signature": (2, "image_0", _garbage_after_a_png_signature, "undecodable image"),
    "decompression-bomb-refused-before-decoding": (
        3, "image_0", _bomb, "image of 400,000,000 pixels exceeds the limit of 89,478,485 pixels (max_image_pixels)"),
    "image-path-leaving-the-source-folder": (1, "image_0", _path_leaving_the_source,
                                             "image path '../../outside/secret.png' leaves the source folder"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGE_CELLS))
def test_a_bad_image_cell_names_file_row_and_column(case, tmp_path, private_cache):
    row, column, make_cell, message = BAD_IMAGE_CELLS[case]
    rows = bench_rows()
    rows[row][column] = make_cell(tmp_path)
    bad = write_parquet(tmp_path / "bad" / "src", rows)
    text = _build_good_then(bad, private_cache, tmp_path)
    _where(text, bad, row, column)
    assert message in text, text


def test_image_above_the_pixel_limit_is_an_error_and_the_limit_is_a_config_field(tmp_path, private_cache):
    rows = bench_rows()
    rows[5]["image_1"] = {"bytes": png_of_size(10000, 10000), "path": None}
    bad = write_parquet(tmp_path / "bad", rows)
    text = _build_good_then(bad, private_cache, tmp_path)
    _where(text, bad, 5, "image_1")
    assert "image of 10000x10000 = 100,000,000 pixels exceeds the limit of 89,478,485 pixels" in text
    # Raised above PIL's own limit on purpose, the image builds (fully decoded), and PIL's limit is restored.
    building.build("vismin", "bench", source=str(bad), max_image_pixels=100_000_000, overwrite=True)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485
    built = building.load_built("vismin", "bench", "test")
    assert built.num_rows == len(rows)
    # ... and lowered, it refuses the ordinary images too.
    text = _build_good_then(write_parquet(tmp_path / "small", bench_rows()), private_cache, tmp_path / "again",
                            max_image_pixels=1000)
    assert "image of 48x32 = 1,536 pixels exceeds the limit of 1,000 pixels" in text


# -- unreadable files and folders (as an unprivileged user: root reads everything) ------------------


def _as_nobody() -> list[str]:
    """The command prefix that runs as an unprivileged user (``nobody``) when the tests run as root."""
    if os.getuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: root reads every file")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def world_dir():
    folder = Path(tempfile.mkdtemp(prefix="diffbench-unreadable-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _build_as_nobody(source: Path, hf_home: Path):
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    command = [*_as_nobody(), sys.executable, "-m", "diffbench", "build", "vismin", "--source", str(source), "--overwrite"]
    return subprocess.run(command, env=env, cwd=hf_home.parent, capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("what", ["file", "subfolder"])
def test_unreadable_parquet_file_or_subfolder_is_an_error_never_skipped(what, world_dir, monkeypatch):
    source = world_dir / "source"
    rows = bench_rows(12)
    write_parquet(source, rows[:8])
    extra = source / "data" / "more" if what == "subfolder" else source / "data"
    extra.mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows[8:]), extra / "test-00001-of-00001.parquet")
    hf_home = world_dir / "hf"
    hf_home.mkdir()
    for path in [world_dir, *world_dir.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    done = _build_as_nobody(source, hf_home)
    assert done.returncode == 0, done.stderr[-2000:]
    (extra if what == "subfolder" else extra / "test-00001-of-00001.parquet").chmod(0o000)
    done = _build_as_nobody(source, hf_home)
    assert done.returncode == 2, done.stderr[-2000:]
    [line] = done.stderr.strip().splitlines()
    if what == "subfolder":
        assert line == f"diffbench build: error: {extra}: cannot read the source (Permission denied)"
    else:
        assert line == f"diffbench build: error: {extra / 'test-00001-of-00001.parquet'}: cannot read the source (Permission denied)"
    # The previous build (all 12 rows) is still the one the bare name loads from that HF home's cache.
    from datasets import load_dataset

    monkeypatch.chdir(world_dir)  # holds no folder named vismin
    loaded = load_dataset("vismin", split="test", cache_dir=str(hf_home / "datasets"))
    assert sorted(loaded["upstream_id"]) == sorted(r["id"] for r in rows)


# -- the CLI: one line, exit 2, no traceback -------------------------------------------------------------


def test_cli_bomb_is_one_line(tmp_path):
    rows = bench_rows()
    rows[3]["image_0"] = {"bytes": bomb_png(), "path": None}
    bad = write_parquet(tmp_path / "bad", rows)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "diffbench", "build", "vismin", "--source", str(bad)], env=env,
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert re.fullmatch(r"diffbench build: error: .*test-00000-of-00001\.parquet, row 3, column 'image_0': image of "
                        r"400,000,000 pixels exceeds the limit of 89,478,485 pixels \(max_image_pixels\)", line), line


# -- issue 23: ids past the int64 range or below 0, text that is no UTF-8 ----------------------------------


def _with_column(rows: list[dict], name: str, values: list, column_type: pa.DataType) -> pa.Table:
    table = pa.Table.from_pylist(rows)
    index = table.schema.get_field_index(name)
    return table.set_column(index, pa.field(name, column_type), pa.array(values, column_type))


def _write_table(folder: Path, table: pa.Table, form: str) -> Path:
    """``table`` as the Hub's parquet export (``data/test-00000-of-00001.parquet``) or as a ``save_to_disk``
    Arrow stream (``test/data-00000-of-00001.arrow``); the file written."""
    if form == "parquet":
        path = folder / "data" / "test-00000-of-00001.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(table, path)
    else:
        path = folder / "test" / "data-00000-of-00001.arrow"
        path.parent.mkdir(parents=True)
        with pa.ipc.new_stream(path, table.schema) as writer:
            writer.write_table(table)
    return path


@pytest.mark.parametrize(("value", "id_type", "message"), [
    (2**64 - 1, pa.uint64(), "id 18446744073709551615 is out of the int64 range (upstream type int64, this column uint64)"),
    (2**63, pa.uint64(), "id 9223372036854775808 is out of the int64 range"),
    (-1, pa.int64(), "id -1 is negative (upstream type int64): ids are non-negative integers or digit strings"),
    (-1, pa.int8(), "id -1 is negative (upstream type int64): ids are non-negative integers or digit strings"),
    ("-1", pa.string(), "id '-1' is not a whole number (upstream type int64): ids are non-negative integers or digit "
                        "strings"),
    ("1" * 5000, pa.string(), f"id {'1' * 60!r}... (5,000 characters) is out of the int64 range"),
    ("0" * 4990 + "7", pa.string(), None),  # zeros do not count: id 7 (a duplicate of another category's 7 is fine)
    ("9223372036854775808", pa.string(), "id '9223372036854775808' is out of the int64 range"),
], ids=["uint64-max", "uint64-2^63", "int64-minus-1", "int8-minus-1", "string-minus-1", "5000-digits",
        "5000-chars-of-zeros", "string-2^63"])
def test_ids_outside_int64_or_below_zero_name_file_row_and_column(value, id_type, message, tmp_path, private_cache):
    rows = bench_rows()
    ids = [str(r["id"]) if id_type == pa.string() else r["id"] for r in rows]
    ids[5] = value
    bad = _write_table(tmp_path / "bad", _with_column(rows, "id", ids, id_type), "parquet").parents[1]
    if message is None:
        building.build("vismin", "bench", source=str(bad), overwrite=True)
        assert sorted(building.load_built("vismin", "bench", "test")["upstream_id"]) == sorted(
            int(i.lstrip("0") or "0") for i in ids)
        return
    text = _build_good_then(bad, private_cache, tmp_path)
    _where(text, bad, 5, "id")
    assert message in text, text


def test_a_uint64_id_column_within_range_builds(tmp_path, private_cache):
    rows = bench_rows()
    source = _write_table(tmp_path / "src", _with_column(rows, "id", [r["id"] for r in rows], pa.uint64()),
                          "parquet").parents[1]
    building.build("vismin", "bench", source=str(source))
    assert sorted(building.load_built("vismin", "bench", "test")["upstream_id"]) == sorted(r["id"] for r in rows)


@pytest.mark.parametrize("form", ["arrow", "parquet"])
@pytest.mark.parametrize("column", ["text_0", "text_1", "category"])
def test_text_that_is_not_utf8_names_file_row_and_column(form, column, tmp_path, private_cache):
    """Arrow reads a string column without checking its UTF-8: the bad byte would be built in, silently
    (text), or fail later naming nothing (category)."""
    rows = bench_rows()
    values = [r[column].encode() for r in rows]
    values[5] = b"a \xff\xfe caption"
    table = _with_column(rows, column, values, pa.binary())
    table = table.set_column(table.schema.get_field_index(column), pa.field(column, pa.string()),
                             table.column(column).combine_chunks().view(pa.string()))
    path = _write_table(tmp_path / "bad", table, form)
    text = _build_good_then(path.parents[1], private_cache, tmp_path)
    assert f"{path}, row 5, column {column!r}: text is not valid UTF-8 (byte 0xff at byte 2: invalid start byte)" in text


def test_an_image_path_that_is_not_utf8_names_its_row(tmp_path, private_cache):
    rows = bench_rows()
    table = pa.Table.from_pylist(rows)
    images = table.column("image_1").combine_chunks()
    paths = [(p or "").encode() for p in images.field("path").to_pylist()]
    paths[3] = b"img\xc3(.png"
    rebuilt = pa.StructArray.from_arrays([images.field("bytes"), pa.array(paths, pa.binary()).view(pa.string())],
                                         names=["bytes", "path"])
    table = table.set_column(table.schema.get_field_index("image_1"), "image_1", rebuilt)
    path = _write_table(tmp_path / "bad", table, "arrow")
    text = _build_good_then(path.parents[1], private_cache, tmp_path)
    assert f"{path}, row 3, column 'image_1': text is not valid UTF-8 (byte 0xc3 at byte 3: invalid continuation " \
           "byte)" in text, text
