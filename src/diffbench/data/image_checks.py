"""The build-time image check every builder runs: an image must decode completely, under a pixel limit.

One implementation for VisMin (``datasets/vismin/vismin.py``, images embedded as bytes) and the
image-difference-captioning builders (:mod:`diffbench.data.caption_builder`, images as files), so the two can
never disagree about what a good image is. A problem is one line (the builder adds file, row and
column):

- ``empty image (no bytes)``;
- ``image of WxH = N pixels exceeds the limit of L pixels (max_image_pixels)``: the size is read from
  the header and refused before any pixel is decoded, so a decompression bomb costs nothing; past
  twice PIL's own ``Image.MAX_IMAGE_PIXELS`` PIL refuses it while reading the header:
  ``image of N pixels exceeds the limit of L pixels (max_image_pixels)``;
- ``undecodable image (<error>)``: ``verify()`` walks every chunk (a PNG whose tail is cut, or whose
  CRCs are wrong, fails there although ``load()`` alone accepts it), then ``load()`` decodes every
  pixel (a truncated JPEG fails there); garbage after a valid signature fails at either;
- ``cannot be read: <reason>`` (a file that cannot be opened);
- ``not a regular file (a FIFO)`` (or a socket, a device, a folder): :func:`not_regular_file` looks
  with ``stat`` before anything opens a source file, as opening a FIFO waits for a writer forever and
  reading a device such as ``/dev/zero`` never ends. The source readers (builders, the build's
  fingerprint) share it.

:func:`pixel_limits` sets PIL's process-wide switches for the check and restores them after:
``ImageFile.LOAD_TRUNCATED_IMAGES`` off (training code often turns it on, which makes ``load()``
pad a truncated JPEG with grey instead of failing), PIL's bomb threshold no lower than the limit,
and its bomb warning silenced (the image is reported as an error instead). :func:`first_problem`
runs the check on a pool of threads inside it: Pillow releases the GIL while it decodes, so the check
spreads over the cores.

    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (64, 48)).save(buffer, format="PNG")
    >>> png = buffer.getvalue()
    >>> first_problem([png, png]) is None
    True
    >>> first_problem([png, b"", png[:-20]])
    (1, 'empty image (no bytes)')
    >>> first_problem([png, png[:-20]])
    (1, 'undecodable image (OSError: Truncated File Read)')
    >>> first_problem([png], max_pixels=1000)
    (0, 'image of 64x48 = 3,072 pixels exceeds the limit of 1,000 pixels (max_image_pixels)')
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageFile

#: PIL's own decompression-bomb threshold (``PIL.Image.MAX_IMAGE_PIXELS``): the default limit.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485


def _one_line(err: BaseException) -> str:
    # PIL names the in-memory buffer it read ("cannot identify image file <_io.BytesIO object at 0x...>"): noise.
    text = " ".join(re.sub(r"\s*<[^<>]* object at 0x[0-9a-fA-F]+>", "", str(err)).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _over_limit(width: int, height: int, limit: int) -> str:
    return f"image of {width}x{height} = {width * height:,} pixels exceeds the limit of {limit:,} pixels (max_image_pixels)"


_SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def special_file_kind(mode: int) -> str | None:
    """What a ``st_mode`` that is no regular file is (``"a FIFO"``, ``"a socket"``, ...); ``None`` for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for is_kind, name in _SPECIAL_FILES if is_kind(mode)), "a special file")


def not_regular_file(path: str | os.PathLike) -> str | None:
    """``None`` for a regular file (a symbolic link is followed), else why it is refused, from ``stat`` alone.

    Nothing is opened: a FIFO blocks its reader until a writer comes, and a device (``/dev/zero``)
    never ends, so a source file is looked at before it is read.

        >>> not_regular_file("/dev/null")
        'not a regular file (a character device)'
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    kind = special_file_kind(mode)
    return None if kind is None else f"not a regular file ({kind})"


def image_bytes_problem(blob: bytes | None, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> str | None:
    """``None`` if ``blob`` is an image that decodes completely within ``max_pixels``, else the problem.

    Run it inside :func:`pixel_limits` (:func:`first_problem` does).
    """
    if not blob:
        return "empty image (no bytes)"
    try:
        with Image.open(io.BytesIO(blob)) as image:
            width, height = image.size
            if width * height > max_pixels:
                return _over_limit(width, height, max_pixels)
            image.verify()  # reads to the end: a truncated tail that load() would pass is caught here
        with Image.open(io.BytesIO(blob)) as image:
            image.load()
    except Image.DecompressionBombError as err:
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(pixels.group(1)):,} pixels" if pixels else "more pixels than PIL accepts"
        return f"image of {size} exceeds the limit of {max_pixels:,} pixels (max_image_pixels)"
    except Exception as err:  # noqa: BLE001 - any failure to decode is the image's problem, reported as such
        return f"undecodable image ({_one_line(err)})"
    return None


def image_file_problem(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> str | None:
    """:func:`image_bytes_problem` of a file's bytes; a file that cannot be read, or is no regular file
    (:func:`not_regular_file`, looked at before it is opened), is a problem too."""
    special = not_regular_file(path)
    if special is not None:
        return special
    try:
        # Plain-OS read on purpose: datasets patches ``open`` in builder modules for streaming.
        with io.FileIO(os.fspath(path), "r") as handle:
            blob = handle.readall()
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    return image_bytes_problem(blob, max_pixels)


@contextlib.contextmanager
def pixel_limits(max_pixels: int):
    """PIL's process-wide switches set for a full check, restored after (see the module docstring)."""
    saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def decode_threads(configured: int | None = None) -> int:
    """Threads for :func:`problems`: ``configured``, else one per core this process may use."""
    if configured:
        return max(1, int(configured))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def first_problem(images: Sequence, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, threads: int | None = None,
                  check: Callable[[object, int], str | None] = image_bytes_problem) -> tuple[int, str] | None:
    """The first image (in order) that fails ``check``, as ``(index, problem)``; ``None`` when all pass.

    ``check`` is :func:`image_bytes_problem` (``images`` hold bytes) or :func:`image_file_problem`
    (paths). It runs on ``threads`` threads (default: one a core) under :func:`pixel_limits`; the
    images after a bad one are not waited for.
    """
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < 1:
        raise ValueError(f"max_image_pixels must be a positive integer, got {max_pixels!r}")
    if not images:
        return None
    with pixel_limits(max_pixels):
        pool = ThreadPoolExecutor(min(decode_threads(threads), len(images)), thread_name_prefix="image-check")
        try:
            for index, problem in enumerate(pool.map(check, images, [max_pixels] * len(images))):
                if problem is not None:
                    return index, problem
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # PIL's switches stay set until no thread decodes
    return None
