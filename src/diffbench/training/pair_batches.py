"""Minimal-change pairs as training batches: the ``--data`` spec, the built dataset, the batch order, the collate.

An item is one side of a pair: item ``2 * p + side`` is the original (side 0) or the edit (side 1) of pair
``p``. :class:`PairBatchSampler` decides which items share a batch (the recipe: both sides of a pair; the
ablation: never), :class:`PairCollate` turns a batch of items into the model's inputs.
"""

from __future__ import annotations

import math

from diffbench.data.building import load_built

PAIR_COLUMNS = ("image_0", "text_0", "image_1", "text_1")


def parse_data_spec(spec: str) -> tuple[str, str, str]:
    """``"vismin:pairs"`` -> ``("vismin", "pairs", "train")``; ``NAME:CONFIG[:SPLIT]``.

    >>> parse_data_spec("vismin:bench:test")
    ('vismin', 'bench', 'test')
    """
    parts = spec.split(":")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise ValueError(f"--data must look like NAME:CONFIG[:SPLIT] (e.g. vismin:pairs), got {spec!r}")
    name, config = parts[:2]
    split = parts[2] if len(parts) == 3 else ("test" if config == "bench" else "train")
    return name, config, split


def load_pairs(spec: str):
    """A built dataset with ``image_0, text_0, image_1, text_1`` columns (``diffbench build`` first)."""
    dataset = load_built(*parse_data_spec(spec))
    missing = [c for c in PAIR_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{spec} has no column(s) {missing}: training needs minimal-change pairs (vismin:pairs)")
    return dataset


class PairBatchSampler:
    """Batches of item indices; item ``2 * p + side`` is side 0 or 1 (original or edit) of pair ``p``.

    ``hard_negatives=True``: a batch is ``pairs_per_batch`` pairs, both sides of each.
    ``hard_negatives=False``: the same number of items, but side 0 of one chunk of pairs with side 1 of
    another, so the two halves of a pair never meet in a batch.
    A new shuffle each time it is iterated (each epoch), the same in every process (seeded).

    >>> sampler = PairBatchSampler(4, 2, hard_negatives=True, seed=0)
    >>> [sorted(b) for b in sampler]
    [[0, 1, 2, 3], [4, 5, 6, 7]]
    >>> apart = PairBatchSampler(6, 2, hard_negatives=False, seed=0)
    >>> any(2 * p in b and 2 * p + 1 in b for b in apart for p in range(6))
    False
    """

    def __init__(self, num_pairs: int, pairs_per_batch: int, hard_negatives: bool = True, seed: int = 0):
        if num_pairs < 1 or pairs_per_batch < 1:
            raise ValueError("need at least one pair and one pair a batch")
        self.num_pairs, self.pairs_per_batch = num_pairs, pairs_per_batch
        self.hard_negatives, self.seed, self.epoch = hard_negatives, seed, 0

    def __len__(self) -> int:
        return math.ceil(self.num_pairs / self.pairs_per_batch)

    def __iter__(self):
        import torch  # deferred: the CLI imports this module to start up, torch only to train

        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(self.num_pairs, generator=generator).tolist()
        chunks = [order[i : i + self.pairs_per_batch] for i in range(0, self.num_pairs, self.pairs_per_batch)]
        for k, chunk in enumerate(chunks):
            if self.hard_negatives or len(chunks) == 1:
                yield [2 * p + side for p in chunk for side in (0, 1)]
            else:
                yield [2 * p for p in chunk] + [2 * p + 1 for p in chunks[(k + 1) % len(chunks)]]


class PairItems:
    """The dataset seen as items (image, caption): item ``2 * p + side`` is side ``side`` of pair ``p``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return 2 * len(self.dataset)

    def __getitem__(self, index: int) -> int:
        return index


class PairCollate:
    """Item indices -> processor outputs and the captions (for the duplicate-caption mask)."""

    def __init__(self, dataset, processor, text_kwargs: dict):
        self.dataset, self.processor, self.text_kwargs = dataset, processor, text_kwargs

    def __call__(self, items: list[int]) -> dict:
        pairs = sorted({i // 2 for i in items})
        rows = self.dataset[pairs]
        where = {p: k for k, p in enumerate(pairs)}
        images = [rows[f"image_{i % 2}"][where[i // 2]].convert("RGB") for i in items]
        texts = [rows[f"text_{i % 2}"][where[i // 2]] for i in items]
        pixels = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        tokens = self.processor.tokenizer(texts, return_tensors="pt", **self.text_kwargs)
        return {"pixel_values": pixels, "texts": texts, **dict(tokens)}
