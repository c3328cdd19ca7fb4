"""VisMin-style hard-negative contrastive fine-tuning of CLIP-like models (``diffbench train``).

The recipe (VisMin, NeurIPS 2024, section 5): every batch holds **both** images and **both** captions of
each minimal-change pair, so the only thing telling a caption from its pair's other caption (and an image
from its edited twin) is the one changed object, attribute, count or relation; each pair is the other's
hard negative. The loss is the symmetric InfoNCE of CLIP over the batch's ``2B x 2B`` caption-image
logits (caption -> image and image -> caption cross-entropy, averaged). Identical captions inside a batch
(the synthetic data repeats some) count as positives of each other rather than as negatives.

The ablation (``hard_negatives=False``) keeps everything else (the same items, batch size, steps and
schedule) but puts the two halves of every pair into *different* batches, so a batch's negatives are
random other samples.

Any transformers model whose forward takes ``input_ids``/``pixel_values`` and returns
``logits_per_text`` trains (CLIP, SigLIP, ALIGN, ...). Runs on CPU or one GPU as it is, and on several
GPUs under ``accelerate launch`` (each process takes whole batches, so pairs stay together; the loss is
computed per process, negatives are not gathered across processes).

A run shows one progress bar, saves a checkpoint at the end of every epoch (``OUT/checkpoint/``;
``resume=True`` continues from it with the same batches and schedule) and, at the end, scores the model
on a held-out synthetic VisMin bench (new scenes, a seed the training data did not use) or on a built
benchmark. Scores come from the ``vismin_group_score`` metric (``metrics/vismin_group_score/``), the
scorer of every VisMin result in diffbench: training has no rule of its own.

What can go wrong ends in one line naming the file or the setting (a ``ValueError``, exit 2 in the CLI)
and leaves nothing half-written: a model that is neither a folder nor cached (offline) is refused before
any work (the harness's own checks, :func:`~diffbench.training.model_loading.check_model`); a damaged
``trainer_state.pt`` is named, never unpickled; a loss or parameter that stops being finite stops the run
at that step (:class:`~diffbench.training.loop.TrainingDiverged`) before anything of it is saved; the
final model is staged and moved in whole.

Where things live (import them from their module; this package re-exports nothing):

- :mod:`~diffbench.training.settings`: ``TrainConfig`` (what a run does) and the special option values;
- :mod:`~diffbench.training.pair_batches`: the pairs as batches (data spec, sampler, collate);
- :mod:`~diffbench.training.loss`: the contrastive loss;
- :mod:`~diffbench.training.model_loading`: the model a run starts from (checks, a fresh tiny CLIP, loading);
- :mod:`~diffbench.training.checkpoints`: the run folder (epoch checkpoints, resuming, the final save);
- :mod:`~diffbench.training.evaluation`: the held-out bench and the scores, through the metric;
- :mod:`~diffbench.training.loop`: ``train()`` itself (set-up, steps, divergence, finish).

    >>> import numpy as np
    >>> from diffbench.training.evaluation import score_similarities
    >>> sims = np.array([[0.9, 0.1, 0.2, 0.8],   # right both ways
    ...                  [0.5, 0.6, 0.1, 0.7],   # text right; image wrong (T0_I1 0.6 > T0_I0 0.5)
    ...                  [0.5, 0.5, 0.1, 0.9]])  # tie T0_I0 = T0_I1: image wrong (strict >), text right
    >>> results = score_similarities(sims, ["object", "object", "counting"])
    >>> results["per_category"]["object"]
    {'text_score': 100.0, 'image_score': 50.0, 'group_score': 50.0, 'num_samples': 2}
"""
