"""The embedded default model: a tiny CLIP trained from scratch on synthetic VisMin pairs.

It ships inside the package (``diffbench/models/default/``: safetensors weights, config, word-level
tokenizer, image processor and a model card, under 10 MB), so ``make demo``, ``diffbench eval`` and the
Space have a model that scores above chance with no download. It knows the synthetic scenes'
vocabulary (shapes, colours, sizes, textures, counts, left/right/above/below) and nothing else: it is a
working example and a smoke test, not a model for real photographs. The model card
(``README.md`` in that folder) records how it was trained (``bench/train_default_model.py``) and its scores.

    >>> from transformers import AutoModel, AutoProcessor
    >>> model = AutoModel.from_pretrained(default_model_path())
    >>> type(model).__name__
    'CLIPModel'
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_NAME = "diffbench-tiny-clip"


def default_model_path() -> Path:
    """The folder of the embedded default model; loads with ``AutoModel`` / ``AutoProcessor.from_pretrained``."""
    path = Path(__file__).resolve().parent / "default"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the embedded default model is missing from {path} (a broken install?)")
    return path


def display_name(model: str) -> str:
    """How a model is named in tables: the embedded default by its name, anything else as given.

    >>> display_name(str(default_model_path()))
    'diffbench-tiny-clip'
    >>> display_name("openai/clip-vit-base-patch32")
    'openai/clip-vit-base-patch32'
    """
    try:
        if Path(model).resolve() == default_model_path():
            return DEFAULT_MODEL_NAME
    except (OSError, FileNotFoundError):
        pass
    return model
