"""Which kind of model a checkpoint is, and loading it.

- **contrastive**: the class ``AutoModel`` gives has ``get_image_features`` and ``get_text_features``
  (CLIP, SigLIP, SigLIP 2, ALIGN, BLIP's retrieval model, ...): scored by cosine similarity.
- **image-text-to-text**: the config is in transformers' ``AutoModelForImageTextToText`` mapping (LLaVA,
  Idefics, Qwen-VL, ...): asked the official questions through its processor's chat template.

Anything else is a :class:`ModelKindError` naming what was found. Code from the model's repository is
never run unless ``trust_remote_code=True`` (the CLI's ``--trust-remote-code``), and pickled weights
(``pytorch_model.bin``, ``.pt``) are never unpickled unless ``allow_pickle=True`` (``--allow-pickle``):
transformers' ``use_safetensors=True`` otherwise. A missing folder, a corrupt weight file or a
pickle-only checkpoint is a one-line :class:`ModelLoadError` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTRASTIVE = "contrastive"
IMAGE_TEXT_TO_TEXT = "image-text-to-text"
OPEN_CLIP_PREFIX = "open_clip:"  # --model open_clip:SPEC (diffbench.backends.open_clip_model; needs torchvision)


class ModelKindError(ValueError):
    """The checkpoint is neither a contrastive model nor an image-text-to-text model."""


class ModelLoadError(ValueError):
    """The checkpoint cannot be loaded as asked (missing, corrupt, or pickle weights without opt-in)."""


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def looks_like_path(model_id: str) -> bool:
    """A model reference meant as a local folder: absolute, relative with ``./``, ``~``, or several
    separators (a Hub id has at most one ``/``)."""
    return model_id.startswith(("/", "./", "../", "~", ".\\")) or model_id.count("/") > 1 or "\\" in model_id


def check_reference(model_id: str) -> None:
    """A reference meant as a folder must be one that holds a ``config.json``."""
    from pathlib import Path

    path = Path(model_id).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelLoadError(f"{model_id}: the folder has no config.json (not a saved transformers model)")
    if not path.exists() and looks_like_path(model_id):
        raise ModelLoadError(f"{model_id}: no such model folder")
    if path.exists() and not path.is_dir():
        raise ModelLoadError(f"{model_id}: is a file; --model takes a model folder or a Hub model id")


def check_safetensors(path) -> None:
    """Read a safetensors file's header (cheap: no tensor is read); a corrupt one is a ModelLoadError."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as err:  # noqa: BLE001 - SafetensorError and friends: name the file, one line
        detail = str(err).splitlines()[0] if str(err) else ""
        raise ModelLoadError(f"{path}: the weight file is corrupt or unreadable ({type(err).__name__}: {detail})") from None


def check_loadable(model_id: str, allow_pickle: bool) -> None:
    """Everything that can refuse a model before any work: open_clip importable; weight files readable."""
    if model_id.startswith(OPEN_CLIP_PREFIX):
        from diffbench.backends.open_clip_model import import_open_clip, parse_spec  # deferred: imports torch

        parse_spec(model_id.removeprefix(OPEN_CLIP_PREFIX))
        try:
            import_open_clip()
        except ImportError as err:
            raise ModelLoadError(str(err).splitlines()[0]) from None
        return
    check_weight_files(model_id, allow_pickle)


def check_weight_files(model_id: str, allow_pickle: bool) -> None:
    """A local folder without safetensors weights is refused unless pickle weights are allowed."""
    from pathlib import Path

    path = Path(model_id).expanduser()
    if not path.is_dir():
        return
    for weights in sorted(path.glob("*.safetensors")):
        check_safetensors(weights)
    if allow_pickle or any(path.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise ModelLoadError(f"{model_id}: only pickle weights ({', '.join(pickled)}), which can run code when "
                             "loaded; convert them to safetensors, or pass --allow-pickle if you trust them")


@dataclass
class ModelKind:
    kind: str  # CONTRASTIVE or IMAGE_TEXT_TO_TEXT
    model_type: str
    model_class: type | None  # the class the kind's Auto class resolves to (None for remote code)
    config_dtype: str | None = None  # the dtype its config names (float32, float16, bfloat16), None: none


FLOAT_DTYPES = ("float32", "float16", "bfloat16")


def config_dtype(config) -> str | None:
    """The floating dtype a config names (``dtype``, the old ``torch_dtype``; a composite model's text config
    when the top level names none), or None.

    >>> from transformers import LlamaConfig
    >>> config_dtype(LlamaConfig(dtype="bfloat16")), config_dtype(LlamaConfig())
    ('bfloat16', None)
    """
    configs = [config]
    if hasattr(config, "get_text_config"):
        configs.append(config.get_text_config())
    for candidate in configs:
        names = candidate.to_dict() if hasattr(candidate, "to_dict") else {}
        value = names.get("dtype") or names.get("torch_dtype")  # read from the dict: the attribute warns
        name = str(value).removeprefix("torch.") if value is not None else None
        if name in FLOAT_DTYPES:
            return name
    return None


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

    if model_id.startswith(OPEN_CLIP_PREFIX):
        return ModelKind(CONTRASTIVE, "open_clip", None)
    check_reference(model_id)
    config = _load_config(model_id, trust_remote_code, revision)
    model_type = getattr(config, "model_type", type(config).__name__)
    dtype = config_dtype(config)
    if BLIP_RETRIEVAL in (getattr(config, "architectures", None) or []):
        # AutoModel would give BlipModel, whose projections are not the retrieval heads (random weights)
        from transformers import BlipForImageTextRetrieval

        return ModelKind(CONTRASTIVE, model_type, BlipForImageTextRetrieval, dtype)
    found = []
    auto_map = getattr(config, "auto_map", None) or {}
    try:
        cls = _resolve(AutoModel, config)
    except KeyError:
        found.append("AutoModel does not know it")
    else:
        if cls is None and "AutoModelForImageTextToText" not in auto_map:
            return ModelKind(CONTRASTIVE, model_type, None, dtype)  # remote code: checked once loaded
        if cls is not None and hasattr(cls, "get_image_features") and hasattr(cls, "get_text_features"):
            return ModelKind(CONTRASTIVE, model_type, cls, dtype)
        if cls is not None:
            found.append(f"AutoModel gives {cls.__name__}, which lacks get_image_features/get_text_features")
    try:
        cls = _resolve(AutoModelForImageTextToText, config)
    except KeyError:
        found.append("AutoModelForImageTextToText does not know it")
    else:
        return ModelKind(IMAGE_TEXT_TO_TEXT, model_type, cls, dtype)
    architectures = ", ".join(getattr(config, "architectures", None) or []) or "none listed"
    raise ModelKindError(
        f"{model_id} is neither a contrastive nor an image-text-to-text model: found config "
        f"{type(config).__name__} (model_type {model_type!r}, architectures: {architectures}); "
        + "; ".join(found)
    )


BLIP_RETRIEVAL = "BlipForImageTextRetrieval"


def load_open_clip(spec: str, device, dtype):
    """``(model, None)``: an open_clip checkpoint through :mod:`diffbench.backends.open_clip_model` (the
    model preprocesses and tokenises itself; there is no transformers processor)."""
    import torch

    from diffbench.backends.open_clip_model import OpenClipContrastive  # deferred: imports torch

    precision = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    try:
        model = OpenClipContrastive.from_spec(spec, device=str(device), precision=precision)
    except ImportError as err:
        raise ModelLoadError(str(err).splitlines()[0]) from None
    except RuntimeError as err:  # open_clip's own "model not found" / checkpoint errors
        raise ModelLoadError(f"{OPEN_CLIP_PREFIX}{spec}: {str(err).splitlines()[0]}") from None
    return model.eval(), None


def load(model_id: str, kind: ModelKind, device, dtype, trust_remote_code: bool = False,
         revision: str | None = None, allow_pickle: bool = False, processor_id: str | None = None):
    """``(model, processor)`` on ``device`` in ``dtype``, in eval mode."""
    from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor

    if model_id.startswith(OPEN_CLIP_PREFIX):
        return load_open_clip(model_id.removeprefix(OPEN_CLIP_PREFIX), device, dtype)
    check_weight_files(model_id, allow_pickle)
    auto = AutoModel if kind.kind == CONTRASTIVE else AutoModelForImageTextToText
    if kind.model_class is not None and kind.model_class.__name__ == BLIP_RETRIEVAL:
        auto = kind.model_class
    try:
        model = auto.from_pretrained(model_id, dtype=dtype, trust_remote_code=trust_remote_code, revision=revision,
                                     use_safetensors=None if allow_pickle else True)
    except OSError as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "model.safetensors" in text and not allow_pickle:
            raise ModelLoadError(f"{model_id}: no safetensors weights ({text}); pass --allow-pickle to load "
                                 "pickle weights if you trust them") from None
        raise ModelLoadError(f"{model_id}: cannot load the weights ({text})") from None
    except Exception as err:  # noqa: BLE001 - a corrupt file (SafetensorError, ...) is the user's to fix
        if type(err).__name__ not in ("SafetensorError", "HeaderTooLarge", "UnpicklingError", "EOFError",
                                      "RuntimeError"):
            raise
        raise ModelLoadError(f"{model_id}: the weight file is corrupt or unreadable ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if auto.__name__ == BLIP_RETRIEVAL:
        # BLIP's ITC heads as get_image_features / get_text_features (diffbench.backends.blip_itc)
        from diffbench.backends.blip_itc import BlipITC  # deferred: imports torch

        model = BlipITC(model)
    model.to(device).eval()
    processor = AutoProcessor.from_pretrained(processor_id or model_id, trust_remote_code=trust_remote_code,
                                              revision=None if processor_id else revision)
    return model, processor
