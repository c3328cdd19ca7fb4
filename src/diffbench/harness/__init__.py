"""The evaluation harness behind ``diffbench eval``: any Hugging Face model (or an OpenAI-compatible chat
API) on VisMin and the difference-captioning sets, batched, with official submission files, a run
record, tables and figures.

One concept a module:

- :mod:`~diffbench.harness.options`: what a run is asked to do (``RunOptions``, shared by every task).
- :mod:`~diffbench.harness.task`: the task interface and registry (``diffbench list tasks``): a task
  declares its data, protocol, step, parsing, scorer and report.
- :mod:`~diffbench.harness.loop`: the one run loop: resume, devices, processes, batching, bad images,
  progress, outputs; for local models and for APIs.
- :mod:`~diffbench.vismin.tasks`: VisMin's two tasks (contrastive similarities; a chat model's four
  official questions, read by the lenient parser, with per-question accuracy and unparseable counts).
- :mod:`~diffbench.captions.tasks`: one difference-captioning task per dataset.
- :mod:`~diffbench.harness.chat`: chat models: the protocol (generate or likelihood, combined or separate
  images, prompt templates, image splitting), batched local steps and the API step.
- :mod:`~diffbench.vismin.contrastive`: a dual encoder's four similarities a sample.
- :mod:`~diffbench.harness.models`: which kind a checkpoint is, loading it safely (no pickle unless
  allowed, corrupt files named).
- :mod:`~diffbench.harness.record`: package versions, weights and dataset fingerprints (``run.json``).
- :mod:`~diffbench.vismin.preset_settings`: a published row's preset (:mod:`diffbench.vismin.presets`) as options.
- :mod:`~diffbench.harness.runtime`: device, dtype, ``accelerate`` processes, out-of-memory back-off.
- :mod:`~diffbench.harness.data`: the DataLoader (worker processes decode and preprocess the images).
- :mod:`~diffbench.harness.running`: the batch loop over the DataLoader, split over processes.
- :mod:`~diffbench.harness.outputs`: saved predictions (resume), the run record check, files.
"""
