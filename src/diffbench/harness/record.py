"""The run record: what ``run.json`` and ``results.json`` say about where a result came from.

- :func:`weights_fingerprint`: the model revision (a Hub checkpoint: the commit of the cached snapshot)
  or a hash of the weight files (a local folder), so that a resumed run notices new weights.
- :func:`dataset_fingerprint`: a hash of the rows' build (the Arrow files' names, sizes and modification
  times, the build's provenance, the row count and columns), so that a resumed run notices a rebuild.
- :func:`environment`: package versions, the date, the Python version.

    >>> sorted(environment())
    ['date', 'packages', 'python']
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("diffbench", "torch", "transformers", "datasets", "evaluate", "accelerate", "tokenizers",
            "safetensors", "pillow", "numpy", "open_clip_torch", "torchvision")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on (absent ones left out)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "packages": package_versions()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_fingerprint(model: str, revision: str | None = None) -> dict:
    """``{"source": "local", "sha256": ...}`` (every weight file of a local folder, hashed by content) or
    ``{"source": "hub", "repo": ..., "revision": <commit>}`` (from the snapshot the Hub cache holds).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()); _ = (folder / "model.safetensors").write_bytes(b"weights")
    >>> weights_fingerprint(str(folder))["sha256"][:12]
    '337cce73f9ed'
    """
    if model.startswith("open_clip:"):
        return {"source": "open_clip", "spec": model.removeprefix("open_clip:")}
    path = Path(model).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        digest = hashlib.sha256()
        for file in files:
            digest.update(f"{file.relative_to(path).as_posix()}\0{_sha256(file)}\n".encode())
        return {"source": "local", "files": len(files), "sha256": digest.hexdigest()}
    commit = None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json", revision=revision)
        if isinstance(cached, str):
            commit = Path(cached).parent.name  # .../snapshots/<commit>/config.json
    except Exception:  # noqa: BLE001 - a fingerprint is best effort for remote ids; the revision still says
        commit = None
    return {"source": "hub", "repo": model, "revision": commit or revision}


def dataset_fingerprint(dataset, data_files=None) -> str:
    """A short hash that changes when the rows' build changes (a rebuild, other data files).

    >>> import datasets
    >>> a = dataset_fingerprint(datasets.Dataset.from_dict({"id": ["x"]}))
    >>> a == dataset_fingerprint(datasets.Dataset.from_dict({"id": ["y"]}))
    False
    """
    from diffbench.provenance import of_dataset

    digest = hashlib.sha256()
    files = [Path(f["filename"]) for f in getattr(dataset, "cache_files", None) or []]
    files += [Path(p) for p in data_files or []]
    for file in files:
        targets = sorted(file.rglob("*")) if file.is_dir() else [file]
        for target in targets:
            if target.is_file():
                stat = target.stat()
                digest.update(f"{target.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    if not files:
        digest.update(str(getattr(dataset, "_fingerprint", "")).encode())  # an in-memory dataset
    digest.update(json.dumps(of_dataset(dataset), sort_keys=True, default=str).encode())
    digest.update(f"{len(dataset)}\0{dataset.column_names}".encode())
    return digest.hexdigest()[:16]
