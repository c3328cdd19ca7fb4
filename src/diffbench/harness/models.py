"""Which kind of model a checkpoint is, and loading it.

- **contrastive**: the class ``AutoModel`` gives has ``get_image_features`` and ``get_text_features``
  (CLIP, SigLIP, SigLIP 2, ALIGN, BLIP's retrieval model, ...): scored by cosine similarity.
- **image-text-to-text**: the config is in transformers' ``AutoModelForImageTextToText`` mapping (LLaVA,
  Idefics, Qwen-VL, ...): asked the official questions through its processor's chat template.

Anything else is a :class:`ModelKindError` naming what was found. Code from the model's repository is
never run unless ``trust_remote_code=True`` (the CLI's ``--trust-remote-code``).
"""

from __future__ import annotations

from dataclasses import dataclass

CONTRASTIVE = "contrastive"
IMAGE_TEXT_TO_TEXT = "image-text-to-text"


class ModelKindError(ValueError):
    """The checkpoint is neither a contrastive model nor an image-text-to-text model."""


@dataclass
class ModelKind:
    kind: str  # CONTRASTIVE or IMAGE_TEXT_TO_TEXT
    model_type: str
    model_class: type | None  # the class the kind's Auto class resolves to (None for remote code)


def _load_config(model_id: str, trust_remote_code: bool, revision: str | None = None):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_id, trust_remote_code=trust_remote_code, revision=revision)
    except ValueError as err:
        text = str(err)
        if "trust_remote_code" in text:
            raise ModelKindError(
                f"{model_id} needs code from its repository to load; pass --trust-remote-code if you trust it"
            ) from None
        raise ModelKindError(f"{model_id}: cannot read its config ({text.splitlines()[0]})") from None
    except OSError as err:
        raise FileNotFoundError(f"{model_id}: no model config found ({str(err).splitlines()[0]})") from None


def _resolve(auto_class, config):
    """The class ``auto_class.from_config(config)`` would build, or None."""
    mapping = auto_class._model_mapping
    try:
        return mapping[type(config)]
    except KeyError:
        pass
    auto_map = getattr(config, "auto_map", None) or {}
    if auto_class.__name__ in auto_map:
        return None  # remote code: resolved when loaded
    raise KeyError(type(config).__name__)


def detect_kind(model_id: str, trust_remote_code: bool = False, revision: str | None = None) -> ModelKind:
    """Classify ``model_id`` from its config alone (no weights are read)."""
    from transformers import AutoModel, AutoModelForImageTextToText

    config = _load_config(model_id, trust_remote_code, revision)
    model_type = getattr(config, "model_type", type(config).__name__)
    found = []
    auto_map = getattr(config, "auto_map", None) or {}
    try:
        cls = _resolve(AutoModel, config)
    except KeyError:
        found.append("AutoModel does not know it")
    else:
        if cls is None and "AutoModelForImageTextToText" not in auto_map:
            return ModelKind(CONTRASTIVE, model_type, None)  # remote code: checked once loaded
        if cls is not None and hasattr(cls, "get_image_features") and hasattr(cls, "get_text_features"):
            return ModelKind(CONTRASTIVE, model_type, cls)
        if cls is not None:
            found.append(f"AutoModel gives {cls.__name__}, which lacks get_image_features/get_text_features")
    try:
        cls = _resolve(AutoModelForImageTextToText, config)
    except KeyError:
        found.append("AutoModelForImageTextToText does not know it")
    else:
        return ModelKind(IMAGE_TEXT_TO_TEXT, model_type, cls)
    architectures = ", ".join(getattr(config, "architectures", None) or []) or "none listed"
    raise ModelKindError(
        f"{model_id} is neither a contrastive nor an image-text-to-text model: found config "
        f"{type(config).__name__} (model_type {model_type!r}, architectures: {architectures}); "
        + "; ".join(found)
    )


def load(model_id: str, kind: ModelKind, device, dtype, trust_remote_code: bool = False,
         revision: str | None = None):
    """``(model, processor)`` on ``device`` in ``dtype``, in eval mode."""
    from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor

    auto = AutoModel if kind.kind == CONTRASTIVE else AutoModelForImageTextToText
    model = auto.from_pretrained(model_id, dtype=dtype, trust_remote_code=trust_remote_code, revision=revision)
    model.to(device).eval()
    processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=trust_remote_code, revision=revision)
    return model, processor
