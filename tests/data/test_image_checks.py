"""One image check for every builder: VisMin and the captioning sets refuse the same bad images, the same way.

Each bad image goes through the real builds (VisMin's ``bench`` from a parquet release, CLEVR-DC from
its upstream folder layout) with ``ImageFile.LOAD_TRUNCATED_IMAGES`` set, as training code often
leaves it: both must fail naming the image's place, with the problem :mod:`diffbench.data.image_checks`
gives, and PIL's switches must come back as they were.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageFile

from diffbench.data import building, image_checks, samples
from diffbench.data.synth import vismin as synth


def _png_of_size(width: int, height: int) -> bytes:
    """A valid all-black bilevel PNG of any size, written chunk by chunk (a 20000x20000 one is ~50 KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buffer, format=fmt)  # noise: every byte carries pixels
    return buffer.getvalue()


#: kind -> (the bad image's bytes, made when the test runs; the start of the problem the check gives)
BAD_IMAGES = {
    "truncated JPEG": (lambda: _encoded("JPEG")[:1500], "undecodable image (OSError: image file is truncated"),
    "truncated PNG": (lambda: _encoded("PNG")[:-20], "undecodable image ("),
    "decompression bomb": (lambda: _png_of_size(20000, 20000),
                           "image of 400,000,000 pixels exceeds the limit of 89,478,485 pixels (max_image_pixels)"),
    "garbage after a PNG signature": (lambda: b"\x89PNG\r\n\x1a\n" + b"garbage " * 64, "undecodable image ("),
}


@pytest.fixture
def truncated_images_allowed(monkeypatch):
    """The process-wide switch training code sets; the checks must refuse truncated images anyway."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    yield
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True, "the check restores the caller's setting"
    assert Image.MAX_IMAGE_PIXELS == image_checks.DEFAULT_MAX_IMAGE_PIXELS


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    return root


def test_the_truncated_jpeg_is_a_real_trap():
    """With the switch on, PIL alone decodes the truncated JPEG (grey-padded): only a forced check refuses it."""
    make_blob, expected = BAD_IMAGES["truncated JPEG"]
    blob = make_blob()
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with Image.open(io.BytesIO(blob)) as image:
            image.verify()
        with Image.open(io.BytesIO(blob)) as image:
            image.load()  # no error
        assert image_checks.first_problem([blob])[1].startswith(expected)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_both_builders_refuse_the_same_bad_image_with_the_same_problem(kind, tmp_path, private_cache,
                                                                       truncated_images_allowed):
    make_blob, expected = BAD_IMAGES[kind]
    blob = make_blob()
    index, problem = image_checks.first_problem([blob])
    assert problem.startswith(expected), problem

    # VisMin: embedded bytes in a parquet release, row 3, column image_0.
    rows = list(synth.generate_bench(n=8, seed=0, image_size=(32, 32)))
    rows[3]["image_0"] = {"bytes": blob, "path": None}
    release = tmp_path / "vismin" / "data"
    release.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), release / "test.parquet")
    with pytest.raises(ValueError) as vismin_error:
        building.build("vismin", "bench", source=str(release.parent))
    assert str(vismin_error.value) == f"{release / 'test.parquet'}, row 3, column 'image_0': {problem}"

    # CLEVR-DC: an image file of the upstream layout.
    source = samples.write_sample("clevr_dc", tmp_path / "clevr_dc", n=6, image_size=(32, 32))
    image = source / "aft" / "8000.png"
    image.write_bytes(blob)
    with pytest.raises(ValueError) as caption_error:
        building.build("clevr_dc", "default", source=str(source))
    message = str(caption_error.value)
    assert message.startswith(f"{image}: {problem} (referenced by "), message
    assert "column 'image_after'" in message and "\n" not in message

    for name in ("vismin", "clevr_dc"):
        with pytest.raises(building.NotBuiltError):
            building.load_built(name)


def test_a_good_image_passes_and_the_limit_is_checked_before_decoding():
    good = _encoded("PNG")
    assert image_checks.first_problem([good, good, good]) is None
    assert image_checks.first_problem([good], max_pixels=64 * 64 - 1) == (
        0, "image of 64x64 = 4,096 pixels exceeds the limit of 4,095 pixels (max_image_pixels)")
    with pytest.raises(ValueError, match="max_image_pixels must be a positive integer, got 0"):
        image_checks.first_problem([good], max_pixels=0)


def test_an_unreadable_file_is_a_problem(tmp_path):
    assert image_checks.image_file_problem(tmp_path / "missing.png").startswith("cannot be read: ")
