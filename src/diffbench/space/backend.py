"""The demo Space's work, without the UI: data, images, models and scoring (no Gradio here).

:mod:`diffbench.space.app` lays this out in Gradio; everything here is plain Python, so each piece is
tested without a browser. Every problem a visitor can cause (a file that is no image, an image too
large, a CSV that is no submission, a model that needs the network while offline) is a
:class:`UserError` whose message is meant to be shown as it is (and escaped where it is shown: it may
quote the visitor's text).

- :class:`DataStore`: the datasets the Space shows, built from the embedded samples on first use when
  the datasets cache has no build (so the Space starts offline on a fresh machine), reloaded when
  ``diffbench build`` replaces a build while the Space runs.
- :func:`open_image` (decoded in memory: no shared temporary file), :class:`ModelCache`,
  :func:`similarity_matrix`, :func:`verdict`: *Try a model*.
- :func:`score_vismin_run`, :func:`score_caption_run` (results and samples): *Score a submission*, through
  :mod:`diffbench.vismin.scoring` and :mod:`diffbench.captions.scoring`, bounded in size and time; the
  tables and charts of a result come from the reports (:mod:`diffbench.vismin.report`,
  :mod:`diffbench.captions.report`) and their figures' cells.
- The leaderboard is :mod:`diffbench.space.leaderboard`.

    >>> verdict([[0.9, 0.1], [0.2, 0.8]])  # rows: caption 0, caption 1; columns: image 0, image 1
    {'text': True, 'image': True, 'group': True}
    >>> verdict([[0.5, 0.5], [0.2, 0.8]])  # a tie is wrong, as in the official scoring
    {'text': True, 'image': False, 'group': False}
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from diffbench import files
from diffbench.captions import report as caption_report
from diffbench.captions.inputs import max_predictions_bytes, read_predictions
from diffbench.captions.scoring import MissingPredictionsError
from diffbench.captions.tasks import DATASETS as CAPTION_DATASETS
from diffbench.data import building
from diffbench.data.provenance import SYNTHETIC_NOTE, describe, is_synthetic, of_dataset
from diffbench.models.embedded import default_model_path as packaged_model_path
from diffbench.report.layout import RESULTS_FILE, SAMPLES_FILE
from diffbench.space.caption_worker import CaptionWorker, WorkerFailed, WorkerTimeout
from diffbench.text import markdown_text
from diffbench.vismin import scoring
from diffbench.vismin.contrastive import pair_similarities, text_padding
from diffbench.vismin.figure import per_category
from diffbench.vismin.submission import CoverageError, limits_for

# torch and transformers (seconds to import) are imported by the two functions of *Try a model* that
# use them: the other tabs, the leaderboard and their tests never pay for them.

VISMIN = "vismin"
CAPTION_SETS = tuple(CAPTION_DATASETS)  # the harness's difference-captioning tasks, in its order
EXPLORE_SETS = (VISMIN, *CAPTION_SETS)
ALL_LABELS = "all"

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # an upload above this is refused before it is decoded
MAX_IMAGE_PIXELS = 40_000_000  # and so is one that would decode to more pixels than this
MAX_SUBMISSION_BYTES = 50 * 1024 * 1024  # a full VisMin CSV is about 200 KB

DEFAULT_MODEL = "diffbench default (embedded, offline)"
HUB_MODELS = ("openai/clip-vit-base-patch32", "google/siglip-base-patch16-224")
MODEL_CHOICES = (DEFAULT_MODEL, *HUB_MODELS)
DEFAULT_MODEL_ENV = "DIFFBENCH_SPACE_MODEL"  # a local model folder to use as the default model

# How the Space builds a dataset that is not in the datasets cache yet: the embedded sample.
SAMPLE_OPTIONS = {VISMIN: {"n": 160, "image_size": (320, 240)}}
SAMPLE_SEED = 0


class UserError(ValueError):
    """A problem with what the visitor gave; the message is shown in the UI as it is."""


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1024 / 1024:.1f} MB"


def _upload_name(path) -> str:
    """The name a visitor gave an upload: Gradio keeps it as the last part of the path it hands over."""
    return Path(str(path)).name


def _clean(message: str, path) -> str:
    """A library message with the server's temporary path replaced by the file's own name."""
    return str(message).replace(str(path), _upload_name(path))


# -- data -----------------------------------------------------------------------------------------


@dataclass
class ExploreItem:
    image_a: object  # PIL images
    image_b: object
    caption_md: str
    position: int  # 1-based, within the filtered rows
    count: int
    note: str = ""  # why the pair shown is not the one asked for (a number out of range), "" when it is


def clamp_position(position, count: int) -> tuple[int, str]:
    """A pair number within ``1..count``, and what to tell the visitor when it had to be moved there.

    >>> clamp_position(0, 12)
    (1, 'pair numbers run from 1 to 12: showing pair 1')
    >>> clamp_position(5, 12), clamp_position(None, 12)
    ((5, ''), (1, ''))
    """
    if position is None or position == "":
        return 1, ""
    try:
        wanted = int(float(position))
    except (TypeError, ValueError):
        return 1, f"{str(position)[:20]!r} is not a pair number: showing pair 1"
    shown = min(max(wanted, 1), count)
    return shown, "" if shown == wanted else f"pair numbers run from 1 to {count:,}: showing pair {shown:,}"


@dataclass
class DataStore:
    """The built datasets the Space reads, loaded once; a missing build is built from the sample, and a
    build replaced while the Space runs (``diffbench build ... --overwrite``) is noticed and reloaded."""

    names: tuple[str, ...] = EXPLORE_SETS
    built_here: list[str] = field(default_factory=list)  # the names this process had to build
    _cache: dict = field(default_factory=dict)
    _stamps: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def dataset(self, name: str):
        """The DatasetDict of ``name``'s default config, building the embedded sample if need be."""
        if name not in self.names:
            raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(self.names)}")
        with self._lock:
            stamp = building.build_stamp(name)  # a glob and a small read: cheap enough for every request
            if name not in self._cache or (stamp is not None and stamp != self._stamps.get(name)):
                self._cache[name] = self._load_or_build(name)
                self._stamps[name] = building.build_stamp(name)
            return self._cache[name]

    def _load_or_build(self, name: str):
        config = building.default_config(name)
        try:
            return building.load_built(name, config)
        except building.NotBuiltError:
            options = SAMPLE_OPTIONS.get(name, {})
            building.build_configs(name, [config], "sample", seed=SAMPLE_SEED, **options)
            self.built_here.append(name)
            return building.load_built(name, config)

    def warm(self) -> None:
        """Load (or build) every dataset now, so that no visitor waits for it."""
        for name in self.names:
            self.dataset(name)

    def vismin_bench(self):
        return self.dataset(VISMIN)["test"]

    # Explore

    def labels(self, name: str) -> list[str]:
        """What Explore filters by: VisMin's categories, or the change types of a captioning set."""
        found = set()
        for split in self.dataset(name).values():
            found.update(self._row_labels(split))
        return [ALL_LABELS, *sorted(found)]

    @staticmethod
    def _row_labels(split) -> list:
        if "category" in split.column_names:
            feature = split.features["category"]
            values = split.select_columns(["category"])["category"]
            return list(feature.int2str(list(values))) if hasattr(feature, "int2str") else list(values)
        if "change_types" in split.column_names:
            return [t for types in split.select_columns(["change_types"])["change_types"] for t in (types or [])]
        return []

    def splits(self, name: str) -> list[str]:
        """The splits Explore offers, test first."""
        return sorted(self.dataset(name), key=lambda s: (s != "test", s))

    def rows(self, name: str, label: str = ALL_LABELS, split: str = ALL_LABELS) -> list[tuple[str, int]]:
        """``(split, row)`` of every pair carrying ``label`` (every pair for ``"all"``) in ``split`` (every
        split, test first, for ``"all"``)."""
        dataset = self.dataset(name)
        order = self.splits(name)
        if split not in (None, "", ALL_LABELS):
            if split not in dataset:
                raise UserError(f"{name} has no split {str(split)[:40]!r}; it has {', '.join(order)}")
            order = [split]
        found = []
        for split_name in order:
            split = dataset[split_name]
            if label in (None, "", ALL_LABELS):
                found += [(split_name, i) for i in range(len(split))]
            elif "category" in split.column_names:
                labels = self._row_labels(split)
                found += [(split_name, i) for i, value in enumerate(labels) if value == label]
            else:
                types = split.select_columns(["change_types"])["change_types"]
                found += [(split_name, i) for i, value in enumerate(types) if label in (value or [])]
        return found

    def explore_item(self, name: str, label: str = ALL_LABELS, position=1, split: str = ALL_LABELS) -> ExploreItem:
        """Pair number ``position`` (1-based) of ``name``'s pairs with ``label`` in ``split``; a number out of
        range shows the nearest pair and says so (:attr:`ExploreItem.note`)."""
        rows = self.rows(name, label, split)
        if not rows:
            where = "" if split in (None, "", ALL_LABELS) else f" in its {str(split)[:40]} split"
            raise UserError(f"{name} has no pairs labelled {str(label)[:80]!r}{where}")
        position, note = clamp_position(position, len(rows))
        split_name, index = rows[position - 1]
        dataset = self.dataset(name)[split_name]
        row = dataset[index]
        if name == VISMIN:
            category = dataset.features["category"].int2str(row["category"])
            caption = _vismin_pair_md(row, category, split_name) + data_note(dataset)
            return ExploreItem(row["image_0"], row["image_1"], caption, position, len(rows), note=note)
        caption = _caption_pair_md(row, split_name, synthetic=is_synthetic(of_dataset(dataset))) + data_note(dataset)
        return ExploreItem(row["image_before"], row["image_after"], caption, position, len(rows), note=note)


def _vismin_pair_md(row, category: str, split_name: str) -> str:
    """A VisMin pair's id, category and its two captions, each beside the image it describes (by number:
    the images sit side by side on a wide screen and one above the other on a phone)."""
    md = markdown_text
    return (f"**{md(row['id'])}** · category **{md(category)}** · split {md(split_name)}\n\n"
            f"| | caption |\n|---|---|\n| image 0 | {md(row['text_0'])} |\n| image 1 | {md(row['text_1'])} |")


def _caption_pair_md(row, split_name: str, synthetic: bool) -> str:
    """A difference-captioning pair's id, change types (when the set has any), domain (not on a synthetic
    build: its rows copy the real set's "real") and its reference captions."""
    md = markdown_text
    parts = [f"**{md(row['id'])}**"]
    if row.get("change_types"):
        parts.append(f"change types **{', '.join(md(t) for t in row['change_types'])}**")
    if row.get("domain") and not synthetic:
        parts.append(md(row["domain"]))
    parts.append(f"split {md(split_name)}")
    lines = "\n".join(f"{n}. {md(c)}" for n, c in enumerate(row["captions"], 1))
    return f"{' · '.join(parts)}\n\nWhat changed from before to after:\n\n{lines}"


def data_note(dataset) -> str:
    """A Markdown line under what the Space shows of a build of the synthetic sample ("" otherwise)."""
    record = of_dataset(dataset)
    return f"\n\n*Data: {markdown_text(describe(record))}.*" if is_synthetic(record) else ""


def chart_caption(results: dict) -> str | None:
    """The line under a chart: the synthetic-sample note when the results come from that sample (under the
    chart, where it wraps, not in its title: a title wider than a phone squeezed the bars), else None."""
    return SYNTHETIC_NOTE if is_synthetic(results.get("provenance") or {}) else None


def synthetic_note(results: dict) -> str:
    """The synthetic-sample note, in bold on a line of its own, when the results come from that sample."""
    return f"\n\n**{SYNTHETIC_NOTE}**" if is_synthetic(results.get("provenance") or {}) else ""


# -- Try a model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """An uploaded file held in memory: its bytes and the name the visitor gave it."""

    name: str
    data: bytes


def read_upload(source, max_bytes: int = MAX_IMAGE_BYTES) -> Upload:
    """The bytes of an upload (a path or an :class:`Upload`), refused before reading when too large.

    Reading the whole file once, then decoding from memory, means no later step reopens a file that
    another request may be writing (Gradio caches uploads and pasted images under content-hash names,
    so identical uploads share one path).
    """
    if source is None:
        raise UserError("please upload both images (or load a sample pair)")
    if isinstance(source, Upload):
        upload = source
    else:
        path = Path(str(source))
        name = _upload_name(path)
        size = os.path.getsize(path)
        if size > max_bytes:
            raise UserError(f"{name} is {_mb(size)}; images up to {_mb(max_bytes)} are accepted here")
        with open(path, "rb") as handle:
            upload = Upload(name, handle.read(max_bytes + 1))
    if len(upload.data) > max_bytes:
        raise UserError(f"{upload.name} is {_mb(len(upload.data))}; images up to {_mb(max_bytes)} are accepted here")
    return upload


def open_image(source):
    """An uploaded image (a path or an :class:`Upload`) decoded in memory as RGB, or a
    :class:`UserError` saying why not (too large, not an image, cut short)."""
    upload = read_upload(source)
    name = upload.name
    try:
        with Image.open(io.BytesIO(upload.data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise UserError(
                    f"{name} is {image.width}×{image.height} pixels; images up to "
                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels are accepted here"
                )
            image.load()  # decode every byte now: a truncated file is refused here, not half-shown
            return image.convert("RGB")
    except UserError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        detail = "not an image file" if isinstance(err, UnidentifiedImageError) else "the image cannot be decoded"
        raise UserError(f"{name}: {detail}; upload a PNG, JPEG or WebP image") from None


def default_model_path() -> str | None:
    """The embedded default model: ``$DIFFBENCH_SPACE_MODEL``, else ``diffbench.models.embedded``'s."""
    override = os.environ.get(DEFAULT_MODEL_ENV)
    if override:
        return override
    try:
        path = packaged_model_path()
    except (FileNotFoundError, OSError, ValueError):
        return None
    return str(path) if path and Path(path).exists() else None


HUB_PROBE_TIMEOUT_S = 3.0  # how long a Hub model choice waits to learn the Hub is unreachable
HUB_PROBE_MEMORY_S = 60.0  # an unreachable Hub is remembered this long: later picks answer at once
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


class HubProbe:
    """Whether the Hub answers a TCP connection within a few seconds (remembered for a minute when not).

    ``from_pretrained`` retries an unreachable Hub for tens of seconds before it gives up; a visitor
    who picked a Hub model should learn in seconds that it cannot be downloaded now. Behind a proxy
    the probe says nothing (the proxy, not the Hub, would answer) and loading goes ahead.
    """

    def __init__(self):
        self._failed_at: float | None = None
        self._lock = threading.Lock()

    @staticmethod
    def endpoint() -> str:
        # Imported here, not with this module: huggingface_hub reads HF_HOME and HF_HUB_OFFLINE once, when
        # imported, and a process that imports diffbench before setting them (bench/bench_space_load.py)
        # must still get them.
        from huggingface_hub import constants

        return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT

    def reachable(self) -> bool:
        if any(os.environ.get(v) for v in _PROXY_VARS):
            return True
        with self._lock:
            if self._failed_at is not None and time.monotonic() - self._failed_at < HUB_PROBE_MEMORY_S:
                return False
            url = urlsplit(self.endpoint())
            port = url.port or (443 if url.scheme == "https" else 80)
            try:
                socket.create_connection((url.hostname, port), timeout=HUB_PROBE_TIMEOUT_S).close()
            except OSError:
                self._failed_at = time.monotonic()
                return False
            self._failed_at = None
            return True


class ModelCache:
    """The allowlisted models, each loaded once (CPU, float32), shared by every visitor.

    A Hub model is read from the local Hub cache when it is there (no network); otherwise, offline or
    with the Hub unreachable (:class:`HubProbe`), the visitor gets a message at once.
    """

    def __init__(self, probe: HubProbe | None = None):
        self._models: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self.probe = probe or HubProbe()

    def get(self, choice: str):
        if choice not in MODEL_CHOICES:
            raise UserError(f"{str(choice)[:80]!r} is not offered here; choose one of: {', '.join(MODEL_CHOICES)}")
        with self._lock:
            if choice not in self._models:
                self._models[choice] = self._load(choice)
            return self._models[choice]

    def _load(self, choice: str):
        if choice == DEFAULT_MODEL:
            source = default_model_path()
            if source is None:
                raise UserError(
                    "the embedded default model is not installed with this copy of diffbench; "
                    f"pick a Hub model, or point ${DEFAULT_MODEL_ENV} at a local CLIP-style model folder"
                )
            model, processor = self._from_pretrained(choice, source)
        else:
            try:  # already downloaded: no network needed
                model, processor = self._from_pretrained(choice, choice, local_files_only=True)
            except UserError:
                if hub_offline():
                    raise UserError(f"{choice} needs the network to download its weights, and this Space runs "
                                    f"offline; the default model ({DEFAULT_MODEL}) works offline") from None
                if not self.probe.reachable():
                    raise UserError(f"{choice} needs the network to download its weights, and the Hub "
                                    f"({self.probe.endpoint()}) cannot be reached right now; the default model "
                                    f"({DEFAULT_MODEL}) works offline") from None
                model, processor = self._from_pretrained(choice, choice)
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise UserError(f"{choice} is not a CLIP-style (dual-encoder) model")
        return model, processor

    @staticmethod
    def _from_pretrained(choice: str, source: str, **kwargs):
        from transformers import AutoModel, AutoProcessor  # see the imports above

        try:
            model = AutoModel.from_pretrained(source, **kwargs).eval()
            processor = AutoProcessor.from_pretrained(source, **kwargs)
        except Exception as err:  # noqa: BLE001 -- whatever the Hub or the disk says, the visitor gets one line
            detail = " ".join(str(err).split())[:200]
            raise UserError(f"{choice} could not be loaded: {type(err).__name__}: {detail}") from None
        return model, processor


def similarity_matrix(model, processor, images, texts) -> np.ndarray:
    """``[2, 2]`` cosine similarities: row t = caption t, column i = image i (``Tt_Ii``)."""
    import torch  # see the imports above

    if len(images) != 2 or len(texts) != 2:
        raise ValueError("two images and two captions")
    image_inputs = dict(processor.image_processor(images=list(images), return_tensors="pt"))
    text_inputs = dict(processor.tokenizer(list(texts), return_tensors="pt", **text_padding(model, processor)))
    with torch.inference_mode():
        scores = pair_similarities(model, image_inputs, text_inputs)  # [1, (T0_I0, T0_I1, T1_I0, T1_I1)]
    return scores.reshape(2, 2).float().numpy()


def verdict(similarities) -> dict[str, bool]:
    """Text, image and group correctness of one sample by the official rules (strict ``>``)."""
    s = np.asarray(similarities, dtype=np.float64).reshape(2, 2)
    text, image = scoring.metric_module().scores_correct(*(s[t, i : i + 1] for t in (0, 1) for i in (0, 1)))
    text, image = bool(text[0]), bool(image[0])
    return {"text": text, "image": image, "group": text and image}


def verdict_markdown(result: dict[str, bool]) -> str:
    """``Text: right ✓ · Image: wrong ✗ · Group: wrong ✗`` (marks every system font has, no emoji)."""
    marks = {True: "right ✓", False: "wrong ✗"}
    return " · ".join(f"**{key.capitalize()}: {marks[result[key]]}**" for key in ("text", "image", "group"))


def check_captions(texts) -> list[str]:
    texts = [(t or "").strip() for t in texts]
    if not all(texts):
        raise UserError("please type both captions")
    if texts[0] == texts[1]:
        raise UserError("the two captions are the same; a VisMin pair differs in one detail")
    return texts


# -- Score a submission ---------------------------------------------------------------------------


def _check_upload(path, kinds: tuple[str, ...], max_bytes: int = MAX_SUBMISSION_BYTES) -> str:
    """The upload's name, once it is known to be there, not empty, not too large and not binary."""
    if path is None:
        raise UserError("please upload a file first")
    name = _upload_name(path)
    size = os.path.getsize(path)
    if size > max_bytes:
        raise UserError(f"{name} is {_mb(size)}; submissions up to {_mb(max_bytes)} are accepted here")
    if size == 0:
        raise UserError(f"{name} is empty")
    with open(path, "rb") as f:
        head = f.read(4096)
    if b"\x00" in head:
        raise UserError(f"{name} is a binary file, not a {' or '.join(kinds)} file")
    return name


def content_hash(path, *context) -> str:
    """``sha256:`` of a submission's bytes and what it was scored with (dataset build, options): the
    leaderboard counts one submission once, however often it is uploaded."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps(context, sort_keys=True, default=str).encode())
    return "sha256:" + digest.hexdigest()


def score_vismin_run(path, dataset, allow_missing: bool = False) -> scoring.Scored:
    """An official VisMin submission CSV scored (see :mod:`diffbench.vismin.submission`): its results (with
    the ``content_hash``) and samples.jsonl's records; the CSV is refused before it is read when it is far
    larger than the benchmark."""
    max_bytes, _ = limits_for(len(dataset))
    name = _check_upload(path, ("CSV",), max_bytes=min(max_bytes, MAX_SUBMISSION_BYTES))
    try:
        scored = scoring.score(path, dataset=dataset, allow_missing=allow_missing)
    except CoverageError as err:
        message = _clean(str(err), path)
        if err.only_missing:
            message += "; tick “Score even if some samples are missing” to score the others"
        raise UserError(message) from None
    except (ValueError, FileNotFoundError) as err:
        raise UserError(_clean(str(err), path)) from None
    results = scored.results
    results["submission"] = name
    results["content_hash"] = content_hash(path, "vismin", results["provenance"].get("build_id"),
                                           sorted(results["missing_ids"]))
    return scored


#: Caption scoring on a shared CPU: bounds per request (the library's own bounds are for a whole
#: dataset on one's own machine). A real difference caption is a few hundred characters.
MAX_CAPTION_CHARS = 2000
CAPTION_BYTES_PER_SAMPLE = 4 * 1024
CAPTION_BYTES_SLACK = 256 * 1024
CAPTION_TIMEOUT_S = float(os.environ.get("DIFFBENCH_SPACE_CAPTION_TIMEOUT", "120"))
_CAPTION_WORKER = None  # the scoring process (diffbench.space.caption_worker), created on first use
_CAPTION_WORKER_LOCK = threading.Lock()


def caption_upload_limit(n_samples: int) -> int:
    """The largest caption JSON accepted for a split of ``n_samples`` pairs.

    >>> caption_upload_limit(1270)  # Spot-the-Diff's test split: about 5.2 MB
    5464064
    """
    return CAPTION_BYTES_SLACK + CAPTION_BYTES_PER_SAMPLE * n_samples


def read_caption_predictions(path, max_bytes: int = MAX_SUBMISSION_BYTES) -> dict[str, str]:
    """``{id: caption}`` from ``{"id": "caption"}`` or ``[{"id", "caption"}]`` JSON, each caption at most
    :data:`MAX_CAPTION_CHARS` characters (:func:`diffbench.captions.inputs.read_predictions`)."""
    name = _check_upload(path, ("JSON",), max_bytes=max_bytes)
    try:
        predictions = read_predictions(Path(path), max_bytes=max_bytes)
    except (ValueError, FileNotFoundError) as err:
        raise UserError(_clean(str(err), path)) from None
    for key, caption in predictions.items():
        if len(caption) > MAX_CAPTION_CHARS:
            raise UserError(f"{name}: the caption of id {key[:80]!r} has {len(caption):,} characters; "
                            f"captions up to {MAX_CAPTION_CHARS:,} characters are scored here")
    return predictions


def caption_worker():
    """The Space's one :class:`diffbench.space.caption_worker.CaptionWorker` (started on first use)."""
    global _CAPTION_WORKER
    with _CAPTION_WORKER_LOCK:
        if _CAPTION_WORKER is None:
            _CAPTION_WORKER = CaptionWorker()
        return _CAPTION_WORKER


def score_caption_run(path, dataset_name: str, store: DataStore, split: str = "test",
                      timeout_s: float | None = None):
    """COCO caption metrics of a difference-caption JSON on a built captioning set, per change type: a
    :class:`diffbench.captions.scoring.Scored` (results with the ``content_hash``, samples.jsonl's records).

    Every pair of the split needs a caption. The library can score the others
    (``score_predictions(allow_missing=True)``, ``diffbench score captions --allow-missing``), but this
    tab does not offer it: CIDEr weighs words by how rare they are in the scored set, so a partial
    file's numbers are not the full split's, and the leaderboard would list them beside full runs.

    Bounded per request: the file by the split's size (:func:`caption_upload_limit`), each caption by
    :data:`MAX_CAPTION_CHARS`, and the time by ``timeout_s`` (default :data:`CAPTION_TIMEOUT_S`): the
    scoring runs in the worker process (:mod:`diffbench.space.caption_worker`), which is killed, JVMs
    and all, when it has not answered in time, so no scoring outlives its bound. One scoring runs at a
    time; the others wait their turn within their own bound.
    """
    if dataset_name not in CAPTION_SETS:
        raise UserError(f"choose a difference-captioning set: {', '.join(CAPTION_SETS)}")
    dataset = store.dataset(dataset_name)
    if split not in dataset:
        raise UserError(f"{dataset_name} has no split {str(split)[:40]!r}; it has {', '.join(dataset)}")
    rows = dataset[split]
    # The Space's bound is tighter than the library's (max_predictions_bytes: captions of 5,000 characters).
    max_bytes = min(caption_upload_limit(len(rows)), max_predictions_bytes(len(rows)))
    predictions = read_caption_predictions(path, max_bytes=max_bytes)
    name = _upload_name(path)
    timeout_s = CAPTION_TIMEOUT_S if timeout_s is None else timeout_s
    try:
        scored = caption_worker().score(predictions, rows, timeout_s)
    except WorkerTimeout as err:
        if err.busy:
            raise UserError(f"{name}: the scorer stayed busy with other files for {timeout_s:g} s; "
                            "please try again in a minute") from None
        raise UserError(f"{name}: scoring took longer than {timeout_s:g} s here (stopped); score it with "
                        "`diffbench score captions` on your own machine") from None
    except WorkerFailed as err:
        raise RuntimeError(f"caption scoring failed: {err}") from None  # ours: logged, one line shown
    except MissingPredictionsError as err:
        message = _clean(" ".join(str(err).split()), path)
        raise UserError(f"{name}: {message} (this tab scores files with a caption for every pair)") from None
    except ValueError as err:
        raise UserError(f"{name}: {_clean(' '.join(str(err).split()), path)}") from None
    results = scored.results
    results.update(benchmark=dataset_name, split=split, submission=name)  # layout v1: the front end's keys last
    # The last False stood for an allow-missing option this function had and no caller passed: kept, so
    # that a file on the leaderboard keeps its hash and still counts once when uploaded again.
    results["content_hash"] = content_hash(path, dataset_name, split, results["provenance"].get("build_id"), False)
    return scored


class ResultFiles:
    """The Space's downloadable ``results.json`` files: one fresh folder a run under one temporary root,
    removed when the process exits (normally, on Ctrl-C, or on SIGTERM via :func:`diffbench.space.app.launch`)."""

    def __init__(self, parent=None):
        self.root = Path(tempfile.mkdtemp(prefix="diffbench-space-results-", dir=parent))
        self.runs: list[Path] = []  # the folders holding samples.jsonl, oldest first
        self._lock = threading.Lock()
        atexit.register(self.remove)

    def write(self, results: dict, samples: list[dict] | None = None) -> Path:
        """``results.json`` (and ``samples.jsonl`` when given) in a fresh folder, written as
        :mod:`diffbench.vismin.report` and :mod:`diffbench.captions.report` write theirs; the path of
        results.json. The folder is remembered (:attr:`runs`): the Inspect tab opens the runs scored here."""
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=self.root))
        path = folder / RESULTS_FILE
        if samples is not None:
            files.write_atomically(folder / SAMPLES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in samples))
        files.write_atomically(path, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        if samples is not None:
            with self._lock:
                self.runs.append(folder)
        return path

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def vismin_chart_frame(results: dict) -> pd.DataFrame:
    """The bar chart's rows: the cells of the report's figure (:func:`diffbench.vismin.figure.per_category`,
    the paper's order), as bar (``"object T"``, ...), score (text/image/group), value."""
    rows = [{"bar": f"{category} {score[0].upper()}", "score": score, "value": round(float(value), 2)}
            for category, cells in per_category(results).items() for score, value in cells.items()]
    return pd.DataFrame(rows, columns=["bar", "score", "value"])


def caption_value(value) -> str:
    """A caption metric as the Space shows it: results.json's percent scale (pycocoevalcap x 100, as papers
    print them), two decimals.

    >>> caption_value(28.1234), caption_value(100)
    ('28.12', '100.00')
    """
    return f"{float(value):.2f}"


def caption_table(results: dict) -> str:
    """The caption tab's Markdown table: :func:`diffbench.captions.report.format_table` (values ± half their
    95% interval)."""
    return caption_report.format_table(results)


def caption_chart_frame(results: dict, metric: str = "CIDEr") -> pd.DataFrame:
    """One bar a subset of one caption metric, two decimals, with its 95% interval (``low``, ``high``): the
    subsets of the report's table and figure (:func:`diffbench.captions.report.figure_groups`: the total,
    then each change type or official part), those without a value for ``metric`` left out."""
    rows = []
    for subset, values in caption_report.figure_groups(results).items():
        if metric in values["scores"]:
            low, high = (values.get("ci95") or {}).get(metric) or (None, None)
            rows.append({"subset": subset, "value": round(values["scores"][metric], 2),
                         "low": None if low is None else round(low, 2), "high": None if high is None else round(high, 2)})
    return pd.DataFrame(rows, columns=["subset", "value", "low", "high"])
