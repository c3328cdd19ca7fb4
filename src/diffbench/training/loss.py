"""The recipe's loss: CLIP's symmetric InfoNCE, with identical captions counted as positives of each other."""

from __future__ import annotations


def contrastive_loss(logits_per_text, texts: list[str]):
    """Symmetric InfoNCE over ``[M captions, M images]`` logits; item ``k``'s caption describes image ``k``.

    Captions equal to caption ``k`` (and their images) are positives of item ``k`` too, with the target
    probability shared among them.

    >>> import torch
    >>> logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    >>> round(float(contrastive_loss(logits, ["a", "b"])), 4)
    0.0067
    """
    import torch  # deferred: the CLI imports the training modules to start up, torch only to train

    index = {text: k for k, text in enumerate(dict.fromkeys(texts))}
    ids = torch.tensor([index[t] for t in texts], device=logits_per_text.device)
    same = (ids[:, None] == ids[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)  # symmetric mask: the same targets both ways
    logits = logits_per_text.float()
    text_to_image = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
    image_to_text = -(targets * logits.t().log_softmax(dim=1)).sum(dim=1).mean()
    return (text_to_image + image_to_text) / 2
