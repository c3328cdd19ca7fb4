"""Convert an open_clip CLIP checkpoint into a transformers ``CLIPModel`` folder, without importing open_clip.

open_clip imports torchvision, which does not import beside a CPU-only torch build that has no matching
torchvision; the converted folder (``config.json``, ``model.safetensors``, a ``CLIPProcessor`` with the
checkpoint's preprocessing and tokenizer) loads with ``AutoModel`` / ``AutoProcessor`` anywhere and can be
pushed to the Hub as it is.

Interface (stable):

- :func:`convert_open_clip` ``(source, out_dir, *, checkpoint=None, model_config=None, tokenizer=None,
  quick_gelu=None, dtype="float32", overwrite=False) -> Path``. ``source`` is what
  ``open_clip.create_model_and_transforms`` takes: ``hf-hub:ORG/REPO`` (``open_clip_config.json`` +
  ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``), ``local-dir:PATH`` (the same files
  in a folder), or a built-in model name (``ViT-L-14``, ``ViT-B/32``) with ``checkpoint=`` a weights file
  (its config read from the installed open_clip package's ``model_configs/`` or from ``model_config=``);
  or ``source`` is itself a weights file with ``model_config=`` a JSON file (a bare model config, as in
  open_clip's ``model_configs/``, or an ``open_clip_config.json`` with ``model_cfg`` / ``preprocess_cfg``).
  ``tokenizer``: a transformers tokenizer id or folder; by default the config's ``hf_tokenizer_name``,
  else ``openai/clip-vit-base-patch32`` (the OpenAI BPE that open_clip's default ``SimpleTokenizer``
  implements). ``quick_gelu``: ``None`` follows what open_clip would build (the config's ``quick_gelu``,
  default False; built-in ``*-quickgelu`` names set it). Writes ``out_dir`` completely or not at all.
- :func:`read_source` ``(...) -> OpenClipSource`` (state dict, ``model_cfg``, ``preprocess_cfg``, origin).
- :func:`clip_config` ``(model_cfg, quick_gelu=None) -> CLIPConfig``; :func:`convert_state_dict`
  ``(state_dict, model_cfg) -> dict`` in ``CLIPModel``'s key layout; :func:`image_processor`
  ``(preprocess_cfg, model_cfg) -> CLIPImageProcessor``.
- :class:`UnsupportedOpenClipModel` (a ``ValueError``): the checkpoint is not a plain CLIP (CoCa, SigLIP
  with ``logit_bias``, timm or Hugging Face towers, layer scale, attentional pooling, custom attention
  blocks, ...); the message names the field.

What maps to what (open_clip 3.3 ``model.py`` / ``transformer.py``; the inverse of transformers'
``convert_clip_original_pytorch_to_hf.py``):

- ``visual.conv1`` -> ``vision_model.embeddings.patch_embedding``; ``visual.class_embedding`` /
  ``visual.positional_embedding`` -> ``embeddings.class_embedding`` / ``position_embedding``;
  ``visual.ln_pre`` -> ``pre_layrnorm``; ``visual.ln_post`` -> ``post_layernorm``; ``visual.proj`` (width x
  embed) -> ``visual_projection.weight`` transposed.
- each ``resblocks.i``: ``attn.in_proj_weight/bias`` split in three along dim 0 -> ``q_proj``, ``k_proj``,
  ``v_proj``; ``attn.out_proj`` -> ``out_proj``; ``ln_1``/``ln_2`` -> ``layer_norm1``/``2``;
  ``mlp.c_fc``/``mlp.c_proj`` -> ``mlp.fc1``/``fc2``. Heads: vision ``width // head_width``, text ``heads``.
- ``token_embedding``, ``positional_embedding``, ``ln_final``, ``text_projection`` (transposed) -> the
  ``text_model`` / ``text_projection`` equivalents (``text.``-prefixed keys of ``CustomTextCLIP`` too);
  ``logit_scale`` as is.
- text pooling: open_clip's ``argmax`` (the highest token id, OpenAI's end-of-text) is CLIP's legacy rule,
  selected in transformers by ``eos_token_id == 2``; ``eos`` pooling keeps its ``eos_id``.
- preprocessing (``PreprocessCfg``): ``resize_mode`` ``shortest`` -> resize the shortest edge + centre crop;
  ``squash`` -> resize to the square, no crop; ``interpolation``, ``mean``, ``std`` kept. ``longest``
  (letterbox padding) has no ``CLIPImageProcessor`` equivalent and is refused. One known pixel-level
  difference: when the crop margin is odd, torchvision's ``CenterCrop`` (open_clip, and transformers'
  torchvision backend) rounds the offset half-to-even while transformers' PIL backend floors it, so the
  crop can sit one pixel apart on machines without torchvision.

    >>> config = clip_config({"embed_dim": 32, "quick_gelu": True,
    ...     "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    ...     "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 48, "heads": 4, "layers": 2}})
    >>> config.vision_config.num_attention_heads, config.text_config.hidden_act, config.text_config.eos_token_id
    (2, 'quick_gelu', 2)
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from diffbench.files import replace_directory

# torch, safetensors and transformers (the [eval] extra; seconds to import) and huggingface_hub are imported
# by the functions that use them: the checks of --out and of the configs run, and fail, before any loads.

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
CONFIG_NAME = "open_clip_config.json"
#: open_clip's ``_find_checkpoint_in_dir`` preference order (factory.py)
CHECKPOINT_NAMES = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)
#: what ``download_pretrained_from_hf`` tries, in order (pretrained.py)
HUB_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin")
DEFAULT_TOKENIZER = "openai/clip-vit-base-patch32"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
CONVERSION_RECORD = "diffbench_conversion.json"
#: what the record says wrote the folder (the only folders --overwrite replaces)
CONVERTER = "diffbench.convert.open_clip"


class UnsupportedOpenClipModel(ValueError):
    """The open_clip model has a part a transformers ``CLIPModel`` cannot express."""


@dataclass
class OpenClipSource:
    state_dict: dict
    model_cfg: dict
    preprocess_cfg: dict = field(default_factory=dict)
    origin: str = ""  # what the weights were read from, for messages and the conversion record
    weights_file: str = ""


# -- reading a source ---------------------------------------------------------------------------------

def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such {what}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _split_config(data: dict, path) -> tuple[dict, dict]:
    """(model_cfg, preprocess_cfg) of an ``open_clip_config.json`` or of a bare model config."""
    if "model_cfg" in data:
        return data["model_cfg"], data.get("preprocess_cfg", {})
    if "vision_cfg" in data and "text_cfg" in data:
        return data, {}
    raise ValueError(f"{path}: neither an open_clip_config.json (model_cfg) nor a model config (vision_cfg, text_cfg)")


def builtin_model_config(name: str) -> dict | None:
    """open_clip's built-in config ``model_configs/<name>.json``, read from the installed package without
    importing it (open_clip's import needs torchvision); ``None`` when open_clip is not installed."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "model_configs" / f"{name.replace('/', '-')}.json"
        if path.is_file():
            return _read_json(path, "open_clip model config")
    raise ValueError(f"open_clip has no built-in model config named {name!r}")


def load_weights(path) -> dict:
    """An open_clip checkpoint's state dict: safetensors, or a torch pickle read with ``weights_only``;
    a training checkpoint's ``state_dict`` and DDP's ``module.`` prefix handled as open_clip does."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        checkpoint = load_file(str(path))
    else:
        try:
            checkpoint = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "TorchScript" in str(err) or "constants.pkl" in str(err):
                raise UnsupportedOpenClipModel(
                    f"{path}: a TorchScript archive (OpenAI's original release); its transformers port is "
                    "on the Hub as openai/clip-*") from None
            raise ValueError(f"{path}: cannot read the checkpoint ({str(err).splitlines()[0]})") from None
        except Exception as err:  # weights_only refuses pickled objects other than tensors and containers
            raise ValueError(f"{path}: cannot read the checkpoint safely ({str(err).splitlines()[0]})") from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise ValueError(f"{path}: holds no state dict")
    if next(iter(checkpoint)).startswith("module."):
        checkpoint = {key[len("module."):]: value for key, value in checkpoint.items()}
    return checkpoint


def _find_checkpoint(folder: Path) -> Path:
    for name in CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for ext in ("*.safetensors", "*.bin", "*.pth") for p in folder.glob(ext))
    if not found:
        raise FileNotFoundError(f"{folder}: no weights file (.safetensors, .bin or .pth)")
    return found[0]


def read_source(source: str, checkpoint=None, model_config=None) -> OpenClipSource:
    """The state dict and configs that ``open_clip.create_model_and_transforms(source, pretrained=checkpoint)``
    would use (see the module docstring for the forms of ``source``)."""
    source = str(source)
    preprocess_cfg: dict = {}
    if source.startswith(HF_HUB_PREFIX):
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        repo = source[len(HF_HUB_PREFIX):]
        try:
            config_file = hf_hub_download(repo, CONFIG_NAME)
        except Exception as err:  # offline, no such repo, gated, no open_clip_config.json
            raise FileNotFoundError(f"{source}: cannot fetch {CONFIG_NAME} "
                                    f"({type(err).__name__}: {str(err).splitlines()[0]})") from None
        model_cfg, preprocess_cfg = _split_config(_read_json(config_file, "config"), f"{repo}/{CONFIG_NAME}")
        weights = None
        for name in HUB_WEIGHT_NAMES if checkpoint is None else ():
            try:
                weights = hf_hub_download(repo, name)
                break
            except EntryNotFoundError:
                continue
        if checkpoint is not None:
            weights = checkpoint
        if weights is None:
            raise FileNotFoundError(f"{repo}: none of {', '.join(HUB_WEIGHT_NAMES)} on the Hub")
    elif source.startswith(LOCAL_DIR_PREFIX):
        folder = Path(source[len(LOCAL_DIR_PREFIX):])
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder (from {source!r})")
        model_cfg, preprocess_cfg = _split_config(_read_json(folder / CONFIG_NAME, "open_clip_config.json"),
                                                  folder / CONFIG_NAME)
        weights = checkpoint or _find_checkpoint(folder)
    elif Path(source).is_file():
        if model_config is None:
            raise ValueError(f"{source}: a weights file needs --model-config (the open_clip model config JSON)")
        model_cfg, preprocess_cfg = _split_config(_read_json(model_config, "model config"), model_config)
        weights = source
    else:
        if checkpoint is None:
            raise ValueError(f"{source!r}: a built-in model name needs --checkpoint (a weights file); open_clip's "
                             "download tags (such as 'openai') are not fetched here")
        if model_config is not None:
            model_cfg, preprocess_cfg = _split_config(_read_json(model_config, "model config"), model_config)
        else:
            model_cfg = builtin_model_config(source)
            if model_cfg is None:
                raise ValueError(f"{source!r}: open_clip is not installed to read its built-in config; "
                                 "pass --model-config (a copy of open_clip's model_configs/<name>.json)")
            if source.endswith("-quickgelu"):
                model_cfg = {**model_cfg, "quick_gelu": True}
        weights = checkpoint
    return OpenClipSource(state_dict=load_weights(weights), model_cfg=model_cfg, preprocess_cfg=preprocess_cfg,
                          origin=source, weights_file=str(weights))


# -- the config -----------------------------------------------------------------------------------------

_CUSTOM_BLOCK_FLAGS = ("qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc")


def _refuse(cfg: dict, tower: str, key: str, allowed) -> None:
    value = cfg.get(key, allowed[0])
    if value not in allowed:
        raise UnsupportedOpenClipModel(
            f"{tower}.{key}={value!r} has no transformers CLIPModel equivalent (supported: {list(allowed)}); "
            "run this model with open_clip itself")


def _square(size, what: str) -> int:
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise UnsupportedOpenClipModel(f"{what}={list(size)}: only square sizes convert")
        return int(size[0])
    return int(size)


def _check_supported(model_cfg: dict) -> None:
    vision, text = model_cfg.get("vision_cfg"), model_cfg.get("text_cfg")
    if not isinstance(vision, dict) or not isinstance(text, dict):
        raise ValueError("model config: vision_cfg and text_cfg must both be objects")
    if model_cfg.get("multimodal_cfg"):
        raise UnsupportedOpenClipModel("model_cfg.multimodal_cfg is set: a CoCa model (captioning decoder, "
                                       "attentional pooling); run it with open_clip itself")
    if model_cfg.get("init_logit_bias") is not None:
        raise UnsupportedOpenClipModel("model_cfg.init_logit_bias is set (SigLIP-style sigmoid logits): "
                                       "CLIPModel has no logit bias")
    for key in ("timm_model_name", "hf_model_name"):
        for tower, cfg in (("vision_cfg", vision), ("text_cfg", text)):
            if cfg.get(key):
                raise UnsupportedOpenClipModel(f"{tower}.{key}={cfg[key]!r}: not an open_clip transformer tower")
    if isinstance(vision.get("layers", 12), (list, tuple)):
        raise UnsupportedOpenClipModel("vision_cfg.layers is a list: a ModifiedResNet image tower")
    for tower, cfg in (("vision_cfg", vision), ("text_cfg", text)):
        _refuse(cfg, tower, "ls_init_value", (None,))
        _refuse(cfg, tower, "block_type", (None, "default"))
        _refuse(cfg, tower, "act_kwargs", (None,))
        _refuse(cfg, tower, "norm_kwargs", (None,))
        for flag in _CUSTOM_BLOCK_FLAGS:
            _refuse(cfg, tower, flag, (False,))
    _refuse(vision, "vision_cfg", "attentional_pool", (False,))
    _refuse(vision, "vision_cfg", "no_ln_pre", (False,))
    _refuse(vision, "vision_cfg", "final_ln_after_pool", (False,))
    _refuse(vision, "vision_cfg", "pool_type", ("tok",))
    _refuse(vision, "vision_cfg", "pos_embed_type", ("learnable", "sin_cos_2d"))
    _refuse(text, "text_cfg", "embed_cls", (False,))
    _refuse(text, "text_cfg", "no_causal_mask", (False,))
    _refuse(text, "text_cfg", "pool_type", ("argmax", "eos"))
    _refuse(text, "text_cfg", "proj_type", ("linear",))
    _refuse(text, "text_cfg", "proj_bias", (False,))
    _refuse(text, "text_cfg", "final_ln_after_pool", (False,))
    if text.get("pool_type") == "eos" and text.get("eos_id", 2) == 2:
        raise UnsupportedOpenClipModel("text_cfg.pool_type='eos' with eos_id=2: transformers reads "
                                       "eos_token_id 2 as the legacy argmax rule")


def clip_config(model_cfg: dict, quick_gelu: bool | None = None):
    """The ``CLIPConfig`` of the model open_clip builds from ``model_cfg`` (open_clip's defaults filled in)."""
    from transformers import CLIPConfig

    _check_supported(model_cfg)
    vision, text = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    quick = model_cfg.get("quick_gelu", False) if quick_gelu is None else quick_gelu
    act = "quick_gelu" if quick else "gelu"  # nn.GELU: exact erf GELU, transformers' "gelu"
    embed_dim = int(model_cfg["embed_dim"])
    v_width = int(vision.get("width", 768))
    head_width = int(vision.get("head_width", 64))
    if v_width % head_width:
        raise UnsupportedOpenClipModel(f"vision_cfg.width={v_width} is not a multiple of head_width={head_width}")
    t_width, t_heads = int(text.get("width", 512)), int(text.get("heads", 8))
    vision_config = dict(
        hidden_size=v_width, intermediate_size=int(v_width * float(vision.get("mlp_ratio", 4.0))),
        num_hidden_layers=int(vision.get("layers", 12)), num_attention_heads=v_width // head_width,
        image_size=_square(vision.get("image_size", 224), "vision_cfg.image_size"),
        patch_size=_square(vision.get("patch_size", 16), "vision_cfg.patch_size"),
        num_channels=3, projection_dim=embed_dim, hidden_act=act, layer_norm_eps=1e-5,
    )
    pool_type = text.get("pool_type", "argmax")
    text_config = dict(
        vocab_size=int(text.get("vocab_size", 49408)), hidden_size=t_width,
        intermediate_size=int(t_width * float(text.get("mlp_ratio", 4.0))),
        num_hidden_layers=int(text.get("layers", 12)), num_attention_heads=t_heads,
        max_position_embeddings=int(text.get("context_length", 77)), projection_dim=embed_dim, hidden_act=act,
        layer_norm_eps=1e-5,
        # 2 selects transformers' legacy pooling: the position of the highest token id (open_clip's argmax)
        eos_token_id=2 if pool_type == "argmax" else int(text["eos_id"]),
        bos_token_id=0, pad_token_id=1,  # unused by CLIP's text model; the tokenizer carries its own
    )
    return CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=embed_dim)


# -- the weights ---------------------------------------------------------------------------------------

def _block_keys(src: str, dst: str, layers: int) -> list[tuple[str, str, str]]:
    """(open_clip key, transformers key, how) for every transformer block."""
    keys = []
    for i in range(layers):
        s, d = f"{src}.resblocks.{i}", f"{dst}.layers.{i}"
        keys += [(f"{s}.attn.in_proj_weight", f"{d}.self_attn.{{q,k,v}}_proj.weight", "split"),
                 (f"{s}.attn.in_proj_bias", f"{d}.self_attn.{{q,k,v}}_proj.bias", "split")]
        for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                     ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            keys += [(f"{s}.{a}.weight", f"{d}.{b}.weight", "copy"), (f"{s}.{a}.bias", f"{d}.{b}.bias", "copy")]
    return keys


def key_map(model_cfg: dict) -> list[tuple[str, str, str]]:
    """Every (open_clip key, ``CLIPModel`` key, how) of a plain open_clip CLIP: how is copy, transpose or split."""
    vision_layers = int(model_cfg["vision_cfg"].get("layers", 12))
    text_layers = int(model_cfg["text_cfg"].get("layers", 12))
    keys = [
        ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight", "copy"),
        ("visual.class_embedding", "vision_model.embeddings.class_embedding", "copy"),
        ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight", "copy"),
        ("visual.ln_pre.weight", "vision_model.pre_layrnorm.weight", "copy"),
        ("visual.ln_pre.bias", "vision_model.pre_layrnorm.bias", "copy"),
        ("visual.ln_post.weight", "vision_model.post_layernorm.weight", "copy"),
        ("visual.ln_post.bias", "vision_model.post_layernorm.bias", "copy"),
        ("visual.proj", "visual_projection.weight", "transpose"),
        ("token_embedding.weight", "text_model.embeddings.token_embedding.weight", "copy"),
        ("positional_embedding", "text_model.embeddings.position_embedding.weight", "copy"),
        ("ln_final.weight", "text_model.final_layer_norm.weight", "copy"),
        ("ln_final.bias", "text_model.final_layer_norm.bias", "copy"),
        ("text_projection", "text_projection.weight", "transpose"),
        ("logit_scale", "logit_scale", "copy"),
    ]
    keys += _block_keys("visual.transformer", "vision_model.encoder", vision_layers)
    keys += _block_keys("transformer", "text_model.encoder", text_layers)
    return keys


#: text-tower keys CustomTextCLIP keeps under ``text.`` (open_clip's convert_to_custom_text_state_dict)
_TEXT_PREFIXES = ("text_projection", "positional_embedding", "token_embedding", "transformer", "ln_final")


def convert_state_dict(state_dict: dict, model_cfg: dict, dtype=None, origin: str = "checkpoint") -> dict:
    """``state_dict`` (open_clip ``CLIP`` or ``CustomTextCLIP`` layout) in ``CLIPModel``'s layout.

    Every key must be used and every expected key present; ``dtype`` (a torch dtype) casts floating tensors.
    """
    import torch

    _check_supported(model_cfg)
    if any(key.startswith("text.") for key in state_dict):
        state_dict = {key[len("text."):] if key.startswith("text.") and key[5:].startswith(_TEXT_PREFIXES) else key: v
                      for key, v in state_dict.items()}
    if "logit_bias" in state_dict:
        raise UnsupportedOpenClipModel(f"{origin}: has logit_bias (SigLIP-style logits): CLIPModel has no logit bias")
    remaining = dict(state_dict)
    remaining.pop("text.transformer.embeddings.position_ids", None)  # dropped by open_clip's loader too
    converted = {}
    for src, dst, how in key_map(model_cfg):
        if src not in remaining:
            raise ValueError(f"{origin}: missing {src} (expected by the model config)")
        tensor = remaining.pop(src)
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{origin}: {src} is a {type(tensor).__name__}, not a tensor")
        if how == "split":
            if tensor.shape[0] % 3:
                raise ValueError(f"{origin}: {src} has shape {tuple(tensor.shape)}; its first dimension must split in 3")
            for name, part in zip("qkv", tensor.chunk(3, dim=0)):
                converted[dst.replace("{q,k,v}", name)] = part
        elif how == "transpose":
            converted[dst] = tensor.t()
        else:
            converted[dst] = tensor.reshape(()) if src == "logit_scale" else tensor
    if remaining:
        extra = sorted(remaining)
        raise UnsupportedOpenClipModel(f"{origin}: {len(extra)} keys a plain CLIP does not have, such as "
                                       f"{', '.join(extra[:5])} (CoCa decoder, attentional pooler, ...?)")
    out = {}
    for key, tensor in converted.items():
        tensor = tensor.detach()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[key] = tensor.contiguous().clone()  # own storage: safetensors refuses shared or strided views
    return out


# -- preprocessing and tokenizer ---------------------------------------------------------------------------

_RESAMPLE = {"bicubic": 3, "bilinear": 2, "nearest": 0}  # PIL.Image.Resampling values


def image_processor(preprocess_cfg: dict, model_cfg: dict):
    """A ``CLIPImageProcessor`` doing open_clip's evaluation transform (``image_transform(is_train=False)``)."""
    from transformers import CLIPImageProcessor

    size = _square(preprocess_cfg.get("size", model_cfg["vision_cfg"].get("image_size", 224)), "preprocess_cfg.size")
    interpolation = preprocess_cfg.get("interpolation", "bicubic")
    if interpolation not in _RESAMPLE:
        raise UnsupportedOpenClipModel(f"preprocess_cfg.interpolation={interpolation!r}: supported {list(_RESAMPLE)}")
    resize_mode = preprocess_cfg.get("resize_mode", "shortest")
    mean = [float(v) for v in preprocess_cfg.get("mean", OPENAI_MEAN)]
    std = [float(v) for v in preprocess_cfg.get("std", OPENAI_STD)]
    common = dict(resample=_RESAMPLE[interpolation], do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                  image_mean=mean, image_std=std, do_convert_rgb=True)
    if resize_mode == "shortest":
        return CLIPImageProcessor(size={"shortest_edge": size}, do_center_crop=True,
                                  crop_size={"height": size, "width": size}, **common)
    if resize_mode == "squash":
        return CLIPImageProcessor(size={"height": size, "width": size}, do_center_crop=False,
                                  crop_size={"height": size, "width": size}, **common)
    raise UnsupportedOpenClipModel(f"preprocess_cfg.resize_mode={resize_mode!r}: CLIPImageProcessor does "
                                   "'shortest' (resize + centre crop) and 'squash' only")


def load_tokenizer(tokenizer, model_cfg: dict):
    """The transformers tokenizer for the text tower, capped at its context length."""
    from transformers import AutoTokenizer

    text = model_cfg["text_cfg"]
    name = tokenizer or text.get("hf_tokenizer_name") or DEFAULT_TOKENIZER
    try:
        loaded = AutoTokenizer.from_pretrained(str(name))
    except OSError as err:
        raise FileNotFoundError(f"tokenizer {name!r}: {str(err).splitlines()[0]}") from None
    vocab_size = int(text.get("vocab_size", 49408))
    if len(loaded) > vocab_size:
        raise ValueError(f"tokenizer {name!r} has {len(loaded)} tokens; the text tower embeds {vocab_size}")
    loaded.model_max_length = int(text.get("context_length", 77))
    return loaded, str(name)


# -- the whole conversion ------------------------------------------------------------------------------------

def check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """``out_dir`` may be written: new, empty, or (with ``overwrite``) a folder this converter wrote, which
    holds its :data:`CONVERSION_RECORD`. Anything else (a file, a folder of other things) is refused in one
    line: ``--overwrite`` never deletes what the converter did not write.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()); _ = (folder / "notes.txt").write_text("mine")
    >>> try:
    ...     check_out_dir(folder, overwrite=True)
    ... except FileExistsError as err:
    ...     print(str(err).removeprefix(f"{folder}: "))
    not a folder written by diffbench convert (no diffbench_conversion.json); --overwrite only replaces those: choose another --out
    """
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: is a file, not a folder; --out names the folder to write")
    if not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{out_dir}: exists and is not empty (pass --overwrite, or overwrite=True in Python, to replace it)")
    record = out_dir / CONVERSION_RECORD
    try:
        ours = json.loads(record.read_text(encoding="utf-8")).get("converter") == CONVERTER
    except (OSError, ValueError, AttributeError):
        ours = False
    if out_dir.is_symlink() or not ours:
        raise FileExistsError(f"{out_dir}: not a folder written by diffbench convert (no {CONVERSION_RECORD}); "
                              "--overwrite only replaces those: choose another --out")


def convert_open_clip(source, out_dir, *, checkpoint=None, model_config=None, tokenizer=None,
                      quick_gelu: bool | None = None, dtype: str = "float32", overwrite: bool = False) -> Path:
    """Write the ``CLIPModel`` folder of an open_clip checkpoint to ``out_dir`` (all of it, or nothing)."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPModel, CLIPProcessor

    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite)
    if dtype not in ("float32", "float16", "bfloat16", "keep"):
        raise ValueError(f"dtype must be float32, float16, bfloat16 or keep, got {dtype!r}")
    read = read_source(source, checkpoint=checkpoint, model_config=model_config)
    config = clip_config(read.model_cfg, quick_gelu=quick_gelu)
    torch_dtype = None if dtype == "keep" else getattr(torch, dtype)
    weights = convert_state_dict(read.state_dict, read.model_cfg, dtype=torch_dtype, origin=read.weights_file)
    with torch.device("meta"):  # the shapes CLIPModel expects, without allocating its weights
        expected = {k: tuple(v.shape) for k, v in CLIPModel(config).state_dict().items()}
    for key, tensor in weights.items():
        if key not in expected:
            raise ValueError(f"{read.weights_file}: {key} has no place in CLIPModel")
        if tuple(tensor.shape) != expected[key]:
            raise ValueError(f"{read.weights_file}: {key} has shape {tuple(tensor.shape)}, the model config "
                             f"implies {expected[key]}")
    missing = sorted(set(expected) - set(weights) - {"text_model.embeddings.position_ids",
                                                     "vision_model.embeddings.position_ids"})
    if missing:
        raise ValueError(f"{read.weights_file}: nothing converts to {', '.join(missing[:5])}")
    text_tokenizer, tokenizer_name = load_tokenizer(tokenizer, read.model_cfg)
    processor = CLIPProcessor(image_processor=image_processor(read.preprocess_cfg, read.model_cfg),
                              tokenizer=text_tokenizer)
    if dtype != "keep":
        config.dtype = dtype
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    holder = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging = holder / "new"
    try:
        staging.mkdir()
        config.save_pretrained(staging)
        save_file(weights, str(staging / "model.safetensors"), metadata={"format": "pt"})
        processor.save_pretrained(staging)
        record = {
            "converted_from": read.origin, "weights_file": read.weights_file, "model_cfg": read.model_cfg,
            "preprocess_cfg": read.preprocess_cfg, "tokenizer": tokenizer_name,
            "hidden_act": config.vision_config.hidden_act, "dtype": dtype,
            "converter": CONVERTER,
        }
        (staging / CONVERSION_RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        if out_dir.exists():
            check_out_dir(out_dir, overwrite)  # still one of ours, just before it goes
        replace_directory(staging, out_dir, holder / "old")  # an exchange: never a moment without a folder
    finally:
        shutil.rmtree(holder, ignore_errors=True)
    return out_dir
