"""The evaluation harness behind ``diffbench eval``: any Hugging Face model (or an OpenAI-compatible chat
API) on any task, batched, resumable, with a run record. It knows no benchmark: a task (VisMin's in
:mod:`diffbench.vismin.tasks`, the difference-captioning sets' in :mod:`diffbench.captions.tasks`, named by
:mod:`diffbench.tasks`) is handed to the loop.

One concept a module:

- :mod:`~diffbench.harness.options`: what a run is asked to do (``RunOptions``, shared by every task) and
  its defaults.
- :mod:`~diffbench.harness.task`: the task interface: a task declares its data, protocol, step, parsing,
  scorer and report.
- :mod:`~diffbench.harness.loop`: the one run loop: resume, devices, processes, batching, bad images,
  progress, outputs; for local models and for APIs.
- :mod:`~diffbench.harness.chat`: chat models: the protocol (generate or likelihood, combined or separate
  images, prompt templates, image splitting), batched local steps and the API step.
- :mod:`~diffbench.harness.models`: which kind a checkpoint is, loading it safely (no pickle unless
  allowed, corrupt files named).
- :mod:`~diffbench.harness.record`: package versions, weights and dataset fingerprints (``run.json``).
- :mod:`~diffbench.harness.runtime`: device, dtype, ``accelerate`` processes, out-of-memory back-off.
- :mod:`~diffbench.harness.data`: the DataLoader (worker processes decode and preprocess the images).
- :mod:`~diffbench.harness.running`: the batch loop over the DataLoader, split over processes.
- :mod:`~diffbench.harness.outputs`: saved predictions (resume), the run record check, files.
"""
