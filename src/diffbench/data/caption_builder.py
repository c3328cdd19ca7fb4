"""The one base of the difference-captioning builders: one schema, one build path.

Every builder under ``datasets/{omnidiff,spot_the_diff,clevr_change,clevr_dc,image_editing_request}/``
subclasses :class:`CaptionBuilder` and only says how its upstream layout maps onto the schema, by
implementing :meth:`CaptionBuilder.read_pairs` (upstream files -> :class:`Pair` records per split).
Everything else is here, once: the schema, the sources (``hub`` / a local folder), the checks, and
the generation of batched Arrow tables whose images are the source files' bytes, copied, never
re-encoded.

The checks run over every row before anything is written, and each failure is one line naming the
file, the row (entry) and the column:

- ids: present, strings, unique after normalisation (:func:`normalised_id`: ``"7"`` and ``"07"`` collide);
  each builder checks its upstream id type while reading (a ``null`` id is an error, never ``"None"``);
- captions: a non-empty list of strings; a blank caption only where the builder declares that upstream
  has them (:attr:`CaptionBuilder.UPSTREAM_HAS_BLANK_CAPTIONS`), and kept verbatim;
- change types from the declared vocabulary; a ``domain`` of :data:`DOMAINS`;
- image paths: inside the source folder (``..`` or an absolute path in an annotation is an error);
- files: regular ones only; a FIFO, a socket or a device is refused from its ``stat`` before anything
  opens it (opening a FIFO waits for a writer forever, ``/dev/zero`` never ends);
- JSON integers too long for Python (:class:`~diffbench.captions.inputs.OverlongInteger`) are read as
  a placeholder that the type checks name by file, entry and column, like any value of a wrong type;
- every image fully decoded under a pixel limit, ``max_image_pixels`` of the config (PIL's own bomb
  threshold by default), spread over the cores (PIL releases the GIL while it decodes): the check of
  :mod:`diffbench.data.image_checks`, shared with VisMin's builder; a file or folder that cannot be read is
  an error, never skipped.

Schema (one row = one image pair):

=================  =====================================================================
``id``             string, unique across the whole dataset
``image_before``   Image (the original file's bytes; ``path`` keeps its file name)
``image_after``    Image
``captions``       list of strings: the reference descriptions of what changed
``change_types``   list of strings from the builder's :attr:`~CaptionBuilder.CHANGE_TYPES`
``domain``         ``real`` or ``synthetic``
``scenario``       string, may be empty
(extras)           per dataset, declared in :attr:`~CaptionBuilder.EXTRA_FEATURES`
=================  =====================================================================

Why the base lives here, imported by each builder, rather than copied into each folder: datasets 5
does not run dataset scripts, so what goes to the Hub is the folder ``diffbench publish`` writes
(parquet shards + the card): self-contained, loadable with ``datasets`` alone. The builder script is
the recipe ``diffbench build`` runs, and ``diffbench`` is installed wherever that runs (each card says
``pip install diffbench``). One copy means no drift between five vendored bases, and a fix to a
check reaches every dataset at once.

    >>> pair = Pair("a", Path("a.png"), Path("a_2.png"), ["the car is gone"], origin="train.json, entry 0")
    >>> pair.captions
    ['the car is gone']
"""

from __future__ import annotations

import io
import json
import os
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow as pa
from datasets.builder import Key
from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from diffbench.captions.inputs import parse_json_int

# The one image check of every builder (VisMin's too).
from diffbench.data.image_checks import DEFAULT_MAX_IMAGE_PIXELS, first_problem, image_file_problem, special_file_kind

DOMAINS = ("real", "synthetic")
CHUNK_ROWS = 128  # rows per Arrow table (and per shard under --num-proc); keeps memory flat
MAX_LISTED = 5  # a one-line error names this many missing files, then gives the total
MAX_NUMBER_DIGITS = 18  # an image number or index longer than this (past int64) is no number of any release
SHOWN_CHARS = 60  # a longer value is shown cut, with its length


class CaptionSourceError(ValueError):
    """A problem in the upstream data, located in its file (line and column, or entry and key)."""

    def __init__(self, source, message: str, line: int | None = None, column: int | None = None):
        where = str(source)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")


@dataclass
class CaptionConfig(datasets.BuilderConfig):
    """BuilderConfig of the difference-captioning builders.

    Args:
        source: ``"hub"`` (``repo_id``, or the builder's official Hub repo where one exists) or the
            path of a local directory holding the upstream release in its official layout.
        repo_id: the Hub dataset repo read when ``source="hub"`` (a mirror in the official layout).
        revision: the Hub revision (branch, tag or commit) read when ``source="hub"``.
        max_image_pixels: an image of more pixels (width x height) is an error at build time
            (default: PIL's own decompression-bomb threshold, :data:`DEFAULT_MAX_IMAGE_PIXELS`).
        decode_threads: threads that decode the images to check them (default: one a core).
    """

    source: str = "hub"
    repo_id: str | None = None
    revision: str | None = None
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    decode_threads: int | None = None


@dataclass
class Pair:
    """One image pair as an upstream release describes it, before any check.

    ``origin`` says where it came from (``"train.json, entry 12"``), for error messages; ``columns``
    names, for ``image_before`` / ``image_after`` / ``captions``, the upstream field each came from
    where it differs (``{"image_before": "img0"}``).
    """

    id: str
    image_before: Path
    image_after: Path
    captions: list[str]
    change_types: Sequence[str] = ()
    domain: str = "real"
    scenario: str = ""
    extras: dict = field(default_factory=dict)
    origin: str = ""
    columns: dict = field(default_factory=dict)

    def column(self, name: str) -> str:
        """``'image_after'``, or ``'image_after' (upstream 'img1')`` where the upstream field differs."""
        upstream = self.columns.get(name)
        return f"{name!r}" + (f" (upstream {upstream!r})" if upstream and upstream != name else "")


def shown(value) -> str:
    """``repr(value)``, a long string cut to :data:`SHOWN_CHARS` characters with its length said.

        >>> shown("7"), shown("1" * 5000)[-22:]
        ("'7'", '... (5,000 characters)')
    """
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{value[:SHOWN_CHARS]!r}... ({len(value):,} characters)"
    return repr(value)


def _regular_file(path: Path) -> None:
    """Refuse a missing path, or one that is no regular file, before anything opens it (a FIFO would block)."""
    problem = _file_problem(os.fspath(path))
    if problem == "missing":
        raise CaptionSourceError(path, "file not found")
    if problem is not None:
        raise CaptionSourceError(path, problem)


def read_json(path: Path):
    """``json.load`` with a malformed file reported by file, line and column (integers: :func:`parse_json_int`)."""
    path = Path(path)
    _regular_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CaptionSourceError(path, f"cannot be read: {_reason(err)}") from None
    try:
        return json.loads(text, parse_int=parse_json_int)
    except json.JSONDecodeError as err:
        raise CaptionSourceError(path, f"malformed JSON: {err.msg}", line=err.lineno, column=err.colno) from None


def read_json_object(path: Path, what: str) -> dict:
    """:func:`read_json` of a file that must hold one object (``what`` says what it maps)."""
    value = read_json(path)
    expect(isinstance(value, dict), path, f"expected an object mapping {what}, got {type(value).__name__}")
    return value


def indexed_names(split_path: Path, split_indices: dict, upstream: str, names: list[str], folder: str):
    """``(where, name)`` for each index of one split in a ``split -> [index]`` file (CLEVR-Change, CLEVR-DC).

    ``names`` is the sorted listing the indices point into; ``where`` locates the entry for errors.
    """
    expect(upstream in split_indices, split_path, f"no {upstream!r} split")
    for position, index in enumerate(split_indices[upstream]):
        where = f"{split_path}, {upstream!r} entry {position}"
        if not isinstance(index, int) or isinstance(index, bool):
            raise CaptionSourceError(where, f"expected an index into {folder}, got {shown(index)}")
        if not 0 <= index < len(names):
            raise CaptionSourceError(where, f"index {index!r} out of range: {folder} holds {len(names)} images")
        yield where, names[index]


def read_jsonl(path: Path) -> list:
    """One JSON value a non-blank line; a malformed line is reported by file, line and column."""
    records = []
    _regular_file(Path(path))
    try:
        with open(path, encoding="utf-8") as handle:
            lines = list(handle)
    except (OSError, UnicodeDecodeError) as err:
        raise CaptionSourceError(path, f"cannot be read: {_reason(err)}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line.rstrip("\r\n"), parse_int=parse_json_int))
        except json.JSONDecodeError as err:
            raise CaptionSourceError(path, f"malformed JSON: {err.msg}", line=number, column=err.pos + 1) from None
    return records


def list_folder(folder: Path, suffix: str | None = None) -> list[str]:
    """The file names in ``folder`` (ending in ``suffix``), sorted; an unreadable folder is an error.

    Subfolders are not followed (no upstream layout nests images); an unreadable entry is an error
    rather than a file silently left out.
    """
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError as err:
        raise CaptionSourceError(folder, f"folder cannot be read: {_reason(err)}") from None
    names = []
    for entry in entries:
        if suffix is not None and not entry.name.endswith(suffix):
            continue
        try:
            is_file = entry.is_file()
        except OSError as err:
            raise CaptionSourceError(entry.path, f"cannot be read: {_reason(err)}") from None
        if is_file:
            names.append(entry.name)
    return sorted(names)


def inside(root: Path, relative, where: str, column: str) -> Path:
    """``root / relative``, refused when it leaves ``root`` (``..``, an absolute path, a drive).

    The check is on the path as written, so a release may still keep its images behind a symbolic
    link of its own (a common way to put a large image folder on another disk).

        >>> inside(Path("/data/std"), "12.png", "train.json, entry 0", "'img_id'")
        PosixPath('/data/std/12.png')
        >>> try:
        ...     inside(Path("/data/std"), "../../etc/passwd", "train.json, entry 3", "'img_id'")
        ... except CaptionSourceError as err:
        ...     print(err)
        train.json, entry 3, column 'img_id': path '../../etc/passwd' leaves the source folder /data/std
    """
    root = Path(root)
    path = Path(os.path.normpath(root / relative))
    if path == root or root not in path.parents:
        raise CaptionSourceError(f"{where}, column {column}", f"path {str(relative)!r} leaves the source folder {root}")
    return path


def normalised_id(value: str) -> str:
    """The form two ids must not share: Unicode NFC, outer spaces stripped, case folded, a number's
    leading zeros dropped (``"07"`` and ``"7"`` name the same pair to a reader, a file system or a
    submission).

        >>> normalised_id(" Img_07 "), normalised_id("007"), normalised_id("0")
        ('img_07', '7', '0')
    """
    key = unicodedata.normalize("NFC", value).strip().casefold()
    # Zeros dropped as text: int() of an unbounded string fails past 4,300 digits, naming nothing.
    return (key.lstrip("0") or "0") if key.isdigit() and key.isascii() else key


def decimal_number(text: str) -> int | None:
    """The number ASCII digits ``text`` write (leading zeros allowed), or ``None``: not digits, or more
    than :data:`MAX_NUMBER_DIGITS` significant ones (no image number is that long, and ``int()`` of
    an unbounded string fails past 4,300 digits naming neither file nor entry).

        >>> decimal_number("000123"), decimal_number("12a"), decimal_number("9" * 5000)
        (123, None, None)
    """
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_NUMBER_DIGITS else None


def expect_string(value, where: str, column: str) -> str:
    """``value`` if it is a non-empty string, else a located error (a ``null`` id never becomes ``"None"``)."""
    if not isinstance(value, str) or not value:
        raise CaptionSourceError(f"{where}, column {column}", f"expected a non-empty string, got {shown(value)}")
    return value


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


# Plain-OS file access on purpose: datasets patches ``open``, ``pathlib.Path`` and ``os.path`` in every
# builder module (and its bases) for streaming, which costs ~50 us a call here on local files.
def _read_bytes(path: str) -> bytes:
    with io.FileIO(path, "r") as handle:
        return handle.readall()


def _file_problem(path: str) -> str | None:
    """``None`` for a regular file, else what is wrong (``"missing"``, why it cannot be reached, or what
    it is instead: ``"not a regular file (a FIFO)"``), from ``stat`` alone: nothing is opened."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"cannot be read: {_reason(err)}"
    kind = special_file_kind(mode)
    return None if kind is None else f"not a regular file ({kind})"


def expect(condition: bool, source, message: str) -> None:
    """Raise :class:`CaptionSourceError` unless ``condition``."""
    if not condition:
        raise CaptionSourceError(source, message)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _check_id(pair: Pair, where: str, first_seen: dict[str, tuple[str, str]]) -> None:
    """A non-empty string id, unique after :func:`normalised_id` (``first_seen``: normalised id -> (id, where))."""
    if not isinstance(pair.id, str) or not pair.id:
        raise CaptionSourceError(where, f"empty or non-string id {shown(pair.id)}")
    key = normalised_id(pair.id)
    if key in first_seen:
        first_id, first_where = first_seen[key]
        same = "" if first_id == pair.id else f" (the same as {shown(first_id)} after normalisation)"
        raise CaptionSourceError(where, f"duplicate id {shown(pair.id)}{same}, first seen at {first_where}")
    first_seen[key] = (pair.id, where)


def _unreachable_images(pair: Pair, where: str, root: Path, checked: set[str]) -> list[tuple[str, str, str, str]]:
    """``(image, problem, where, column)`` of each image of ``pair`` not seen before (``checked``) that is
    missing or no regular file; an image path leaving ``root`` is an error at once."""
    found = []
    for column in ("image_before", "image_after"):
        image = os.fspath(getattr(pair, column))
        # The builders join upstream names under the source folder with inside(); this catches any path
        # that still leaves it.
        inside(Path(os.path.abspath(root)), os.path.relpath(os.path.abspath(image), os.path.abspath(root)),
               where, pair.column(column))
        if image not in checked:
            checked.add(image)
            problem = _file_problem(image)
            if problem:
                found.append((image, problem, where, pair.column(column)))
    return found


class CaptionBuilder(datasets.ArrowBasedBuilder):
    """Base builder: subclasses set the class attributes below and implement :meth:`read_pairs`."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = CaptionConfig
    BUILDER_CONFIGS = [CaptionConfig(name="default", version=VERSION,
                                     description="The whole release, upstream splits.")]
    DEFAULT_CONFIG_NAME = "default"

    #: the declared change-type vocabulary (empty: the dataset has none, every row has ``[]``)
    CHANGE_TYPES: tuple[str, ...] = ()
    #: True where the upstream release itself holds blank captions, which are then kept verbatim (a
    #: training recipe filters them explicitly); elsewhere a blank caption is an error
    UPSTREAM_HAS_BLANK_CAPTIONS: bool = False
    #: the dataset's own extra columns: name -> ``datasets`` feature
    EXTRA_FEATURES: dict = {}
    #: the official Hub repo read by ``source="hub"``; ``None`` where upstream has none
    HUB_REPO_ID: str | None = None
    DESCRIPTION = ""
    CITATION = ""
    HOMEPAGE = ""
    LICENSE = ""

    # -- what each builder says -------------------------------------------------------------------

    def read_pairs(self, root: Path) -> dict[str, list[Pair]]:
        """Split name (``train`` / ``validation`` / ``test``) -> the pairs, read from ``root``."""
        raise NotImplementedError

    def check_release(self, splits: dict[str, list[Pair]]) -> None:
        """Checks of the whole release a builder adds; runs after every row passed the shared checks
        (so captions are lists of strings here) and before the images are decoded."""

    # -- schema -----------------------------------------------------------------------------------

    def _features(self) -> datasets.Features:
        return datasets.Features(
            {
                "id": datasets.Value("string"),
                "image_before": datasets.Image(),
                "image_after": datasets.Image(),
                "captions": datasets.List(datasets.Value("string")),
                "change_types": datasets.List(datasets.Value("string")),
                "domain": datasets.Value("string"),
                "scenario": datasets.Value("string"),
                **self.EXTRA_FEATURES,
            }
        )

    def _info(self) -> datasets.DatasetInfo:
        vocabulary = ", ".join(self.CHANGE_TYPES) or "none (every row has an empty list)"
        return datasets.DatasetInfo(
            description=f"{self.DESCRIPTION.strip()}\n\nChange types: {vocabulary}.\n",
            features=self._features(),
            homepage=self.HOMEPAGE,
            license=self.LICENSE,
            citation=self.CITATION,
        )

    # -- sources ----------------------------------------------------------------------------------

    def _source_dir(self) -> Path:
        if self.config.source == "hub":
            repo_id = self.config.repo_id or self.HUB_REPO_ID
            if repo_id is None:
                raise CaptionSourceError(
                    "source='hub'",
                    f"{self.dataset_name or self.name} has no official Hub repo: pass repo_id= (a Hub mirror in the "
                    "official layout) or the path of a local folder holding the upstream release",
                )
            try:
                return Path(snapshot_download(repo_id, repo_type="dataset", revision=self.config.revision))
            except LocalEntryNotFoundError as err:
                raise CaptionSourceError(
                    f"hf://datasets/{repo_id}",
                    "the Hub is not reachable and no copy is cached (HF_HUB_OFFLINE set, or no network); "
                    "download the repo elsewhere and pass its folder as the source",
                ) from err
        path = Path(self.config.source).expanduser()
        if not path.is_dir():
            raise CaptionSourceError(path, "source folder does not exist")
        return path

    # -- checks -----------------------------------------------------------------------------------

    def _check(self, splits: dict[str, list[Pair]], root: Path) -> None:
        """Every check of the annotations over every split, before anything is written; the image files are
        looked at with ``stat`` only here, and all those missing or unreachable are named in one error."""
        first_seen: dict[str, tuple[str, str]] = {}  # normalised id -> (id, where)
        unreachable: list[tuple[str, str, str, str]] = []  # (image, problem, origin, column)
        checked: set[str] = set()
        for split, pairs in splits.items():
            for pair in pairs:
                where = pair.origin or f"{split} pair {pair.id!r}"
                _check_id(pair, where, first_seen)
                self._check_captions(pair, where)
                self._check_labels(pair, where)
                unreachable += _unreachable_images(pair, where, root, checked)
        if unreachable:
            image, problem, where, column = unreachable[0]
            others = [u[0] for u in unreachable[1:]]
            more = f"; {len(others)} more image file(s) missing or unreadable: {_listing(others)}" if others else ""
            raise CaptionSourceError(image, f"image file {problem} (referenced by {where}, column {column}){more}")

    def _check_labels(self, pair: Pair, where: str) -> None:
        """Change types from the declared vocabulary, a domain of :data:`DOMAINS`."""
        unknown = [t for t in pair.change_types if not isinstance(t, str) or t not in self.CHANGE_TYPES]
        if unknown:
            declared = ", ".join(self.CHANGE_TYPES) or "none"
            raise CaptionSourceError(where, f"unknown change type(s) {unknown} (id {pair.id!r}); declared: {declared}")
        if pair.domain not in DOMAINS:
            raise CaptionSourceError(where, f"domain must be one of {DOMAINS}, got {pair.domain!r}")

    def _check_captions(self, pair: Pair, where: str) -> None:
        captions = pair.captions
        column = pair.column("captions")
        if not isinstance(captions, list) or not captions:
            raise CaptionSourceError(f"{where}, column {column}", f"annotation without captions (id {pair.id!r}): {captions!r}")
        for index, caption in enumerate(captions):
            if not isinstance(caption, str):
                raise CaptionSourceError(
                    f"{where}, column {column}", f"caption {index} is not a string: {caption!r} (id {pair.id!r})"
                )
            if not caption.strip() and not self.UPSTREAM_HAS_BLANK_CAPTIONS:
                raise CaptionSourceError(f"{where}, column {column}", f"caption {index} is blank: {caption!r} (id {pair.id!r})")

    def _check_images(self, splits: dict[str, list[Pair]]) -> None:
        """Decode every image in full (threads: PIL releases the GIL); the first bad one, in row order,
        is the error."""
        jobs: dict[str, tuple[str, str]] = {}  # image -> (origin, column) of its first row
        for split, pairs in splits.items():
            for pair in pairs:
                for column in ("image_before", "image_after"):
                    jobs.setdefault(os.fspath(getattr(pair, column)), (pair.origin or f"{split} pair {pair.id!r}",
                                                                       pair.column(column)))
        limit = self.config.max_image_pixels
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            raise CaptionSourceError("config", f"max_image_pixels must be a positive integer, got {limit!r}")
        paths = list(jobs)
        bad = first_problem(paths, limit, self.config.decode_threads, check=image_file_problem)
        if bad is not None:
            path = paths[bad[0]]
            where, column = jobs[path]
            raise CaptionSourceError(path, f"{bad[1]} (referenced by {where}, column {column})")

    # -- split generators -------------------------------------------------------------------------

    def _split_generators(self, dl_manager):
        root = self._source_dir()
        splits = {split: pairs for split, pairs in self.read_pairs(root).items()}
        self._check(splits, root)
        self.check_release(splits)
        self._check_images(splits)
        generators = []
        for split, pairs in splits.items():
            # One list of chunks: datasets shards --num-proc over it, and each chunk is one table.
            chunks = [pairs[i : i + CHUNK_ROWS] for i in range(0, len(pairs), CHUNK_ROWS)]
            generators.append(datasets.SplitGenerator(name=split, gen_kwargs={"chunks": chunks}))
        return generators

    def _generate_shards(self, chunks):
        for chunk in chunks:
            yield chunk[0].origin if chunk else ""

    # -- generation -------------------------------------------------------------------------------

    @staticmethod
    def _image_column(paths: list[str], origins: list[str], column: str) -> pa.StructArray:
        """``{bytes, path}`` structs holding each file's bytes as they are (decoded once by the checks)."""
        blobs = []
        for path, origin in zip(paths, origins):
            try:
                blobs.append(_read_bytes(path))
            except OSError as err:  # it changed since the checks ran
                raise CaptionSourceError(path, f"cannot be read: {_reason(err)} (referenced by {origin}, column {column!r})") from None
        return pa.StructArray.from_arrays(
            [pa.array(blobs, pa.binary()), pa.array([os.path.basename(p) for p in paths], pa.string())],
            fields=list(datasets.Image().pa_type),
        )

    def _table(self, pairs: list[Pair]) -> pa.Table:
        origins = [p.origin for p in pairs]
        columns = {
            "id": pa.array([p.id for p in pairs], pa.string()),
            "image_before": self._image_column([os.fspath(p.image_before) for p in pairs], origins, "image_before"),
            "image_after": self._image_column([os.fspath(p.image_after) for p in pairs], origins, "image_after"),
            "captions": pa.array([p.captions for p in pairs], pa.list_(pa.string())),
            "change_types": pa.array([list(p.change_types) for p in pairs], pa.list_(pa.string())),
            "domain": pa.array([p.domain for p in pairs], pa.string()),
            "scenario": pa.array([p.scenario for p in pairs], pa.string()),
        }
        for name in self.EXTRA_FEATURES:
            columns[name] = pa.array([p.extras[name] for p in pairs])
        return pa.table(columns).cast(self.info.features.arrow_schema)

    def _generate_tables(self, chunks) -> Iterator[tuple[Key, pa.Table]]:
        for index, chunk in enumerate(chunks):
            if chunk:
                yield Key(index, 0), self._table(chunk)
