"""The demo Space's work, without the UI: data, models, scoring and the leaderboard.

:mod:`diffbench.space_app` lays this out in Gradio; everything here is plain Python, so each piece is
tested without a browser. Every problem a visitor can cause (a file that is no image, an image too
large, a CSV that is no submission, a model that needs the network while offline) is a
:class:`UserError` whose message is meant to be shown as it is.

- :class:`DataStore`: the datasets the Space shows, built from the embedded samples on first use when
  the datasets cache has no build (so the Space starts offline on a fresh machine).
- :func:`open_image`, :class:`ModelCache`, :func:`similarity_matrix`, :func:`verdict`: *Try a model*.
- :func:`score_vismin_csv`, :func:`score_caption_json`: *Score a submission*, through
  :mod:`diffbench.vismin_submission` and :mod:`diffbench.caption_scoring`.
- :class:`Leaderboard`: the published VisMin rows and the runs scored since the Space started.

    >>> verdict([[0.9, 0.1], [0.2, 0.8]])  # rows: caption 0, caption 1; columns: image 0, image 1
    {'text': True, 'image': True, 'group': True}
    >>> verdict([[0.5, 0.5], [0.2, 0.8]])  # a tie is wrong, as in the official scoring
    {'text': True, 'image': False, 'group': False}
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

VISMIN = "vismin"
CAPTION_SETS = ("omnidiff", "spot_the_diff", "clevr_change", "clevr_dc", "image_editing_request")
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


_METRIC_IMPORT = threading.Lock()


def vismin_metric():
    """The ``vismin_group_score`` module, imported once under a lock.

    ``hub_folders.load_module`` puts a module in ``sys.modules`` before running it, so a second thread
    importing at the same moment could get it half-initialised; every Space thread goes through here.
    """
    from diffbench.hub_folders import load_module

    with _METRIC_IMPORT:
        return load_module("metrics", "vismin_group_score")


class UserError(ValueError):
    """A problem with what the visitor gave; the message is shown in the UI as it is."""


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1024 / 1024:.1f} MB"


def _clean(message: str, path, display_name: str | None) -> str:
    """A library message with the server's temporary path replaced by the file's own name."""
    name = display_name or Path(str(path)).name
    return str(message).replace(str(path), name)


# -- data -----------------------------------------------------------------------------------------


@dataclass
class ExploreItem:
    image_a: object  # PIL images
    image_b: object
    caption_md: str
    position: int  # 1-based, within the filtered rows
    count: int


@dataclass
class DataStore:
    """The built datasets the Space reads, loaded once; a missing build is built from the sample."""

    names: tuple[str, ...] = EXPLORE_SETS
    built_here: list[str] = field(default_factory=list)  # the names this process had to build
    _cache: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def dataset(self, name: str):
        """The DatasetDict of ``name``'s default config, building the embedded sample if need be."""
        if name not in self.names:
            raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(self.names)}")
        with self._lock:
            if name not in self._cache:
                self._cache[name] = self._load_or_build(name)
            return self._cache[name]

    def _load_or_build(self, name: str):
        from diffbench import building

        config = building.default_config(name)
        try:
            return building.load_built(name, config)
        except building.NotBuiltError:
            from diffbench.commands.build import build_configs

            options = SAMPLE_OPTIONS.get(name, {})
            build_configs(name, [config], "sample", seed=SAMPLE_SEED, **options)
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

    def rows(self, name: str, label: str = ALL_LABELS) -> list[tuple[str, int]]:
        """``(split, row)`` of every pair carrying ``label`` (every pair for ``"all"``), test split first."""
        dataset = self.dataset(name)
        order = sorted(dataset, key=lambda s: (s != "test", s))
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

    def explore_item(self, name: str, label: str = ALL_LABELS, position: int = 1) -> ExploreItem:
        rows = self.rows(name, label)
        if not rows:
            raise UserError(f"{name} has no pairs labelled {label!r}")
        position = min(max(int(position or 1), 1), len(rows))
        split_name, index = rows[position - 1]
        row = self.dataset(name)[split_name][index]
        if name == VISMIN:
            category = self.dataset(name)[split_name].features["category"].int2str(row["category"])
            caption = (
                f"**{row['id']}** · category **{category}** · split {split_name}\n\n"
                f"| | caption |\n|---|---|\n| image 0 (left) | {row['text_0']} |\n| image 1 (right) | {row['text_1']} |"
            )
            return ExploreItem(row["image_0"], row["image_1"], caption, position, len(rows))
        types = ", ".join(row.get("change_types") or []) or "none"
        extra = f" · {row['domain']}" if row.get("domain") else ""
        lines = "\n".join(f"{n}. {c}" for n, c in enumerate(row["captions"], 1))
        caption = (
            f"**{row['id']}** · change types **{types}**{extra} · split {split_name}\n\n"
            f"Left: before, right: after. What changed:\n\n{lines}"
        )
        return ExploreItem(row["image_before"], row["image_after"], caption, position, len(rows))


# -- Try a model ----------------------------------------------------------------------------------


def open_image(path, display_name: str | None = None):
    """An uploaded image as RGB, or a :class:`UserError` saying why not (too large, not an image)."""
    from PIL import Image, UnidentifiedImageError

    if path is None:
        raise UserError("please upload both images (or load a sample pair)")
    name = display_name or Path(str(path)).name
    size = os.path.getsize(path)
    if size > MAX_IMAGE_BYTES:
        raise UserError(f"{name} is {_mb(size)}; images up to {_mb(MAX_IMAGE_BYTES)} are accepted here")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise UserError(
                    f"{name} is {image.width}×{image.height} pixels; images up to "
                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels are accepted here"
                )
            return image.convert("RGB")
    except UserError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        detail = "not an image file" if isinstance(err, UnidentifiedImageError) else "the image cannot be decoded"
        raise UserError(f"{name}: {detail}; upload a PNG, JPEG or WebP image") from None


def default_model_path() -> str | None:
    """The embedded default model: ``$DIFFBENCH_SPACE_MODEL``, else ``diffbench.default_model``'s."""
    override = os.environ.get(DEFAULT_MODEL_ENV)
    if override:
        return override
    try:
        from diffbench.default_model import default_model_path as packaged
    except ImportError:
        return None
    try:
        path = packaged()
    except (FileNotFoundError, OSError, ValueError):
        return None
    return str(path) if path and Path(path).exists() else None


class ModelCache:
    """The allowlisted models, each loaded once (CPU, float32), shared by every visitor."""

    def __init__(self):
        self._models: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def get(self, choice: str):
        if choice not in MODEL_CHOICES:
            raise UserError(f"{choice!r} is not offered here; choose one of: {', '.join(MODEL_CHOICES)}")
        with self._lock:
            if choice not in self._models:
                self._models[choice] = self._load(choice)
            return self._models[choice]

    @staticmethod
    def _load(choice: str):
        from transformers import AutoModel, AutoProcessor

        if choice == DEFAULT_MODEL:
            source = default_model_path()
            if source is None:
                raise UserError(
                    "the embedded default model is not installed with this copy of diffbench; "
                    f"pick a Hub model, or point ${DEFAULT_MODEL_ENV} at a local CLIP-style model folder"
                )
        else:
            source = choice
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        try:
            model = AutoModel.from_pretrained(source).eval()
            processor = AutoProcessor.from_pretrained(source)
        except Exception as err:  # noqa: BLE001 -- whatever the Hub or the disk says, the visitor gets one line
            if choice in HUB_MODELS:
                reason = "this Space runs offline (HF_HUB_OFFLINE=1)" if offline else f"it could not be downloaded ({type(err).__name__})"
                raise UserError(
                    f"{choice} needs the network to download its weights, and {reason}; "
                    f"the default model ({DEFAULT_MODEL}) works offline"
                ) from None
            raise UserError(f"the model could not be loaded: {type(err).__name__}: {str(err).splitlines()[0][:200]}") from None
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise UserError(f"{choice} is not a CLIP-style (dual-encoder) model")
        return model, processor


def similarity_matrix(model, processor, images, texts) -> np.ndarray:
    """``[2, 2]`` cosine similarities: row t = caption t, column i = image i (``Tt_Ii``)."""
    import torch

    from diffbench.harness.contrastive import pair_similarities, text_padding

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
    metric = vismin_metric()
    text, image = metric.scores_correct(*(s[t, i : i + 1] for t in (0, 1) for i in (0, 1)))
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


def _check_upload(path, display_name: str | None, kinds: tuple[str, ...]) -> str:
    if path is None:
        raise UserError("please upload a file first")
    name = display_name or Path(str(path)).name
    size = os.path.getsize(path)
    if size > MAX_SUBMISSION_BYTES:
        raise UserError(f"{name} is {_mb(size)}; submissions up to {_mb(MAX_SUBMISSION_BYTES)} are accepted")
    if size == 0:
        raise UserError(f"{name} is empty")
    with open(path, "rb") as f:
        head = f.read(4096)
    if b"\x00" in head:
        raise UserError(f"{name} is a binary file, not a {' or '.join(kinds)} file")
    return name


def score_vismin_csv(path, dataset, display_name: str | None = None, allow_missing: bool = False) -> dict:
    """Results of an official VisMin submission CSV (see :mod:`diffbench.vismin_submission`)."""
    from diffbench import vismin_submission

    name = _check_upload(path, display_name, ("CSV",))
    vismin_metric()  # fully imported before vismin_submission loads it
    try:
        results = vismin_submission.score_submission(path, dataset=dataset, allow_missing=allow_missing)
    except (ValueError, FileNotFoundError) as err:
        raise UserError(_clean(str(err), path, name)) from None
    results["submission"] = name
    return results


def read_caption_predictions(path, display_name: str | None = None) -> dict[str, str]:
    """``{id: caption}`` from ``{"id": "caption"}`` or ``[{"id", "caption"}]`` JSON."""
    from diffbench.commands.score_captions import read_predictions

    name = _check_upload(path, display_name, ("JSON",))
    try:
        predictions = read_predictions(Path(path))
    except UnicodeDecodeError:
        raise UserError(f"{name} is not UTF-8 text") from None
    except ValueError as err:
        raise UserError(_clean(str(err), path, name)) from None
    bad = [k for k, v in predictions.items() if not isinstance(v, str)]
    if bad:
        raise UserError(f"{name}: the caption of id {bad[0]!r} is not a string")
    return predictions


def score_caption_json(path, dataset_name: str, store: DataStore, split: str = "test",
                       display_name: str | None = None) -> dict:
    """COCO caption metrics of a difference-caption JSON on a built captioning set, per change type."""
    from diffbench.caption_scoring import score_predictions

    if dataset_name not in CAPTION_SETS:
        raise UserError(f"choose a difference-captioning set: {', '.join(CAPTION_SETS)}")
    predictions = read_caption_predictions(path, display_name)
    dataset = store.dataset(dataset_name)
    if split not in dataset:
        raise UserError(f"{dataset_name} has no split {split!r}; it has {', '.join(dataset)}")
    name = display_name or Path(str(path)).name
    try:
        results = score_predictions(predictions, dataset[split])
    except ValueError as err:
        raise UserError(f"{name}: {err}") from None
    return {"dataset": dataset_name, "split": split, "submission": name, **results}


def write_results_json(results: dict, directory) -> Path:
    """``results.json`` in a fresh folder under ``directory`` (one a run, so downloads never clash)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="run-", dir=directory))
    path = folder / "results.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return path


def vismin_chart_frame(results: dict) -> pd.DataFrame:
    """The bar chart's rows, in the paper's order: bar (``"object T"``, ...), score (text/image/group), value."""
    from diffbench.vismin_submission import CATEGORIES

    per = results["scores"].get("per_category", {})
    rows = [
        {"bar": f"{c} {k[0].upper()}", "score": k, "value": float(per[c][f"{k}_score"])}
        for c in CATEGORIES if c in per for k in ("text", "image", "group")
    ]
    return pd.DataFrame(rows, columns=["bar", "score", "value"])


def caption_chart_frame(results: dict, metric: str = "CIDEr") -> pd.DataFrame:
    """One bar a subset (all, then each change type) of one caption metric."""
    rows = [{"subset": "all", "value": float(results.get(metric, 0.0))}]
    rows += [{"subset": g, "value": float(s.get(metric, 0.0))} for g, s in results.get("groups", {}).items()]
    return pd.DataFrame(rows, columns=["subset", "value"])


# -- Leaderboard ----------------------------------------------------------------------------------

LEADERBOARD_SORTS = ("AVG", "Group (all samples)", "Model")


class Leaderboard:
    """The published VisMin rows and the runs scored since the Space started (thread-safe)."""

    def __init__(self):
        from diffbench.vismin_submission import CATEGORIES, published_results

        self.categories = CATEGORIES
        published = published_results()
        self._published = pd.DataFrame({
            "Model": published["model"],
            "Source": "published (" + published["table"] + ")",
            **{f"{c.capitalize()} {k[0].upper()}": published[f"{c}_{k}"] for c in CATEGORIES
               for k in ("text", "image", "group")},
            "AVG": published["avg_as_published"],
            "Group (all samples)": np.nan,
            "Samples": np.nan,
        })
        self._runs: list[dict] = []
        self._caption_runs: list[dict] = []
        self._lock = threading.Lock()

    def add_vismin(self, results: dict, model: str | None = None) -> None:
        scores = results["scores"]
        per = scores.get("per_category", {})
        row = {
            "Model": model or re.sub(r"\.csv$", "", str(results.get("submission", "submission"))),
            "Source": f"scored here {time.strftime('%H:%M:%S')}",
            **{f"{c.capitalize()} {k[0].upper()}": per.get(c, {}).get(f"{k}_score", np.nan)
               for c in self.categories for k in ("text", "image", "group")},
            "AVG": scores.get("avg_as_published", np.nan),
            "Group (all samples)": scores.get("group_score", np.nan),
            "Samples": scores.get("num_samples", np.nan),
        }
        with self._lock:
            self._runs.append(row)

    def add_captions(self, results: dict) -> None:
        row = {"Submission": results.get("submission"), "Dataset": results.get("dataset"),
               "Split": results.get("split"), "Samples": results.get("num_samples"),
               **{k: results.get(k) for k in ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr")},
               "Scored": time.strftime("%H:%M:%S")}
        with self._lock:
            self._caption_runs.append(row)

    def vismin_table(self, sort_by: str = "AVG") -> pd.DataFrame:
        with self._lock:
            runs = pd.DataFrame(self._runs, columns=self._published.columns)
        table = pd.concat([self._published, runs], ignore_index=True) if len(runs) else self._published.copy()
        if sort_by not in LEADERBOARD_SORTS:
            sort_by = "AVG"
        ascending = sort_by == "Model"
        table = table.sort_values(sort_by, ascending=ascending, na_position="last", kind="stable")
        return table.reset_index(drop=True).round(2)

    def caption_table(self) -> pd.DataFrame:
        columns = ["Submission", "Dataset", "Split", "Samples", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Scored"]
        with self._lock:
            table = pd.DataFrame(self._caption_runs, columns=columns)
        return table.round(4)
