"""Where a built dataset came from, recorded at build time and carried into every result.

A build records its source beside its Arrow files (``PROVENANCE_FILE``); :func:`of_dataset` reads it
back from a loaded ``datasets.Dataset``. Every results.json carries the returned dict under
``"provenance"``; anything that shows a result of a synthetic build says :data:`SYNTHETIC_NOTE`.

Keys (always present): ``dataset``, ``config``, ``source`` (``"hub"``, ``"local"``, ``"synthetic"`` or
``"unknown"``), ``synthetic`` (``True`` / ``False``, ``None`` when unknown); more per source (repo id and
revision, folder and fingerprint, n and seed).
"""

from __future__ import annotations

import json
from pathlib import Path

PROVENANCE_FILE = "diffbench_provenance.json"
SYNTHETIC_NOTE = "synthetic sample: not comparable to published results"
UNKNOWN = {"dataset": None, "config": None, "source": "unknown", "synthetic": None}


def build_folder(dataset) -> Path | None:
    """The folder holding a loaded dataset's Arrow files (``None`` for an in-memory dataset)."""
    files = getattr(dataset, "cache_files", None) or []
    return Path(files[0]["filename"]).parent if files else None


def of_dataset(dataset) -> dict:
    """The provenance recorded by the build of ``dataset``, or :data:`UNKNOWN` (a copy) when none was."""
    folder = build_folder(dataset)
    path = folder / PROVENANCE_FILE if folder is not None else None
    if path is None or not path.is_file():
        return dict(UNKNOWN)
    return {**UNKNOWN, **json.loads(path.read_text(encoding="utf-8"))}


def is_synthetic(provenance: dict) -> bool:
    """Whether results with this provenance must carry :data:`SYNTHETIC_NOTE`."""
    return provenance.get("synthetic") is True
