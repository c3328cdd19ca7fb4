"""Run an open_clip checkpoint in place (the optional ``[openclip]`` extra), as a contrastive model.

The paper ran CLIP, CoCa and its VisMin-CLIP through open_clip (rabiulcste/vismin ``evals/vlm/clip.py``:
``create_model_and_transforms(model_name, pretrained)``, ``get_tokenizer(model_name)``, features
normalised, ``logit_scale * cos``; the ranking equals plain cosine). open_clip imports torchvision: where
torchvision cannot import (CPU machines whose torch has no matching torchvision build), convert plain CLIP
checkpoints instead (``diffbench convert open-clip``, :mod:`diffbench.convert.open_clip`).

Interface (stable):

- :func:`parse_spec` ``(spec) -> (model_name, pretrained)``: ``SPEC`` is what
  ``create_model_and_transforms`` takes: ``hf-hub:ORG/REPO``, ``local-dir:PATH``, or a built-in name with
  an optional ``@PRETRAINED`` (a tag such as ``openai`` or a weights file).
- :class:`OpenClipContrastive` ``.from_spec(spec, device="cpu", precision="fp32")``: ``preprocess(images)
  -> pixel tensor``, ``tokenize(texts) -> ids``, ``get_image_features(pixels)`` /
  ``get_text_features(ids)`` -> L2-normalised features; ``.preprocess_cfg`` (what open_clip used).
- :func:`import_open_clip`: open_clip, or an ``ImportError`` that says what to do.

    >>> parse_spec("ViT-L-14@/ckpt/model.pt"), parse_spec("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    (('ViT-L-14', '/ckpt/model.pt'), ('hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K', None))
    >>> parse_spec("coca_ViT-L-14@laion2b_s13b_b90k")
    ('coca_ViT-L-14', 'laion2b_s13b_b90k')
"""

from __future__ import annotations

import torch
from torch import nn


def parse_spec(spec: str) -> tuple[str, str | None]:
    """(model_name, pretrained) of an ``open_clip`` spec (``hf-hub:`` and ``local-dir:`` carry their own weights)."""
    spec = spec.strip()
    if not spec:
        raise ValueError("empty open_clip model spec")
    if spec.startswith(("hf-hub:", "local-dir:")):
        return spec, None
    name, sep, pretrained = spec.partition("@")
    if sep and not pretrained:
        raise ValueError(f"open_clip spec {spec!r}: nothing after '@' (a pretrained tag or a weights file)")
    return name, pretrained or None


def import_open_clip():
    """The ``open_clip`` module, or an ImportError naming the extra and the conversion route."""
    try:
        import open_clip  # the optional [openclip] extra (and torchvision): imported only when asked for
    except Exception as err:  # ModuleNotFoundError, or torchvision's "operator torchvision::nms does not exist"
        raise ImportError(
            f"open_clip cannot be imported here ({type(err).__name__}: {str(err).splitlines()[0]}). Install the "
            "[openclip] extra (open-clip-torch, which needs a torchvision matching your torch), or convert the "
            "checkpoint once with `diffbench convert open-clip SPEC --out DIR` and run DIR with transformers"
        ) from err
    return open_clip


class OpenClipContrastive(nn.Module):
    """An open_clip model with the contrastive interface the harness uses for CLIP-like models."""

    def __init__(self, model, preprocess, tokenizer, spec: str = ""):
        super().__init__()
        self.model, self._preprocess, self._tokenizer, self.spec = model, preprocess, tokenizer, spec
        self.preprocess_cfg = dict(getattr(getattr(model, "visual", None), "preprocess_cfg", {}) or {})

    @classmethod
    def from_spec(cls, spec: str, device="cpu", precision: str = "fp32") -> OpenClipContrastive:
        open_clip = import_open_clip()
        name, pretrained = parse_spec(spec)
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device,
                                                                     precision=precision)
        return cls(model.eval(), preprocess, open_clip.get_tokenizer(name), spec=spec)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, images) -> torch.Tensor:
        return torch.stack([self._preprocess(image.convert("RGB")) for image in images])

    def tokenize(self, texts) -> torch.Tensor:
        return self._tokenizer(list(texts))

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.model.encode_image(pixel_values, normalize=True)

    def get_text_features(self, input_ids: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.model.encode_text(input_ids, normalize=True)
