"""The one base of the image-difference-captioning (IDC) builders: one schema, one build path.

Every builder under ``datasets/{omnidiff,spot_the_diff,clevr_change,clevr_dc,image_editing_request}/``
subclasses :class:`IDCBuilder` and only says how its upstream layout maps onto the schema, by
implementing :meth:`IDCBuilder.read_pairs` (upstream files -> :class:`Pair` records per split).
Everything else is here, once: the schema, the sources (``hub`` / a local folder), the checks (every
missing image in one error, malformed JSON located by file, line and column, duplicate ids,
annotations without captions, change types outside the declared vocabulary), and the generation of
batched Arrow tables whose images are the source files' bytes, copied, never decoded and re-encoded.

Schema (one row = one image pair):

=================  =====================================================================
``id``             string, unique across the whole dataset
``image_before``   Image (the original file's bytes; ``path`` keeps its file name)
``image_after``    Image
``captions``       list of strings: the reference descriptions of what changed
``change_types``   list of strings from the builder's :attr:`~IDCBuilder.CHANGE_TYPES`
``domain``         ``real`` or ``synthetic``
``scenario``       string, may be empty
(extras)           per dataset, declared in :attr:`~IDCBuilder.EXTRA_FEATURES`
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
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from PIL import Image, UnidentifiedImageError

import datasets
from datasets.builder import Key

DOMAINS = ("real", "synthetic")
CHUNK_ROWS = 128  # rows per Arrow table (and per shard under --num-proc); keeps memory flat
MAX_LISTED = 50  # a long list of problems is cut after this many, with the total given


class IDCSourceError(ValueError):
    """A problem in the upstream data, located in its file (line and column, or entry and key)."""

    def __init__(self, source, message: str, line: int | None = None, column: int | None = None):
        where = str(source)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")


@dataclass
class IDCConfig(datasets.BuilderConfig):
    """BuilderConfig of the image-difference-captioning builders.

    Args:
        source: ``"hub"`` (``repo_id``, or the builder's official Hub repo where one exists) or the
            path of a local directory holding the upstream release in its official layout.
        repo_id: the Hub dataset repo read when ``source="hub"`` (a mirror in the official layout).
        revision: the Hub revision (branch, tag or commit) read when ``source="hub"``.
    """

    source: str = "hub"
    repo_id: str | None = None
    revision: str | None = None


@dataclass
class Pair:
    """One image pair as an upstream release describes it, before any check.

    ``origin`` says where it came from (``"train.json, entry 12"``), for error messages.
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


def read_json(path: Path):
    """``json.load`` with a malformed file reported by file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise IDCSourceError(path, "file not found")
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise IDCSourceError(path, f"malformed JSON: {err.msg}", line=err.lineno, column=err.colno) from None


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
        if not isinstance(index, int) or not 0 <= index < len(names):
            raise IDCSourceError(where, f"index {index!r} out of range: {folder} holds {len(names)} images")
        yield where, names[index]


def read_jsonl(path: Path) -> list:
    """One JSON value a non-blank line; a malformed line is reported by file, line and column."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line.rstrip("\r\n")))
            except json.JSONDecodeError as err:
                raise IDCSourceError(path, f"malformed JSON: {err.msg}", line=number, column=err.pos + 1) from None
    return records


# Plain-OS file access on purpose: datasets patches ``open``, ``pathlib.Path`` and ``os.path`` in every
# builder module (and its bases) for streaming, which costs ~50 us a call here on local files.
def _read_bytes(path: str) -> bytes:
    with io.FileIO(path, "r") as handle:
        return handle.readall()


def _is_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def _looks_like_image(blob: bytes) -> bool:
    """A known image signature (PNG, JPEG, GIF, BMP, TIFF, WebP), else PIL reads its header."""
    if blob.startswith(_SIGNATURES) or (blob[:4] == b"RIFF" and blob[8:12] == b"WEBP"):
        return True
    try:
        Image.open(io.BytesIO(blob))
    except (UnidentifiedImageError, OSError):
        return False
    return True


def expect(condition: bool, source, message: str) -> None:
    """Raise :class:`IDCSourceError` unless ``condition``."""
    if not condition:
        raise IDCSourceError(source, message)


def _listing(items: list[str]) -> str:
    shown = "\n  ".join(items[:MAX_LISTED])
    more = f"\n  ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return f"\n  {shown}{more}"


class IDCBuilder(datasets.ArrowBasedBuilder):
    """Base builder: subclasses set the class attributes below and implement :meth:`read_pairs`."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = IDCConfig
    BUILDER_CONFIGS = [IDCConfig(name="default", version=VERSION, description="The whole release, upstream splits.")]
    DEFAULT_CONFIG_NAME = "default"

    #: the declared change-type vocabulary (empty: the dataset has none, every row has ``[]``)
    CHANGE_TYPES: tuple[str, ...] = ()
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
                raise IDCSourceError(
                    "source='hub'",
                    f"{self.dataset_name or self.name} has no official Hub repo: pass repo_id= (a Hub mirror in the "
                    "official layout) or the path of a local folder holding the upstream release",
                )
            from huggingface_hub import snapshot_download
            from huggingface_hub.errors import LocalEntryNotFoundError

            try:
                return Path(snapshot_download(repo_id, repo_type="dataset", revision=self.config.revision))
            except LocalEntryNotFoundError as err:
                raise IDCSourceError(
                    f"hf://datasets/{repo_id}",
                    "the Hub is not reachable and no copy is cached (HF_HUB_OFFLINE set, or no network); "
                    "download the repo elsewhere and pass its folder as the source",
                ) from err
        path = Path(self.config.source).expanduser()
        if not path.is_dir():
            raise IDCSourceError(path, "source folder does not exist")
        return path

    # -- checks -----------------------------------------------------------------------------------

    def _check(self, splits: dict[str, list[Pair]]) -> None:
        """Every check over every split, before anything is written."""
        vocabulary = set(self.CHANGE_TYPES)
        seen: dict[str, str] = {}
        missing: list[str] = []
        checked: set[str] = set()
        for split, pairs in splits.items():
            for pair in pairs:
                where = pair.origin or f"{split} pair {pair.id!r}"
                if not isinstance(pair.id, str) or not pair.id:
                    raise IDCSourceError(where, f"empty or non-string id {pair.id!r}")
                if pair.id in seen:
                    raise IDCSourceError(where, f"duplicate id {pair.id!r}, first seen at {seen[pair.id]}")
                seen[pair.id] = where
                captions = pair.captions
                if not isinstance(captions, list) or not captions:
                    raise IDCSourceError(where, f"annotation without captions (id {pair.id!r})")
                for caption in captions:
                    if not isinstance(caption, str) or not caption.strip():
                        raise IDCSourceError(where, f"empty or non-string caption {caption!r} (id {pair.id!r})")
                unknown = [t for t in pair.change_types if t not in vocabulary]
                if unknown:
                    declared = ", ".join(self.CHANGE_TYPES) or "none"
                    raise IDCSourceError(where, f"unknown change type(s) {unknown} (id {pair.id!r}); declared: {declared}")
                if pair.domain not in DOMAINS:
                    raise IDCSourceError(where, f"domain must be one of {DOMAINS}, got {pair.domain!r}")
                for image in (os.fspath(pair.image_before), os.fspath(pair.image_after)):
                    if image not in checked:
                        checked.add(image)
                        if not _is_file(image):
                            missing.append(image)
        if missing:
            raise IDCSourceError(
                self.config.source, f"{len(missing)} image file(s) missing:{_listing(sorted(set(missing)))}"
            )

    # -- split generators -------------------------------------------------------------------------

    def _split_generators(self, dl_manager):
        root = self._source_dir()
        splits = {split: pairs for split, pairs in self.read_pairs(root).items()}
        self._check(splits)
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
        """``{bytes, path}`` structs holding each file's bytes as they are (checked to be an image)."""
        blobs = []
        for path, origin in zip(paths, origins):
            blob = _read_bytes(path)
            if not _looks_like_image(blob):
                raise IDCSourceError(path, f"not a readable image; referenced by {origin}, column {column!r}")
            blobs.append(blob)
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
