"""The DataLoader: worker processes read each sample's image bytes from Arrow, decode them with PIL,
and run the model's processor (resize, normalise, tokenise) in the collate function, so the main
process only moves ready tensors to the device.

A sample whose image cannot be decoded is not dropped silently: it comes out of the loader in the
batch's ``bad`` list (sample id, column, reason) and the run reports it.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from diffbench.data.building import load_built
from diffbench.data.image_checks import special_file_kind


class BadImagesError(ValueError):
    """Some samples' images cannot be decoded; the message lists them."""

    @classmethod
    def listing(cls, bad: list, what: str, out) -> BadImagesError:
        """The error for ``bad`` samples (``what``: "sample", "pair"), saying the rest is saved in ``out``."""
        listing = "\n  ".join(str(b) for b in bad)
        return cls(f"{len(bad)} {what}(s) have images that cannot be decoded (the predictions of the others are "
                   f"saved in {out}; fix or drop these and run again to resume):\n  {listing}")


@dataclass
class BadSample:
    """A sample whose image could not be decoded."""

    id: str
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.id}: {self.column}: {self.reason}"


def draft_size(image_processor) -> tuple[int, int] | None:
    """The smallest decoded size the processor's resize needs (for JPEG's reduced-scale decoding)."""
    size = getattr(image_processor, "size", None) or {}
    if not isinstance(size, dict):
        return None
    if size.get("shortest_edge"):
        edge = int(size["shortest_edge"])
        return edge, edge
    if size.get("height") and size.get("width"):
        return int(size["width"]), int(size["height"])
    return None


def decode_image(cell, draft: tuple[int, int] | None = None) -> Image.Image:
    """An RGB PIL image from a ``datasets.Image(decode=False)`` cell (``{"bytes", "path"}``), fully loaded.

    ``draft``: let libjpeg decode at a reduced scale (1/2, 1/4, 1/8) that still covers this size;
    much faster for large JPEGs, with pixels close to (not identical to) a full decode then resize.
    """
    if isinstance(cell, Image.Image):
        return cell.convert("RGB")
    data = cell.get("bytes")
    if data is None:
        with open(cell["path"], "rb") as handle:
            data = handle.read()
    image = Image.open(io.BytesIO(data))
    if draft is not None and image.format == "JPEG":
        image.draft("RGB", draft)
    image.load()
    return image.convert("RGB")


class SampleImages:
    """A map-style torch dataset over rows of a ``datasets.Dataset``: each item holds the row's id,
    position, decoded images (``image_columns``, in order) and texts (``text_columns``)."""

    def __init__(self, dataset, image_columns, text_columns=(), id_column="id", draft=None, extra_columns=()):
        import datasets

        self.image_columns, self.text_columns = list(image_columns), list(text_columns)
        self.id_column, self.extra_columns, self.draft = id_column, list(extra_columns), draft
        columns = [id_column, *self.image_columns, *self.text_columns, *self.extra_columns]
        table = dataset.select_columns(columns)
        for column in self.image_columns:
            table = table.cast_column(column, datasets.Image(decode=False))
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict:
        row = self.table[int(index)]
        item = {"index": int(index), "id": row[self.id_column], "texts": [row[c] for c in self.text_columns],
                **{c: row[c] for c in self.extra_columns}}
        images = []
        for column in self.image_columns:
            try:
                images.append(decode_image(row[column], self.draft))
            except Exception as err:  # noqa: BLE001 - any decoding failure is reported with the sample id
                item["bad"] = BadSample(str(row[self.id_column]), column, f"{type(err).__name__}: {err}")
                return item
        item["images"] = images
        return item


def split_good_bad(items: list[dict]) -> tuple[list[dict], list[BadSample]]:
    good = [item for item in items if "bad" not in item]
    return good, [item["bad"] for item in items if "bad" in item]


def batches_of(indices, batch_size: int) -> list[list[int]]:
    indices = list(indices)
    return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]


def _worker_init(_worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)  # one core a worker; the workers together use them all


def torch_available() -> bool:
    """Whether torch imports (the API path runs without it: ``pip install diffbench[api]``)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None and __import__("torch") is not None
    except ImportError:
        return False


def plain_batches(samples: SampleImages, batches: list[list[int]], collate):
    """Without torch (an API run): each batch decoded and collated in this process, in order.

    >>> list(plain_batches(list("abc"), [[0, 2], [1]], "".join))
    ['ac', 'b']
    """
    for batch in batches:
        yield collate([samples[i] for i in batch])


def make_loader(samples: SampleImages, batches: list[list[int]], collate, num_workers: int, pin_memory: bool):
    """A DataLoader over exactly ``batches`` (lists of row positions), in order; without torch (an API
    run on the ``[api]`` extra alone), :func:`plain_batches`."""
    if not torch_available():
        return plain_batches(samples, batches, collate)
    from torch.utils.data import DataLoader

    num_workers = min(num_workers, len(batches))
    return DataLoader(
        samples,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
        worker_init_fn=_worker_init if num_workers else None,
    )


def slice_inputs(inputs: dict, rows: int, start: int, stop: int) -> dict:
    """Rows ``start:stop`` of a processor output whose tensors have one row per sequence, or a whole
    number of rows (images) per sequence. Anything else cannot be sliced: a ValueError."""
    import torch

    sliced = {}
    for key, value in inputs.items():
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            sliced[key] = value
            continue
        length = value.shape[0]
        if length % rows:
            raise ValueError(f"cannot split {key} ({length} rows) over {rows} sequences")
        per = length // rows
        sliced[key] = value[start * per:stop * per]
    return sliced


def to_device(inputs: dict, device, dtype) -> dict:
    """Tensors to ``device`` (non-blocking from pinned memory); floating tensors cast to ``dtype``."""
    import torch

    moved = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if value.is_floating_point():
                value = value.to(dtype)
        moved[key] = value
    return moved


DATA_FILES_EXPECTED = "--data-files takes parquet files or one save_to_disk folder"


def load_rows(name: str, config: str | None, split: str, data_files=None):
    """The split's rows: the built dataset, or ``data_files`` (parquet files / a ``save_to_disk`` folder);
    ``--limit`` draws from them (:mod:`diffbench.harness.draws`)."""
    if data_files:
        return load_data_files(data_files, split)
    return load_built(name, config, split)


def load_data_files(data_files, split: str):
    """``split`` of a ``save_to_disk`` folder, or parquet files as one dataset; checked first, so what is
    wrong is one line naming the file and what was expected (datasets' own errors name neither)."""
    import datasets

    paths = [Path(p).expanduser() for p in data_files]
    if paths[0].is_dir():
        if len(paths) > 1:
            raise ValueError(f"{paths[1]}: {DATA_FILES_EXPECTED}, not a folder ({paths[0]}) and more besides")
        return _saved_split(paths[0], split)
    for path in paths:
        _check_parquet_file(path)
    return datasets.load_dataset("parquet", data_files=[str(p) for p in paths], split="train")


def _check_parquet_file(path: Path) -> None:
    """A readable parquet file (its footer read: what the loader opens first), else one line naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        kind = special_file_kind(os.stat(path).st_mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file ({DATA_FILES_EXPECTED})") from None
    if kind is not None:  # never opened: a FIFO would block, a device never end
        raise ValueError(f"{path}: not a regular file ({kind}); {DATA_FILES_EXPECTED}")
    try:
        pq.read_metadata(path)
    except PermissionError as err:
        raise PermissionError(f"{path}: cannot be read ({err.strerror or err}); {DATA_FILES_EXPECTED}") from None
    except (pa.ArrowException, OSError) as err:
        reason = (getattr(err, "strerror", None) or str(err)).strip().splitlines()
        raise ValueError(f"{path}: not a parquet file ({reason[0] if reason else type(err).__name__}); "
                         f"{DATA_FILES_EXPECTED}") from None


def _saved_split(folder: Path, split: str):
    """``split`` of the ``save_to_disk`` folder ``folder`` (a ``DatasetDict``'s or a lone ``Dataset``)."""
    import datasets

    if not (folder / "dataset_dict.json").is_file() and not (folder / "state.json").is_file():
        raise ValueError(f"{folder}: not a save_to_disk folder (no dataset_dict.json or state.json); "
                         f"{DATA_FILES_EXPECTED}")
    loaded = datasets.load_from_disk(str(folder))
    if not isinstance(loaded, datasets.DatasetDict):
        return loaded
    if split not in loaded:
        raise ValueError(f"{folder}: no split {split!r} in this save_to_disk folder (it has "
                         f"{', '.join(loaded) or 'none'}); choose one with --split")
    return loaded[split]
