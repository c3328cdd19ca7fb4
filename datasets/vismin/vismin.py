"""VisMin (Visual Minimal-Change Understanding): a `datasets` Arrow builder.

Three configurations:

- ``bench`` (default): the benchmark, split ``test``. Each row holds two images and two captions
  that differ in exactly one aspect (``category``: object, attribute, counting, relation).
- ``train``: the training release, one row per image (originals and their minimal edits).
- ``pairs``: the training release as minimal-change pairs: the source image and caption as
  ``image_0``/``text_0``, the edited one as ``image_1``/``text_1``.

Sources (``source=``): ``"hub"`` (the official repos, fetched with ``huggingface_hub``) or a local
directory in either upstream layout (a ``save_to_disk`` Arrow folder, or parquet files). Image bytes
are copied as they are, never re-encoded. Every row is checked completely, and a bad row raises a
:class:`VisminSourceError` naming the source file, the row and the column: ids present, of the
upstream type (``id`` int64; ``image_id`` string) and unique after normalisation (the ids ``"0"``
and ``"00"`` of one category are the same id; ``0.5``, ``"0.0"`` and ``"abc7"`` are errors, never cast;
ids are non-negative integers or digit strings within int64: ``-1`` and ``"-1"`` alike are errors, as
is a uint64 or a 5,000-digit id past the range); every text valid UTF-8 (Arrow does not check it
when it reads a file); every image fully decoded under a pixel limit (``max_image_pixels``, PIL's
89,478,485 by default;
the decoding runs on a thread per core, as Pillow releases the GIL while decoding): the check of
``diffbench.data.image_checks``, the one the image-difference-captioning builders run too (so the two
never disagree; it refuses a truncated image even where the process set
``ImageFile.LOAD_TRUNCATED_IMAGES``); an image file named by path stays inside the source folder; an
unreadable file or folder is an error, never skipped, and so is a data or image file that is no
regular file (a FIFO, a socket, a device), refused from its ``stat`` before anything opens it. An
image's upstream ``path`` (its file name) is kept as it is.

This file depends on ``datasets``, ``pyarrow``, ``huggingface_hub`` and ``diffbench`` (``pip install
diffbench``, for the shared image check). ``diffbench build vismin`` runs it into the datasets cache
so that ``load_dataset("vismin")`` works from any directory; what goes to the Hub is the folder
``diffbench publish`` writes, loadable with ``datasets`` alone.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import datasets
from datasets.builder import Key
from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from diffbench.data.image_checks import DEFAULT_MAX_IMAGE_PIXELS, first_problem, not_regular_file

_CITATION = """\
@inproceedings{awal2024vismin,
  title     = {VisMin: Visual Minimal-Change Understanding},
  author    = {Awal, Rabiul and Ahmadi, Saba and Zhang, Le and Agrawal, Aishwarya},
  booktitle = {Advances in Neural Information Processing Systems},
  year      = {2024},
  eprint    = {2407.16772},
  archivePrefix = {arXiv}
}
"""

_DESCRIPTION = """\
VisMin tests fine-grained visual understanding: each sample holds two images and two captions that
differ in exactly one aspect (an object, an attribute, a count or a spatial relation), and a model
must match each caption to its image.
"""

_HOMEPAGE = "https://vismin.net"

CATEGORIES = ["object", "attribute", "counting", "relation"]
HUB_REPOS = {"test": "mair-lab/vismin-bench", "train": "mair-lab/vismin"}
LICENSES = {"test": "cc-by-4.0", "train": "cc-by-sa-4.0"}
# Upstream columns each configuration reads (besides the question columns of the benchmark).
BENCH_COLUMNS = ("image_0", "text_0", "image_1", "text_1", "category", "id")
TRAIN_COLUMNS = ("image_id", "image", "caption", "bounding_boxes", "source_image_id", "category")
IMAGE_COLUMNS = ("image_0", "image_1", "image")
CAPTION_COLUMNS = ("text_0", "text_1", "caption")
BATCH_ROWS = 100  # rows per record batch written; keeps memory flat whatever the image sizes
# PIL's own default Image.MAX_IMAGE_PIXELS: an image above it is refused (config field max_image_pixels).
MAX_IMAGE_PIXELS = DEFAULT_MAX_IMAGE_PIXELS
DECIMAL_ID = re.compile(r"[0-9]+")
INT64_MAX = 2**63 - 1
ID_RULE = "ids are non-negative integers or digit strings"
SHOWN_CHARS = 60  # a longer value is shown cut, with its length (a message stays readable)


def _shown(value) -> str:
    """``repr(value)``, cut to :data:`SHOWN_CHARS` characters with the full length said.

        >>> _shown("7"), _shown("1" * 5000)[-22:]
        ("'7'", '... (5,000 characters)')
    """
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{value[:SHOWN_CHARS]!r}... ({len(value):,} characters)"
    return repr(value)


class VisminSourceError(ValueError):
    """A problem in the upstream data, located by source file, row and column."""

    def __init__(self, source: str, message: str, row: int | None = None, column: str | None = None):
        where = str(source)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


@dataclass
class VisminConfig(datasets.BuilderConfig):
    """BuilderConfig for VisMin.

    Args:
        source: ``"hub"`` for the official Hub repos, or the path of a local directory holding the
            upstream release (``save_to_disk`` Arrow folder or parquet files).
        repo_id: the Hub repo read when ``source="hub"``; defaults to the official one for the split.
        revision: the Hub revision (branch, tag or commit) read when ``source="hub"``.
        upstream_split: the upstream split this configuration reads (``test`` or ``train``).
        max_image_pixels: the largest image (width x height) accepted; a larger one is an error
            naming file, row and column (decompression bombs never get decoded).
    """

    source: str = "hub"
    repo_id: str | None = None
    revision: str | None = None
    upstream_split: str = "test"
    max_image_pixels: int = MAX_IMAGE_PIXELS


def _image_feature_type() -> pa.DataType:
    return datasets.Image().pa_type


class Vismin(datasets.ArrowBasedBuilder):
    """VisMin benchmark and training data, read from the Hub or a local upstream release."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VisminConfig
    BUILDER_CONFIGS = [
        VisminConfig(name="bench", version=VERSION, upstream_split="test",
                     description="The VisMin benchmark (2,084 samples)."),
        VisminConfig(name="train", version=VERSION, upstream_split="train",
                     description="The VisMin training images, one a row."),
        VisminConfig(name="pairs", version=VERSION, upstream_split="train",
                     description="The training set as minimal-change pairs."),
    ]
    DEFAULT_CONFIG_NAME = "bench"

    @classmethod
    def official_repo_id(cls, config_name: str) -> str:
        """The official Hub repo a configuration reads with ``source="hub"``."""
        split = next(c.upstream_split for c in cls.BUILDER_CONFIGS if c.name == config_name)
        return HUB_REPOS[split]

    # -- schema ---------------------------------------------------------------------------------

    def _base_features(self) -> datasets.Features:
        category = datasets.ClassLabel(names=CATEGORIES)
        if self.config.name == "train":
            return datasets.Features(
                {
                    "image_id": datasets.Value("string"),
                    "image": datasets.Image(),
                    "caption": datasets.Value("string"),
                    "bounding_boxes": datasets.Value("string"),
                    "source_image_id": datasets.Value("string"),
                    "category": datasets.Value("string"),
                }
            )
        features = {"id": datasets.Value("string")}
        if self.config.name == "bench":
            features["upstream_id"] = datasets.Value("int64")
        features.update(
            {
                "category": category,
                "image_0": datasets.Image(),
                "text_0": datasets.Value("string"),
                "image_1": datasets.Image(),
                "text_1": datasets.Value("string"),
            }
        )
        return datasets.Features(features)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=self._base_features(),
            homepage=_HOMEPAGE,
            license=LICENSES[self.config.upstream_split],
            citation=_CITATION,
        )

    # -- sources --------------------------------------------------------------------------------

    def _source_dir(self) -> Path:
        if self.config.source == "hub":
            repo_id = self.config.repo_id or HUB_REPOS[self.config.upstream_split]
            try:
                return Path(snapshot_download(repo_id, repo_type="dataset", revision=self.config.revision))
            except LocalEntryNotFoundError as err:
                raise VisminSourceError(
                    f"hf://datasets/{repo_id}",
                    "the Hub is not reachable and no copy is cached (HF_HUB_OFFLINE set, or no network); "
                    "download the repo elsewhere and pass its folder as the source",
                ) from err
        path = Path(self.config.source).expanduser()
        if not path.exists():
            raise VisminSourceError(path, "source path does not exist")
        return path

    def _source_files(self, root: Path) -> list[Path]:
        """The upstream split's Arrow or parquet files under ``root``, in order.

        An unreadable folder or file is an error (``os.walk`` and ``Path.rglob`` would skip it), and so
        is a data file that is no regular file (a FIFO, a socket, a device), refused from its ``stat``
        before anything opens it: opening a FIFO waits for a writer forever.
        """
        split = self.config.upstream_split

        def unreadable(err: OSError):
            raise VisminSourceError(err.filename, f"cannot read the folder ({err.strerror})")

        if not root.is_dir():
            candidates = [root]
        else:
            candidates = sorted(
                Path(folder) / name
                for folder, _, names in os.walk(root, onerror=unreadable)
                for name in names
                if name.endswith((".arrow", ".parquet")) and not name.startswith("cache-")
            )

        def in_split(p: Path) -> bool:
            parts = p.relative_to(root).parts[:-1] if root.is_dir() else ()
            return split in parts or p.name.startswith((f"{split}-", f"{split}."))

        for path in candidates:  # every data file, looked at before any is opened (a FIFO would block)
            problem = not_regular_file(path)
            if problem is not None:
                raise VisminSourceError(path, problem)
        files = [p for p in candidates if in_split(p)] or candidates
        if not files:
            raise VisminSourceError(root, f"no .arrow or .parquet files of split {split!r} found")
        for path in files:
            try:
                with open(path, "rb"):
                    pass
            except OSError as err:
                raise VisminSourceError(path, f"cannot read the file ({err.strerror or err})") from None
        return files

    # -- reading --------------------------------------------------------------------------------

    @staticmethod
    def _iter_batches(path: Path, columns: list[str] | None = None):
        """Record batches of one source file, streamed (Arrow stream / Arrow file / parquet), their text
        checked (:meth:`_check_utf8`)."""
        first_row = 0
        for batch in Vismin._file_batches(path, columns):
            Vismin._check_utf8(batch, path, first_row)
            first_row += batch.num_rows
            yield batch

    @staticmethod
    def _check_utf8(batch: pa.RecordBatch, path: Path, first_row: int) -> None:
        """Every string of ``batch`` valid UTF-8, else an error naming the first bad row and its column.

        Arrow does not check it when it reads a file: a bad byte would be copied into the build, to
        fail whoever reads that row later. ``validate(full=True)`` checks it in C++; only a batch that
        fails is searched row by row.
        """
        try:
            batch.validate(full=True)
            return
        except pa.ArrowInvalid:
            pass
        for name, column in zip(batch.schema.names, batch.columns):
            try:
                column.validate(full=True)
                continue
            except pa.ArrowInvalid as err:
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            found = Vismin._first_invalid(column)
            if found is None:
                raise VisminSourceError(path, f"invalid data ({reason})", row=first_row, column=name)
            offset, cell = found
            raise VisminSourceError(path, Vismin._utf8_problem(cell, reason), row=first_row + offset, column=name)

    @staticmethod
    def _first_invalid(column: pa.Array) -> tuple[int, pa.Array] | None:
        """``(row, one-row array)`` of the first row that fails a full validation, searched into struct
        fields (an image's ``path``): a struct's slice validates its whole children."""
        if pa.types.is_struct(column.type):
            found = [hit for child in column.flatten() if (hit := Vismin._first_invalid(child)) is not None]
            return min(found, key=lambda hit: hit[0]) if found else None
        for offset in range(len(column)):
            cell = column.slice(offset, 1)
            try:
                cell.validate(full=True)
            except pa.ArrowInvalid:
                return offset, cell
        return None

    @staticmethod
    def _utf8_problem(cell: pa.Array, reason: str) -> str:
        """What is wrong with one bad cell: the byte that is no UTF-8, where a plain text cell says it."""
        if pa.types.is_string(cell.type) or pa.types.is_large_string(cell.type):
            raw = cell.view(pa.large_binary() if pa.types.is_large_string(cell.type) else pa.binary())[0].as_py()
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return f"text is not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte {err.start}: {err.reason})"
        return f"text is not valid UTF-8 ({reason})"

    @staticmethod
    def _file_batches(path: Path, columns: list[str] | None = None):
        """:meth:`_iter_batches` before any check."""
        if path.suffix == ".parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns)
            return
        source = pa.memory_map(str(path))
        try:
            reader = pa.ipc.open_stream(source)
            batches = iter(reader)
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        for batch in batches:
            # Upstream batches can be large (1,000 rows of images); re-slice for flat memory.
            for offset in range(0, batch.num_rows, BATCH_ROWS):
                sliced = batch.slice(offset, BATCH_ROWS)
                yield sliced.select(columns) if columns is not None else sliced

    def _read_table(self, path: Path, columns: list[str]) -> pa.Table:
        if path.suffix == ".parquet":
            return pq.read_table(path, columns=columns)
        batches = list(self._iter_batches(path, columns))
        return pa.Table.from_batches(batches) if batches else pa.table({c: [] for c in columns})

    @staticmethod
    def _schema(path: Path) -> pa.Schema:
        try:
            if path.suffix == ".parquet":
                return pq.read_schema(path)
            source = pa.memory_map(str(path))
            try:
                return pa.ipc.open_stream(source).schema
            except pa.ArrowInvalid:
                return pa.ipc.open_file(source).schema
        except (pa.ArrowException, OSError) as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise VisminSourceError(path, f"not a readable {path.suffix[1:]} file ({first_line})") from None

    def _check_columns(self, files: list[Path], required) -> list[str]:
        """Every file must hold ``required``; returns the extra question columns of the first."""
        questions = None
        for path in files:
            names = self._schema(path).names
            missing = [c for c in required if c not in names]
            if missing:
                raise VisminSourceError(path, f"missing column(s) {missing}; found {names}", column=missing[0])
            file_questions = [n for n in names if "question" in n]
            if questions is None:
                questions = file_questions
            elif file_questions != questions:
                raise VisminSourceError(path, f"question columns {file_questions} differ from {questions}")
        return questions or []

    # -- split generators -----------------------------------------------------------------------

    def _split_generators(self, dl_manager):
        root = self._source_dir()
        files = self._source_files(root)
        # Images named by path must lie inside this folder.
        self._source_root = (root if root.is_dir() else root.parent).resolve()
        name = self.config.name
        if name == "bench":
            questions = self._check_columns(files, BENCH_COLUMNS)
            self.info.features = datasets.Features(
                {**self._base_features(), **{q: datasets.Value("string") for q in questions}}
            )
            self._check_unique(files, ["category", "id"])
            # Tuples and strings are not sharded by num_proc: only `files` is.
            gen_kwargs = {"files": files, "questions": tuple(questions)}
            split = datasets.Split.TEST
        else:
            self._check_columns(files, TRAIN_COLUMNS)
            index = self._check_unique(files, ["image_id"])
            gen_kwargs = {"files": files}
            if name == "pairs":
                gen_kwargs["image_index"] = index
                # A tuple is not sharded by num_proc: every job looks sources up in every file.
                gen_kwargs["all_files"] = tuple(files)
            split = datasets.Split.TRAIN
        return [datasets.SplitGenerator(name=split, gen_kwargs=gen_kwargs)]

    def _check_unique(self, files: list[Path], key_columns: list[str]) -> dict:
        """Fail on a key seen twice after normalisation (naming both places); return key -> (file index, row)."""
        seen: dict = {}
        for file_index, path in enumerate(files):
            first_row = 0
            for batch in self._iter_batches(path, key_columns):
                if key_columns == ["category", "id"]:
                    ids = self._upstream_ids(batch.column("id"), path, first_row).to_pylist()
                    keys = list(zip(batch.column("category").to_pylist(), ids))
                else:
                    keys = self._image_ids(batch.column("image_id"), path, first_row, "image_id").to_pylist()
                for offset, key in enumerate(keys):
                    row = first_row + offset
                    if key in seen:
                        first_file, first_seen = seen[key]
                        raise VisminSourceError(
                            path,
                            f"duplicate {'/'.join(key_columns)} {key!r}, first seen in {files[first_file]}, row {first_seen}",
                            row=row,
                            column=key_columns[-1],
                        )
                    seen[key] = (file_index, row)
                first_row += batch.num_rows
        return seen

    @staticmethod
    def _upstream_ids(column, path: Path, first_row: int) -> pa.Array:
        """The benchmark's ``id`` column as int64: non-negative integers, or decimal digit strings (``"00"`` is 0).

        Anything else (null, a negative number, a float even when whole, ``"0.0"``, ``"abc7"``, a value
        past the int64 range, even of an unsigned column) is an error naming its row: never a cast.
        """
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        nulls = pc.indices_nonzero(pc.is_null(column))
        if len(nulls):
            raise VisminSourceError(path, "missing id", row=first_row + nulls[0].as_py(), column="id")
        if pa.types.is_integer(column.type):
            return Vismin._integer_ids(column, path, first_row)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise VisminSourceError(path, f"ids must be integers (upstream type int64), got {column[0].as_py()!r} "
                                    f"of type {column.type}", row=first_row, column="id")
        numbers = []
        for offset, value in enumerate(column.to_pylist()):
            if not DECIMAL_ID.fullmatch(value):
                raise VisminSourceError(path, f"id {_shown(value)} is not a whole number (upstream type int64): "
                                        f"{ID_RULE}", row=first_row + offset, column="id")
            # Sized by its digits first: int() of an unbounded string fails past 4,300 digits, naming nothing.
            digits = value.lstrip("0") or "0"
            if len(digits) > len(str(INT64_MAX)) or int(digits) > INT64_MAX:
                raise VisminSourceError(path, f"id {_shown(value)} is out of the int64 range (upstream type int64)",
                                        row=first_row + offset, column="id")
            numbers.append(int(digits))
        return pa.array(numbers, pa.int64())

    @staticmethod
    def _integer_ids(column: pa.Array, path: Path, first_row: int) -> pa.Array:
        """An integer ``id`` column as int64: a negative id, or one past int64 (uint64), names its row."""
        negative = pc.indices_nonzero(pc.less(column, pa.scalar(0, column.type)))  # typed: no cast of uint64
        if len(negative):
            row = negative[0].as_py()
            raise VisminSourceError(path, f"id {column[row].as_py()} is negative (upstream type int64): {ID_RULE}",
                                    row=first_row + row, column="id")
        if column.type == pa.uint64():
            too_large = pc.indices_nonzero(pc.greater(column, pa.scalar(INT64_MAX, pa.uint64())))
            if len(too_large):
                row = too_large[0].as_py()
                raise VisminSourceError(path, f"id {column[row].as_py()} is out of the int64 range (upstream type "
                                        f"int64, this column {column.type})", row=first_row + row, column="id")
        return pc.cast(column, pa.int64())

    @staticmethod
    def _image_ids(column, path: Path, first_row: int, name: str) -> pa.Array:
        """A training ``image_id`` column as strings: present, non-empty, string (or integer) typed."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_integer(column.type):
            column = pc.cast(column, pa.string())
        elif not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise VisminSourceError(path, f"{name} must be strings (upstream type string), got {column.type}",
                                    row=first_row, column=name)
        bad = pc.indices_nonzero(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), True))
        if len(bad):
            raise VisminSourceError(path, f"missing {name}", row=first_row + bad[0].as_py(), column=name)
        return pc.cast(column, pa.string())

    def _generate_shards(self, files, **kwargs):
        yield from (str(f) for f in files)

    # -- validation -----------------------------------------------------------------------------

    def _checked_images(self, column, where: list[tuple[Path, int]], name: str) -> pa.Array:
        """The column as ``{bytes, path}`` structs, each image present and fully decoded under the pixel limit.

        ``where[i]`` is the (source file, row) of element ``i``, for the error message; the first bad
        row is reported. Headers are read here (and the pixel limit checked before any decoding);
        the full decoding runs on the thread pool.
        """
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if not pa.types.is_struct(column.type) or column.type.get_field_index("bytes") < 0:
            raise VisminSourceError(where[0][0], f"expected an image struct {{bytes, path}}, got {column.type}",
                                    column=name)
        data = column.field("bytes")
        blobs = data.to_pylist()
        if any(blob is None for blob in blobs):
            # Images stored by path (not embedded): read the file, which must lie inside the source folder.
            paths = column.field("path").to_pylist() if column.type.get_field_index("path") >= 0 else [None] * len(blobs)
            for i, blob in enumerate(blobs):
                if blob is None:
                    blobs[i] = self._image_file_bytes(paths[i], *where[i], name)
            data = pa.array(blobs, pa.binary())
        elif data.type != pa.binary():
            data = data.cast(pa.binary())
        bad = first_problem(blobs, self.config.max_image_pixels)
        if bad is not None:
            index, problem = bad
            raise VisminSourceError(where[index][0], problem, row=where[index][1], column=name)
        # The upstream file name is kept as it is (the caption builders keep theirs too): never cleaned silently.
        if column.type.get_field_index("path") >= 0:
            paths = pc.cast(column.field("path"), pa.string())
        else:
            paths = pa.nulls(len(column), pa.string())
        return pa.StructArray.from_arrays([data, paths], fields=list(_image_feature_type()))

    def _image_file_bytes(self, image_path, path: Path, row: int, name: str) -> bytes:
        root = self.__dict__.get("_source_root") or path.parent.resolve()
        candidate = (path.parent / image_path).resolve() if image_path else None
        if candidate is not None and candidate != root and root not in candidate.parents:
            raise VisminSourceError(path, f"image path {image_path!r} leaves the source folder {root}", row=row,
                                    column=name)
        if candidate is None:
            raise VisminSourceError(path, "image has neither bytes nor a path", row=row, column=name)
        problem = not_regular_file(candidate)  # looked at before it is opened: a FIFO would block
        if problem is not None:
            raise VisminSourceError(path, f"image has no bytes, and its file {image_path!r} {problem}", row=row,
                                    column=name)
        try:
            return candidate.read_bytes()
        except OSError as err:
            raise VisminSourceError(path, f"cannot read image file {image_path!r} ({err.strerror or err})", row=row,
                                    column=name) from None

    def _image_bytes(self, column, path: Path, first_row: int, name: str) -> pa.Array:
        """:meth:`_checked_images` for a column of consecutive rows of one file."""
        return self._checked_images(column, [(path, first_row + i) for i in range(len(column))], name)

    @staticmethod
    def _check_text_type(column, path: Path, first_row: int, name: str) -> None:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_null(column.type)):
            raise VisminSourceError(path, f"expected text (upstream type string), got {column.type}", row=first_row,
                                    column=name)

    @classmethod
    def _check_captions(cls, batch: pa.RecordBatch, path: Path, first_row: int, names) -> None:
        for name in names:
            column = batch.column(name)
            cls._check_text_type(column, path, first_row, name)
            empty = pc.or_kleene(pc.is_null(column), pc.equal(pc.utf8_trim_whitespace(column), ""))
            bad = pc.indices_nonzero(pc.fill_null(empty, True))
            if len(bad):
                raise VisminSourceError(path, "empty caption", row=first_row + bad[0].as_py(), column=name)

    @classmethod
    def _check_categories(cls, batch: pa.RecordBatch, path: Path, first_row: int, allowed) -> pa.Array:
        column = batch.column("category")
        cls._check_text_type(column, path, first_row, "category")
        if pa.types.is_null(column.type) or "" in allowed:
            column = pc.fill_null(pc.cast(column, pa.string()), "")
        codes = pc.index_in(column, value_set=pa.array(allowed))
        bad = pc.indices_nonzero(pc.is_null(codes))
        if len(bad):
            value = column[bad[0].as_py()].as_py()
            raise VisminSourceError(
                path, f"unknown category {value!r}; expected one of {allowed}", row=first_row + bad[0].as_py(), column="category"
            )
        return codes

    # -- generation -----------------------------------------------------------------------------

    def _generate_tables(self, files, questions=(), image_index=None, all_files=()):
        for file_index, path in enumerate(files):
            path = Path(path)
            first_row = 0
            for batch_index, batch in enumerate(self._iter_batches(path)):
                if self.config.name == "bench":
                    table = self._bench_table(batch, path, first_row, questions)
                elif self.config.name == "train":
                    table = self._train_table(batch, path, first_row)
                else:
                    table = self._pairs_table(batch, path, first_row, all_files, image_index)
                first_row += batch.num_rows
                if table is not None and table.num_rows:
                    yield Key(file_index, batch_index), table

    def _bench_table(self, batch, path, first_row, questions) -> pa.Table:
        self._check_captions(batch, path, first_row, ("text_0", "text_1"))
        codes = self._check_categories(batch, path, first_row, CATEGORIES)
        upstream_id = self._upstream_ids(batch.column("id"), path, first_row)
        columns = {
            "id": pc.binary_join_element_wise(batch.column("category"), pc.cast(upstream_id, pa.string()), "/"),
            "upstream_id": upstream_id,
            "category": pc.cast(codes, pa.int64()),
            "image_0": self._image_bytes(batch.column("image_0"), path, first_row, "image_0"),
            "text_0": batch.column("text_0"),
            "image_1": self._image_bytes(batch.column("image_1"), path, first_row, "image_1"),
            "text_1": batch.column("text_1"),
        }
        columns.update({q: self._question_column(batch.column(q), path, first_row, q) for q in questions})
        return pa.table(columns).cast(self.info.features.arrow_schema)

    @staticmethod
    def _question_column(column, path: Path, first_row: int, name: str) -> pa.Array:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_null(column.type)):
            raise VisminSourceError(path, f"questions must be text, got {column.type}", row=first_row, column=name)
        return pc.cast(column, pa.string())

    def _train_columns(self, batch, path, first_row) -> dict:
        self._check_captions(batch, path, first_row, ("caption",))
        self._check_categories(batch, path, first_row, ["", *CATEGORIES])
        boxes = batch.column("bounding_boxes")
        if not pa.types.is_string(boxes.type) and not pa.types.is_large_string(boxes.type):
            # Stored as JSON text so that every upstream box layout fits one declared feature.
            boxes = pa.array([None if b is None else json.dumps(b) for b in boxes.to_pylist()], pa.string())
        return {
            "image_id": self._image_ids(batch.column("image_id"), path, first_row, "image_id"),
            "image": self._image_bytes(batch.column("image"), path, first_row, "image"),
            "caption": batch.column("caption"),
            "bounding_boxes": boxes,
            "source_image_id": pc.fill_null(pc.cast(batch.column("source_image_id"), pa.string()), ""),
            "category": pc.fill_null(batch.column("category"), ""),
        }

    def _train_table(self, batch, path, first_row) -> pa.Table:
        return pa.table(self._train_columns(batch, path, first_row)).cast(self.info.features.arrow_schema)

    def _pairs_table(self, batch, path, first_row, files, image_index) -> pa.Table | None:
        # Checked on the whole batch, so a bad row is named by its own row number.
        self._check_captions(batch, path, first_row, ("caption",))
        self._check_categories(batch, path, first_row, ["", *CATEGORIES])
        image_ids = self._image_ids(batch.column("image_id"), path, first_row, "image_id")
        edited = pc.indices_nonzero(pc.not_equal(pc.fill_null(batch.column("source_image_id"), ""), ""))
        if not len(edited):
            return None
        rows = batch.take(edited)
        row_numbers = [first_row + i for i in edited.to_pylist()]
        codes = pc.index_in(rows.column("category"), value_set=pa.array(CATEGORIES))
        missing = pc.indices_nonzero(pc.is_null(codes))
        if len(missing):
            raise VisminSourceError(path, "an edited image (with a source_image_id) has no category",
                                    row=row_numbers[missing[0].as_py()], column="category")
        sources = []
        for row, source_id in zip(row_numbers, rows.column("source_image_id").to_pylist()):
            if source_id not in image_index:
                raise VisminSourceError(path, f"source image {source_id!r} is not in the release", row=row,
                                        column="source_image_id")
            sources.append(image_index[source_id])
        source_rows = self._take_rows(files, sources, ["image", "caption"])
        return pa.table(
            {
                "id": image_ids.take(edited),
                "category": pc.cast(codes, pa.int64()),
                "image_0": source_rows.column("image"),
                "text_0": source_rows.column("caption"),
                "image_1": self._checked_images(rows.column("image"), [(path, r) for r in row_numbers], "image"),
                "text_1": rows.column("caption"),
            }
        ).cast(self.info.features.arrow_schema)

    def _take_rows(self, files, locations: list[tuple[int, int]], columns: list[str]) -> pa.Table:
        """Rows by (file index, row) across source files, images checked; memory-mapped, so only those rows are read."""
        cache = self.__dict__.setdefault("_mapped_tables", {})
        pieces = []
        for file_index, row in locations:
            if file_index not in cache:
                if len(cache) >= 2:  # keep at most two source files mapped
                    cache.pop(next(iter(cache)))
                path = Path(files[file_index])
                if path.suffix == ".parquet":
                    cache[file_index] = pq.read_table(path, columns=columns, memory_map=True)
                else:
                    cache[file_index] = self._read_table(path, columns)
            pieces.append(cache[file_index].slice(row, 1))
        table = pa.concat_tables(pieces)
        where = [(Path(files[file_index]), row) for file_index, row in locations]
        try:
            table.validate(full=True)  # rows of a file not generated yet: their text is not checked yet
        except pa.ArrowInvalid:
            for (path, row), piece in zip(where, pieces):
                self._check_utf8(piece.combine_chunks().to_batches()[0], path, row)
        return pa.table({"image": self._checked_images(table.column("image"), where, "image"),
                         "caption": table.column("caption")})
