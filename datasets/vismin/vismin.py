"""VisMin (Visual Minimal-Change Understanding): a `datasets` Arrow builder.

Three configurations:

- ``bench`` (default): the benchmark, split ``test``. Each row holds two images and two captions
  that differ in exactly one aspect (``category``: object, attribute, counting, relation).
- ``train``: the training release, one row per image (originals and their minimal edits).
- ``pairs``: the training release as minimal-change pairs: the source image and caption as
  ``image_0``/``text_0``, the edited one as ``image_1``/``text_1``.

Sources (``source=``): ``"hub"`` (the official repos, fetched with ``huggingface_hub``) or a local
directory in either upstream layout (a ``save_to_disk`` Arrow folder, or parquet files). Image bytes
are copied as they are, never decoded and re-encoded. Every row is checked first; a bad row raises a
:class:`VisMinSourceError` naming the source file, the row and the column.

This file depends only on ``datasets``, ``pyarrow``, ``Pillow`` and ``huggingface_hub``, so the folder
can be pushed to the Hub as it is. ``diffbench build vismin`` runs it into the datasets cache so that
``load_dataset("vismin")`` works from any directory.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

import datasets
from datasets.builder import Key

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


class VisMinSourceError(ValueError):
    """A problem in the upstream data, located by source file, row and column."""

    def __init__(self, source: str, message: str, row: int | None = None, column: str | None = None):
        where = str(source)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


@dataclass
class VisMinConfig(datasets.BuilderConfig):
    """BuilderConfig for VisMin.

    Args:
        source: ``"hub"`` for the official Hub repos, or the path of a local directory holding the
            upstream release (``save_to_disk`` Arrow folder or parquet files).
        repo_id: the Hub repo read when ``source="hub"``; defaults to the official one for the split.
        revision: the Hub revision (branch, tag or commit) read when ``source="hub"``.
        upstream_split: the upstream split this configuration reads (``test`` or ``train``).
    """

    source: str = "hub"
    repo_id: str | None = None
    revision: str | None = None
    upstream_split: str = "test"


def _image_feature_type() -> pa.DataType:
    return datasets.Image().pa_type


class VisMin(datasets.ArrowBasedBuilder):
    """VisMin benchmark and training data, read from the Hub or a local upstream release."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VisMinConfig
    BUILDER_CONFIGS = [
        VisMinConfig(name="bench", version=VERSION, upstream_split="test",
                     description="The VisMin benchmark (2,084 samples)."),
        VisMinConfig(name="train", version=VERSION, upstream_split="train",
                     description="The VisMin training images, one a row."),
        VisMinConfig(name="pairs", version=VERSION, upstream_split="train",
                     description="The training set as minimal-change pairs."),
    ]
    DEFAULT_CONFIG_NAME = "bench"

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
            from huggingface_hub import snapshot_download
            from huggingface_hub.errors import LocalEntryNotFoundError

            repo_id = self.config.repo_id or HUB_REPOS[self.config.upstream_split]
            try:
                return Path(snapshot_download(repo_id, repo_type="dataset", revision=self.config.revision))
            except LocalEntryNotFoundError as err:
                raise VisMinSourceError(
                    f"hf://datasets/{repo_id}",
                    "the Hub is not reachable and no copy is cached (HF_HUB_OFFLINE set, or no network); "
                    "download the repo elsewhere and pass its folder as the source",
                ) from err
        path = Path(self.config.source).expanduser()
        if not path.exists():
            raise VisMinSourceError(path, "source path does not exist")
        return path

    def _source_files(self, root: Path) -> list[Path]:
        """The upstream split's Arrow or parquet files under ``root``, in order."""
        split = self.config.upstream_split
        candidates = sorted(
            p
            for pattern in ("*.arrow", "*.parquet")
            for p in ([root] if root.is_file() else root.rglob(pattern))
            if p.suffix == pattern[1:] and not p.name.startswith("cache-")
        )

        def in_split(p: Path) -> bool:
            parts = p.relative_to(root).parts[:-1] if root.is_dir() else ()
            return split in parts or p.name.startswith((f"{split}-", f"{split}."))

        files = [p for p in candidates if in_split(p)] or candidates
        if not files:
            raise VisMinSourceError(root, f"no .arrow or .parquet files of split {split!r} found")
        return files

    # -- reading --------------------------------------------------------------------------------

    @staticmethod
    def _iter_batches(path: Path, columns: list[str] | None = None):
        """Record batches of one source file, streamed (Arrow stream / Arrow file / parquet)."""
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
        if path.suffix == ".parquet":
            return pq.read_schema(path)
        source = pa.memory_map(str(path))
        try:
            return pa.ipc.open_stream(source).schema
        except pa.ArrowInvalid:
            return pa.ipc.open_file(source).schema

    def _check_columns(self, files: list[Path], required) -> list[str]:
        """Every file must hold ``required``; returns the extra question columns of the first."""
        questions = None
        for path in files:
            names = self._schema(path).names
            missing = [c for c in required if c not in names]
            if missing:
                raise VisMinSourceError(path, f"missing column(s) {missing}; found {names}", column=missing[0])
            file_questions = [n for n in names if "question" in n]
            if questions is None:
                questions = file_questions
            elif file_questions != questions:
                raise VisMinSourceError(path, f"question columns {file_questions} differ from {questions}")
        return questions or []

    # -- split generators -----------------------------------------------------------------------

    def _split_generators(self, dl_manager):
        root = self._source_dir()
        files = self._source_files(root)
        name = self.config.name
        if name == "bench":
            questions = self._check_columns(files, BENCH_COLUMNS)
            self.info.features = datasets.Features(
                {**self._base_features(), **{q: datasets.Value("string") for q in questions}}
            )
            self._check_unique(files, ["category", "id"])
            gen_kwargs = {"files": files, "questions": questions}
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
        """Fail on a key seen twice (naming both places); return key -> (file index, row)."""
        seen: dict = {}
        for file_index, path in enumerate(files):
            table = self._read_table(path, key_columns)
            keys = zip(*(table.column(c).to_pylist() for c in key_columns))
            for row, key in enumerate(keys):
                key = key if len(key) > 1 else key[0]
                if key in seen:
                    first_file, first_row = seen[key]
                    raise VisMinSourceError(
                        path,
                        f"duplicate {'/'.join(key_columns)} {key!r}, first seen in {files[first_file]}, row {first_row}",
                        row=row,
                        column=key_columns[-1],
                    )
                seen[key] = (file_index, row)
        return seen

    def _generate_shards(self, files, **kwargs):
        yield from (str(f) for f in files)

    # -- validation -----------------------------------------------------------------------------

    @staticmethod
    def _image_bytes(column: pa.ChunkedArray | pa.Array, path: Path, first_row: int, name: str) -> pa.Array:
        """The column as ``{bytes, path}`` structs with bytes present and readable as an image."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if not pa.types.is_struct(column.type) or column.type.get_field_index("bytes") < 0:
            raise VisMinSourceError(path, f"expected an image struct {{bytes, path}}, got {column.type}", column=name)
        data = column.field("bytes")
        paths = column.field("path") if column.type.get_field_index("path") >= 0 else None
        filled = None
        for i in range(len(column)):
            blob = data[i].as_py()
            if blob is None:
                # Images stored by path (not embedded): read the file beside the source.
                image_path = paths[i].as_py() if paths is not None else None
                candidate = (path.parent / image_path) if image_path else None
                if candidate is None or not candidate.is_file():
                    raise VisMinSourceError(path, f"image has no bytes and no readable file ({image_path!r})",
                                            row=first_row + i, column=name)
                filled = filled if filled is not None else data.to_pylist()
                blob = filled[i] = candidate.read_bytes()
            try:
                with Image.open(io.BytesIO(blob)) as image:
                    image.verify()
            except (UnidentifiedImageError, OSError, SyntaxError) as err:
                raise VisMinSourceError(path, f"undecodable image ({err})", row=first_row + i, column=name) from err
        if filled is not None:
            data = pa.array(filled, pa.binary())
        elif data.type != pa.binary():
            data = data.cast(pa.binary())
        return pa.StructArray.from_arrays([data, pa.nulls(len(column), pa.string())], fields=list(_image_feature_type()))

    @staticmethod
    def _check_captions(batch: pa.RecordBatch, path: Path, first_row: int, names) -> None:
        for name in names:
            column = batch.column(name)
            empty = pc.or_kleene(pc.is_null(column), pc.equal(pc.utf8_trim_whitespace(column), ""))
            bad = pc.indices_nonzero(pc.fill_null(empty, True))
            if len(bad):
                raise VisMinSourceError(path, "empty caption", row=first_row + bad[0].as_py(), column=name)

    @staticmethod
    def _check_categories(batch: pa.RecordBatch, path: Path, first_row: int, allowed) -> pa.Array:
        column = batch.column("category")
        codes = pc.index_in(column, value_set=pa.array(allowed))
        bad = pc.indices_nonzero(pc.is_null(codes))
        if len(bad):
            value = column[bad[0].as_py()].as_py()
            raise VisMinSourceError(
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
        upstream_id = pc.cast(batch.column("id"), pa.int64())
        columns = {
            "id": pc.binary_join_element_wise(batch.column("category"), pc.cast(upstream_id, pa.string()), "/"),
            "upstream_id": upstream_id,
            "category": pc.cast(codes, pa.int64()),
            "image_0": self._image_bytes(batch.column("image_0"), path, first_row, "image_0"),
            "text_0": batch.column("text_0"),
            "image_1": self._image_bytes(batch.column("image_1"), path, first_row, "image_1"),
            "text_1": batch.column("text_1"),
        }
        columns.update({q: pc.cast(batch.column(q), pa.string()) for q in questions})
        return pa.table(columns).cast(self.info.features.arrow_schema)

    def _train_columns(self, batch, path, first_row) -> dict:
        self._check_captions(batch, path, first_row, ("caption",))
        self._check_categories(batch, path, first_row, ["", *CATEGORIES])
        boxes = batch.column("bounding_boxes")
        if not pa.types.is_string(boxes.type) and not pa.types.is_large_string(boxes.type):
            # Stored as JSON text so that every upstream box layout fits one declared feature.
            boxes = pa.array([None if b is None else json.dumps(b) for b in boxes.to_pylist()], pa.string())
        return {
            "image_id": pc.cast(batch.column("image_id"), pa.string()),
            "image": self._image_bytes(batch.column("image"), path, first_row, "image"),
            "caption": batch.column("caption"),
            "bounding_boxes": boxes,
            "source_image_id": pc.fill_null(pc.cast(batch.column("source_image_id"), pa.string()), ""),
            "category": pc.fill_null(batch.column("category"), ""),
        }

    def _train_table(self, batch, path, first_row) -> pa.Table:
        return pa.table(self._train_columns(batch, path, first_row)).cast(self.info.features.arrow_schema)

    def _pairs_table(self, batch, path, first_row, files, image_index) -> pa.Table | None:
        edited = pc.indices_nonzero(pc.not_equal(pc.fill_null(batch.column("source_image_id"), ""), ""))
        if not len(edited):
            return None
        rows = batch.take(edited)
        row_numbers = [first_row + i for i in edited.to_pylist()]
        codes = self._check_categories(rows, path, row_numbers[0], CATEGORIES)
        self._check_captions(rows, path, row_numbers[0], ("caption",))
        sources = []
        for row, source_id in zip(row_numbers, rows.column("source_image_id").to_pylist()):
            if source_id not in image_index:
                raise VisMinSourceError(path, f"source image {source_id!r} is not in the release", row=row,
                                        column="source_image_id")
            sources.append(image_index[source_id])
        source_rows = self._take_rows(files, sources, ["image", "caption"])
        return pa.table(
            {
                "id": pc.cast(rows.column("image_id"), pa.string()),
                "category": pc.cast(codes, pa.int64()),
                "image_0": source_rows.column("image"),
                "text_0": source_rows.column("caption"),
                "image_1": self._image_bytes(rows.column("image"), path, row_numbers[0], "image"),
                "text_1": rows.column("caption"),
            }
        ).cast(self.info.features.arrow_schema)

    def _take_rows(self, files, locations: list[tuple[int, int]], columns: list[str]) -> pa.Table:
        """Rows by (file index, row) across source files; memory-mapped, so only those rows are read."""
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
            piece = cache[file_index].slice(row, 1)
            image = self._image_bytes(piece.column("image"), Path(files[file_index]), row, "image")
            pieces.append(pa.table({"image": image, "caption": piece.column("caption")}))
        return pa.concat_tables(pieces)
