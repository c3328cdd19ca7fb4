"""The evaluation harness behind ``diffbench eval``: any Hugging Face model on VisMin and the
difference-captioning sets, batched, with official submission files, tables and plots.

One concept a module:

- :mod:`~diffbench.harness.models`: which kind a model is (contrastive or image-text-to-text) and loading it.
- :mod:`~diffbench.harness.runtime`: device, dtype, ``accelerate`` processes, out-of-memory back-off.
- :mod:`~diffbench.harness.data`: the DataLoader (worker processes decode and preprocess the images).
- :mod:`~diffbench.harness.contrastive`: VisMin with a dual encoder (CLIP, SigLIP, ...): four similarities a sample.
- :mod:`~diffbench.harness.chat`: VisMin with a chat model: the four official questions, by option
  log-likelihood or by generation and the official lenient parser.
- :mod:`~diffbench.harness.captioning`: difference captions for the image-difference-captioning sets.
- :mod:`~diffbench.harness.outputs`: saved predictions (resume), submission files, results.json/.md, plots.
"""
