"""BLIP scored as the VisMin paper scored it: image-text contrastive (ITC) similarity, not the ITM head.

rabiulcste/vismin ``evals/vlm/blip.py`` (``predict`` and the misnamed ``predict_itm``) scores an image and a
caption by the dot product of ``normalize(vision_proj(ViT CLS))`` and ``normalize(text_proj(text CLS))``
from BLIP's retrieval model (``evals/vlm/model_zoo/blip_models.py``, ``get_image_embeddings`` /
``get_text_embeddings``); the ITM head is never called for VisMin. In transformers that model is
``BlipForImageTextRetrieval`` (``Salesforce/blip-itm-base-flickr``, ``...-coco``), and
``model(..., use_itm_head=False).itm_score`` is exactly that cosine matrix.

Why a wrapper: ``AutoModel`` maps these checkpoints' ``BlipConfig`` to ``BlipModel``, whose
``get_image_features`` / ``get_text_features`` use *other* projection layers (``visual_projection``,
``text_projection``) that a retrieval checkpoint does not hold: they would load randomly initialised.

Interface (stable): :class:`BlipITC` ``.from_pretrained(model_id, **kwargs)``; ``get_image_features(pixel_values)``
and ``get_text_features(input_ids, attention_mask=None)`` return L2-normalised embeddings (float tensors,
one row per input), so the harness's contrastive path can use it like a CLIP; ``forward(pixel_values,
input_ids, attention_mask=None)`` returns the image x text similarity matrix. The processor is the
checkpoint's own (``AutoProcessor``: 384x384 bicubic, CLIP mean/std for the Salesforce checkpoints, as
the official ``image_preprocess``); the official code padded text to 35 tokens, which changes nothing
for the CLS embedding under the attention mask.
"""

from __future__ import annotations

import torch
from torch import nn


class BlipITC(nn.Module):
    """A ``BlipForImageTextRetrieval`` seen as a contrastive model (ITC embeddings)."""

    def __init__(self, retrieval_model):
        super().__init__()
        self.retrieval = retrieval_model
        self.config = retrieval_model.config

    @classmethod
    def from_pretrained(cls, model_id, **kwargs) -> BlipITC:
        from transformers import BlipForImageTextRetrieval  # seconds to import: only when a BLIP is loaded

        return cls(BlipForImageTextRetrieval.from_pretrained(model_id, **kwargs))

    @property
    def dtype(self) -> torch.dtype:
        return self.retrieval.dtype

    @property
    def device(self) -> torch.device:
        return self.retrieval.device

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> torch.Tensor:
        image_embeds = self.retrieval.vision_model(pixel_values=pixel_values).last_hidden_state  # (B, 1+P, D)
        return nn.functional.normalize(self.retrieval.vision_proj(image_embeds[:, 0, :]), dim=-1)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          **kwargs) -> torch.Tensor:
        text_embeds = self.retrieval.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return nn.functional.normalize(self.retrieval.text_proj(text_embeds[:, 0, :]), dim=-1)

    def forward(self, pixel_values, input_ids, attention_mask=None) -> torch.Tensor:
        return self.get_image_features(pixel_values) @ self.get_text_features(input_ids, attention_mask).T
