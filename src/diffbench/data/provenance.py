"""Where a built dataset came from, recorded at build time and carried into every result.

A build records its source beside its Arrow files (``PROVENANCE_FILE``, written by
:mod:`diffbench.data.building`); :func:`of_dataset` reads it back from a loaded ``datasets.Dataset``.
Every results.json carries the returned dict under ``"provenance"``; anything that shows a result
of a synthetic build says :data:`SYNTHETIC_NOTE`.

Keys (always present): ``dataset``, ``config``, ``source`` (``"hub"``, ``"local"``, ``"synthetic"`` or
``"unknown"``), ``synthetic`` (``True`` / ``False``, ``None`` when unknown); more per source:

- ``hub``: ``repo_id`` and ``revision`` (the commit read);
- ``local``: ``folder``, ``fingerprint`` (``sha256:``) and ``fingerprint_kind``: ``"stat"`` (the default:
  every file's relative path, size and modification time, no byte read) or ``"content"`` (every byte,
  ``--fingerprint content``);
- ``synthetic``: ``generator`` (the module), ``n``, ``seed``, ``image_size`` ([width, height]),
  ``license`` and ``description`` of the synthetic data;

and on every build ``built_at`` (UTC), ``build_id`` (new on every build), ``diffbench_version``,
``datasets_version``.

    >>> describe({"source": "synthetic", "n": 160, "seed": 0, "image_size": [320, 240]})
    'the synthetic sample (n=160, seed=0, 320x240 images)'
    >>> same_source({"source": "local", "folder": "/data/a"}, {"source": "local", "folder": "/data/b"})
    False
"""

from __future__ import annotations

import json
from pathlib import Path

PROVENANCE_FILE = "diffbench_provenance.json"
SYNTHETIC_NOTE = "synthetic sample: not comparable to published results"
UNKNOWN = {"dataset": None, "config": None, "source": "unknown", "synthetic": None}


def build_folder(dataset) -> Path | None:
    """The folder holding a loaded dataset's Arrow files (``None`` for an in-memory dataset).

    A ``DatasetDict`` gives its first split's folder (the splits of one build share it).
    """
    files = getattr(dataset, "cache_files", None) or []
    if isinstance(files, dict):
        files = next(iter(files.values()), [])
    return Path(files[0]["filename"]).parent if files else None


def of_folder(folder: Path) -> dict:
    """The provenance recorded in a build folder, or :data:`UNKNOWN` (a copy) when none was."""
    path = Path(folder) / PROVENANCE_FILE
    if not path.is_file():
        return dict(UNKNOWN)
    return {**UNKNOWN, **json.loads(path.read_text(encoding="utf-8"))}


def of_dataset(dataset) -> dict:
    """The provenance recorded by the build of ``dataset``, or :data:`UNKNOWN` (a copy) when none was."""
    folder = build_folder(dataset)
    return dict(UNKNOWN) if folder is None else of_folder(folder)


def is_synthetic(provenance: dict) -> bool:
    """Whether results with this provenance must carry :data:`SYNTHETIC_NOTE`."""
    return provenance.get("synthetic") is True


def source_identity(provenance: dict) -> tuple:
    """What makes two builds come from the same source.

    The same folder or Hub repo read again (new content, a newer revision) is the same source,
    refreshed; a synthetic sample is the same only with the same generator, n, seed and image size.
    """
    kind = provenance.get("source")
    if kind == "hub":
        return kind, provenance.get("repo_id")
    if kind == "local":
        return kind, provenance.get("folder")
    if kind == "synthetic":
        size = provenance.get("image_size")
        return (kind, provenance.get("generator"), provenance.get("n"), provenance.get("seed"),
                tuple(size) if size else None)
    return ("unknown",)


def same_source(a: dict, b: dict) -> bool:
    """Whether a build from ``b`` merely refreshes a build from ``a`` (an unknown source never does)."""
    return source_identity(a) != ("unknown",) and source_identity(a) == source_identity(b)


def describe(provenance: dict) -> str:
    """One phrase naming a build's source, for messages and cards."""
    kind = provenance.get("source")
    if kind == "hub":
        revision = provenance.get("revision")
        return f"the Hub repo {provenance.get('repo_id')}" + (f" at revision {revision}" if revision else "")
    if kind == "local":
        fingerprint = provenance.get("fingerprint")
        return f"the folder {provenance.get('folder')}" + (f" ({fingerprint[:19]}...)" if fingerprint else "")
    if kind == "synthetic":
        size = provenance.get("image_size")
        size_text = f", {size[0]}x{size[1]} images" if size else ""
        return f"the synthetic sample (n={provenance.get('n')}, seed={provenance.get('seed')}{size_text})"
    return "an unknown source (a build that recorded none)"
