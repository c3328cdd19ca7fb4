"""VisMin with a contrastive (dual-encoder) model: the four caption-image similarities of each sample.

For a sample with images ``I0, I1`` and captions ``T0, T1`` the model encodes the two images and the
two captions; the submission's ``Tt_Ii`` is the cosine similarity of caption ``t`` and image ``i``
(the official scoring compares them with a strict ``>``; a positive logit scale or a bias, as CLIP and
SigLIP apply, changes no comparison). A batch costs one image-encoder call, one text-encoder call and
one device-to-host copy.
"""

from __future__ import annotations

from diffbench.harness.data import slice_inputs, split_good_bad, to_device
from diffbench.vismin.schema import SCORE_COLUMNS


def text_padding(model, processor) -> dict:
    """Tokeniser arguments: SigLIP-style models pool at the last position and were trained on texts
    padded to a fixed length, so they get ``padding="max_length"``; others pad to the batch's longest."""
    config = model.config
    text_config = getattr(config, "text_config", config)
    max_length = getattr(text_config, "max_position_embeddings", None)
    names = f"{getattr(config, 'model_type', '')} {type(processor).__name__}".lower()
    if "siglip" in names and max_length:
        return {"padding": "max_length", "max_length": max_length, "truncation": True}
    return {"padding": True, "truncation": True, "max_length": max_length}


class ContrastiveCollate:
    """Runs in a DataLoader worker: the processor over a batch's images (2 a sample) and captions."""

    def __init__(self, processor, text_kwargs: dict):
        self.image_processor = processor.image_processor
        self.tokenizer = processor.tokenizer
        self.text_kwargs = text_kwargs

    def __call__(self, items: list[dict]) -> dict:
        good, bad = split_good_bad(items)
        batch = {"indices": [item["index"] for item in good], "ids": [item["id"] for item in good], "bad": bad}
        if good:
            images = [image for item in good for image in item["images"]]
            texts = [text for item in good for text in item["texts"]]
            batch["image_inputs"] = dict(self.image_processor(images=images, return_tensors="pt"))
            batch["text_inputs"] = dict(self.tokenizer(texts, return_tensors="pt", **self.text_kwargs))
        return batch


class OpenClipCollate:
    """Runs in a DataLoader worker: an open_clip model's own preprocessing and tokeniser over a batch."""

    def __init__(self, model):
        self.preprocess, self.tokenize = model.preprocess, model.tokenize

    def __call__(self, items: list[dict]) -> dict:
        good, bad = split_good_bad(items)
        batch = {"indices": [item["index"] for item in good], "ids": [item["id"] for item in good], "bad": bad}
        if good:
            batch["image_inputs"] = {"pixel_values": self.preprocess([im for item in good for im in item["images"]])}
            batch["text_inputs"] = {"input_ids": self.tokenize([t for item in good for t in item["texts"]])}
        return batch


def projected(output):
    """The projected embedding from ``get_*_features``: a tensor, or (transformers 5) an output
    object whose ``pooler_output`` holds it."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for name in ("pooler_output", "image_embeds", "text_embeds"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    return output[0]


def pair_similarities(model, image_inputs: dict, text_inputs: dict):
    """``[n, 4]`` similarities (T0_I0, T0_I1, T1_I0, T1_I1) for n samples, on the model's device."""
    import torch

    image = projected(model.get_image_features(**image_inputs)).float()
    text = projected(model.get_text_features(**text_inputs)).float()
    image = torch.nn.functional.normalize(image, dim=-1).unflatten(0, (-1, 2))  # [n, image i, d]
    text = torch.nn.functional.normalize(text, dim=-1).unflatten(0, (-1, 2))  # [n, text t, d]
    return torch.einsum("ntd,nid->nti", text, image).flatten(1)  # [n, (t, i)]


class ContrastiveStep:
    """One batch -> ``[(index, {"id", "T0_I0", ...}), ...]``; out of memory, the runner halves the chunk."""

    columns = SCORE_COLUMNS

    def __init__(self, model, device, dtype, runner):
        self.model, self.device, self.dtype, self.runner = model, device, dtype, runner

    def __call__(self, batch: dict) -> list[tuple[int, dict]]:
        import torch

        n = len(batch["indices"])
        if n == 0:
            return []
        images = to_device(batch["image_inputs"], self.device, self.dtype)
        texts = to_device(batch["text_inputs"], self.device, self.dtype)

        def chunk(start, stop):
            return pair_similarities(self.model, slice_inputs(images, n, start, stop), slice_inputs(texts, n, start, stop))

        with torch.inference_mode():
            scores = torch.cat(self.runner.run(chunk, n)).cpu().tolist()  # the batch's one host sync
        return [
            (index, {"id": sample_id, **dict(zip(SCORE_COLUMNS, row))})
            for index, sample_id, row in zip(batch["indices"], batch["ids"], scores)
        ]
