"""Build a dataset folder's builder into the Hugging Face datasets cache: atomically, recorded, never silently.

After :func:`build`, ``load_dataset(NAME)`` and ``load_dataset(NAME, CONFIG)`` work from any directory
in a fresh interpreter (with ``HF_HUB_OFFLINE=1``, or whenever the Hub has no repo of that name):
datasets falls back to a build of that name in its cache, at
``<cache>/<name>/<config>/<version>/<hash>/`` (``datasets/packaged_modules/cache/cache.py``,
``_find_hash_in_cache``).

Atomic: datasets writes a build into ``<hash>.incomplete`` beside its final place, and its cache
fallback globs ``<cache>/<name>/*/*/*``, which includes that half-written folder. A build is therefore
prepared under ``<cache>/.diffbench_staging/`` and exchanged with the previous build in one
``renameat2(RENAME_EXCHANGE)`` call: at every instant the path holds the old build or the new one,
so a kill at any moment leaves the last good build. Where the kernel or file system cannot exchange,
two renames are used and a journal (``restore.json``) lets the next build put the old one back.

Recorded: every build writes its source (:mod:`diffbench.data.provenance`) beside its Arrow files, and
notes it in the description of its ``dataset_info.json``; a synthetic build also gets the synthetic
data's own description and licence there. A local folder is fingerprinted from its files' names,
sizes and modification times (``fingerprint_kind: "stat"``, the default: the builder alone reads the
bytes, once), or from every byte on request (``"content"``, ``diffbench build --fingerprint content``);
a folder that changes while it is built fails the build, so the record matches what was built.

Never silent: building a configuration over a build from another source (another folder, the
sample, the Hub, another seed or size) raises :class:`SourceConflictError`, naming the existing
build's source, unless ``overwrite=True``.

Which configuration a bare ``load_dataset(NAME)`` gives: datasets takes the most recently modified
build of that name. Every build therefore leaves the default configuration's folder the newest,
honestly: a default-configuration build is dated the current time just before it is swapped into
place, and before a non-default build (dated when it was written) is swapped in, the default build is
touched to the current time. With the default configuration not built, the bare name gives
the most recently built configuration. Writing into a build folder afterwards (a ``Dataset.map``
cache file) also makes that build the newest: :func:`keep_default_newest`, or any ``diffbench build``
of that name, restores the order (datasets' fallback offers no other handle than the date).

    >>> from diffbench.data.building import build_hash
    >>> len(build_hash("vismin", "bench"))
    16
"""

from __future__ import annotations

import collections
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import diffbench
from diffbench.data import provenance, samples
from diffbench.data.hub_folders import hub_folder, load_module
from diffbench.data.image_checks import special_file_kind
from diffbench.files import clean_staging, replace_directory

# ``datasets`` (about a second to import), ``huggingface_hub`` and ``filelock`` (which imports asyncio,
# ~60 ms) are imported by the functions that use them: the CLI imports its command modules at start-up,
# and they import this one (``diffbench --help`` should not pay for a build).

STAGING_DIRNAME = ".diffbench_staging"


class NotBuiltError(FileNotFoundError):
    """The dataset (or configuration) has not been built into the cache yet."""


class SourceConflictError(ValueError):
    """A build would replace a build of the same configuration made from another source (``existing``:
    that build's provenance record)."""

    def __init__(self, message: str, existing: dict):
        super().__init__(message)
        self.existing = existing


@dataclass
class BuildSummary:
    """What one build wrote."""

    name: str
    config: str
    path: Path
    rows: dict[str, int]
    num_bytes: int
    seconds: float
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> rows
    provenance: dict = field(default_factory=dict)

    def format(self) -> str:
        lines = [f"{self.name}/{self.config}: built in {self.seconds:.2f} s, {self.num_bytes / 1e6:.1f} MB -> {self.path}"]
        if self.provenance:
            lines.append(f"  from {provenance.describe(self.provenance)}")
        for split, rows in self.rows.items():
            lines.append(f"  {split}: {rows:,} rows")
            for label, count in self.counts.get(split, {}).items():
                lines.append(f"    {label or '(none)':<14} {count:>8,}")
        return "\n".join(lines)


def cache_root() -> Path:
    """The HF datasets cache in use (``HF_DATASETS_CACHE`` or ``HF_HOME/datasets``)."""
    import datasets.config  # late: see the note at the imports

    return Path(datasets.config.HF_DATASETS_CACHE).expanduser()


def builder_class(name: str):
    """The ``DatasetBuilder`` subclass defined in ``datasets/<name>/<name>.py``."""
    import datasets  # late: see the note at the imports

    module = load_module("datasets", name)
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, datasets.DatasetBuilder) and value.__module__ == module.__name__:
            return value
    raise ValueError(f"datasets/{name}/{name}.py defines no DatasetBuilder")


def config_names(name: str) -> list[str]:
    return [config.name for config in builder_class(name).BUILDER_CONFIGS]


def default_config(name: str) -> str:
    cls = builder_class(name)
    return cls.DEFAULT_CONFIG_NAME or cls.BUILDER_CONFIGS[0].name


def build_hash(name: str, config: str) -> str:
    """A hash per builder source and configuration: distinct configs never share a cache folder."""
    source = (hub_folder("datasets", name) / f"{name}.py").read_bytes()
    return hashlib.sha256(source + b"\0" + config.encode()).hexdigest()[:16]


def config_builds(name: str, config: str) -> list[Path]:
    """The build folders of one configuration in the cache (normally one), newest last."""
    folder = cache_root() / name / config
    builds = [p for p in folder.glob("*/*") if p.is_dir() and not p.name.endswith(".incomplete")]
    return sorted(builds, key=lambda p: p.stat().st_mtime)


def current_build(name: str, config: str) -> Path | None:
    """The build ``load_dataset(name, config)`` reads (the newest), or ``None``."""
    builds = config_builds(name, config)
    return builds[-1] if builds else None


def existing_provenance(name: str, config: str) -> dict | None:
    """The provenance recorded by the current build of ``name/config`` (``None`` when not built)."""
    build = current_build(name, config)
    return None if build is None else provenance.of_folder(build)


def build_stamp(name: str, config: str | None = None) -> str | None:
    """A short string that changes on every rebuild of ``name/config`` (``None`` when not built).

    Cheap (a glob and a small JSON read): a long-running reader, such as the Space, compares it with
    the stamp of the data it loaded to notice a rebuild.
    """
    build = current_build(name, config or default_config(name))
    if build is None:
        return None
    record = provenance.of_folder(build)
    return f"{build.name}:{record.get('build_id') or build.stat().st_mtime_ns}"


# -- provenance of a planned build --------------------------------------------------------------------


def _official_repo(name: str, config: str) -> str | None:
    cls = builder_class(name)
    hook = getattr(cls, "official_repo_id", None)
    return hook(config) if callable(hook) else getattr(cls, "HUB_REPO_ID", None)


FINGERPRINT_KINDS = ("stat", "content")


def _source_files(path: Path) -> list[Path]:
    """Every file under ``path`` (or ``path`` itself), in name order; an unreadable folder is an error."""
    if not path.exists():
        raise ValueError(f"{path}: source path does not exist")
    if not path.is_dir():
        return [path]

    def fail(err: OSError):
        raise ValueError(f"{err.filename}: cannot read the source ({err.strerror})")

    return sorted(Path(root) / f for root, _, names in os.walk(path, onerror=fail) for f in names)


def folder_fingerprint(path: Path, kind: str = "stat") -> str:
    """``sha256:`` of every file under ``path``, in name order: its relative name and size, and

    - ``kind="stat"`` (the default): its modification time (``st_mtime_ns``). Costs one ``stat`` a
      file, whatever the sizes: the builder then reads the bytes once, not twice (the real VisMin
      training release is GBs). A rewrite keeping size and mtime is not seen (``touch -r`` does that).
    - ``kind="content"``: its bytes. Reads the whole source once more before the build.

    An unreadable file or folder is an error, never skipped; so is anything but a regular file or a
    folder (a FIFO, a socket, a device: :func:`~diffbench.data.image_checks.special_file_kind`), refused from
    its ``stat`` before anything opens it (a FIFO would block the build, ``/dev/zero`` never ends).

        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.parquet").write_bytes(b"rows")
        >>> folder_fingerprint(folder, "content") == folder_fingerprint(folder, "content") != folder_fingerprint(folder)
        True
    """
    if kind not in FINGERPRINT_KINDS:
        raise ValueError(f"fingerprint must be one of {FINGERPRINT_KINDS}, got {kind!r}")
    path = Path(path)
    digest = hashlib.sha256()
    for file in _source_files(path):
        relative = file.name if file == path else file.relative_to(path).as_posix()
        try:
            info = os.stat(file)  # before anything opens it: a FIFO would block, a device never end
            special = special_file_kind(info.st_mode)
            if special is not None:
                raise ValueError(f"{file}: not a regular file ({special}); a source holds only regular files "
                                 "and folders")
            if kind == "stat":
                if not os.access(file, os.R_OK):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
                digest.update(f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
                continue
            with open(file, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                digest.update(f"{relative}\0{size}\0".encode())
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as err:
            raise ValueError(f"{file}: cannot read the source ({err.strerror or err})") from None
    return "sha256:" + digest.hexdigest()


def planned_provenance(name: str, config: str, source: str, repo_id: str | None = None,
                       revision: str | None = None) -> dict:
    """The provenance of building ``name/config`` from ``source`` (``"hub"`` or a local folder), without
    the local folder's fingerprint (:func:`build` adds it from the snapshot it takes)."""
    import datasets  # late: see the note at the imports

    record = {"dataset": name, "config": config, "diffbench_version": diffbench.__version__,
              "datasets_version": datasets.__version__}
    if source == "hub":
        return {**record, "source": "hub", "synthetic": False,
                "repo_id": repo_id or _official_repo(name, config), "revision": revision}
    folder = Path(source).expanduser().resolve()
    record.update(source="local", synthetic=False, folder=str(folder))
    return record


def check_replaceable(name: str, config: str, planned: dict) -> None:
    """Raise :class:`SourceConflictError` when ``name/config`` is built from another source than ``planned``."""
    existing = existing_provenance(name, config)
    if existing is None or provenance.same_source(existing, planned):
        return
    raise SourceConflictError(
        f"{name}/{config} is already built from {provenance.describe(existing)}; building it from "
        f"{provenance.describe(planned)} would replace it: pass --overwrite (overwrite=True in Python) to replace it", existing
    )


# -- building ---------------------------------------------------------------------------------------------


def _record_in_build(folder: Path, record: dict) -> None:
    """Write the provenance beside the Arrow files and note it in ``dataset_info.json``."""
    info_path = folder / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if record.get("synthetic") and info.get("homepage"):
        record["upstream_homepage"] = info["homepage"]  # the real dataset, which the card points to
    (folder / provenance.PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if record.get("synthetic"):
        info["description"] = record.get("description") or provenance.SYNTHETIC_NOTE
        info["license"] = record.get("license", "")
        info["homepage"] = record.get("homepage", "")
    info["description"] = f"{info.get('description', '').rstrip()}\n\nBuilt by diffbench from {provenance.describe(record)}.\n"
    info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")  # key order kept: it is the split order


def _touch(folder: Path | None) -> None:
    if folder is not None and folder.is_dir():
        os.utime(folder)  # the current time


def keep_default_newest(name: str) -> Path | None:
    """Date the default configuration's build now, so the bare ``load_dataset(name)`` gives it again.

    Every build does this; call it after writing into another configuration's build folder (a
    ``Dataset.map`` without ``keep_in_memory`` writes its cache file there, which makes that build the
    newest). Returns the build touched (``None`` when the default configuration is not built).
    """
    build = current_build(name, default_config(name))
    _touch(build)
    return build


def build(name: str, config: str, num_proc: int | None = None, *, overwrite: bool = False,
          provenance_record: dict | None = None, fingerprint: str = "stat", source_snapshot: str | None = None,
          **config_kwargs) -> BuildSummary:
    """Run ``datasets/<name>/<name>.py`` for one configuration into the datasets cache.

    ``config_kwargs`` go to the builder's config (for example ``source=``). ``provenance_record``
    replaces the recorded source (the embedded samples pass their synthetic description). Errors
    raised while reading the source come out as they are (not wrapped), and leave the previous
    build in place.

    A local folder is fingerprinted (:func:`folder_fingerprint`) by ``fingerprint``: ``"stat"``
    (default: names, sizes and modification times, no byte read twice) or ``"content"`` (its bytes,
    hashed before the build). Either way, the folder's ``stat`` fingerprint is taken before the
    build (``source_snapshot``, when the caller took it) and again after it: a source that changed
    while it was read is an error, and nothing is replaced, so the recorded fingerprint is the one
    of what was built.
    """
    if config not in config_names(name):
        raise ValueError(f"{name} has no configuration {config!r}; choose from {config_names(name)}")
    source = config_kwargs.get("source", "hub")
    local = Path(source).expanduser() if source != "hub" else None
    if local is not None and local.exists():
        source_snapshot = source_snapshot or folder_fingerprint(local, "stat")  # first: any later change is seen
    record = _build_record(name, config, config_kwargs, provenance_record, local, fingerprint, source_snapshot)
    if not overwrite:
        check_replaceable(name, config, record)
    root = cache_root()
    staging_root = root / STAGING_DIRNAME
    staging_root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _file_lock(staging_root / f"{name}-{config}.lock"):
        clean_staging(staging_root)
        if not overwrite:  # again under the lock: another process may have built it meanwhile
            check_replaceable(name, config, record)
        staging = staging_root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            digest = build_hash(name, config)
            info = _prepare_in(staging, name, config, digest, num_proc, config_kwargs)
            if source_snapshot and folder_fingerprint(local, "stat") != source_snapshot:
                raise ValueError(f"{local}: the source changed while it was being built (a file was written, added or "
                                 "removed); nothing was replaced: build again once it is complete")
            _stamp(record)
            _record_in_build(staging / "final", record)
            destination = root / name / config / str(info.version or builder_class(name).VERSION) / digest
            _swap_into_place(name, config, staging, destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return BuildSummary(
        name=name,
        config=config,
        path=destination,
        rows={split: split_info.num_examples for split, split_info in (info.splits or {}).items()},
        num_bytes=sum(f.stat().st_size for f in destination.glob("*.arrow")),
        seconds=time.perf_counter() - started,
        provenance=record,
    )


def _build_record(name: str, config: str, config_kwargs: dict, given: dict | None, local: Path | None,
                  fingerprint: str, source_snapshot: str | None) -> dict:
    """What a build of ``name/config`` records as its source: ``given`` (copied), else the planned provenance
    of the source in ``config_kwargs``; the fingerprint of the ``local`` folder added where it is missing."""
    record = dict(given) if given else planned_provenance(
        name, config, config_kwargs.get("source", "hub"), config_kwargs.get("repo_id"), config_kwargs.get("revision"))
    record.update(dataset=name, config=config)
    if record.get("source") == "local" and "fingerprint" not in record and source_snapshot:
        record.update(fingerprint=source_snapshot if fingerprint == "stat" else folder_fingerprint(local, fingerprint),
                      fingerprint_kind=fingerprint)
    return record


def _file_lock(path: Path):
    """A ``filelock.FileLock`` on ``path`` (held across processes)."""
    from filelock import FileLock  # late: see the note at the imports

    return FileLock(str(path))


def _prepare_in(staging: Path, name: str, config: str, digest: str, num_proc: int | None, config_kwargs: dict):
    """Run the builder into ``staging/final`` (its download cache in ``staging/cache``); its ``DatasetInfo``."""
    import datasets  # late: see the note at the imports

    builder = builder_class(name)(config_name=config, dataset_name=name, hash=digest, cache_dir=str(staging / "cache"),
                                  **config_kwargs)
    try:
        builder.download_and_prepare(output_dir=str(staging / "final"), num_proc=num_proc,
                                     download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD)
    except datasets.exceptions.DatasetGenerationError as err:
        # Surface the builder's own error (it names file, row and column).
        raise (err.__cause__ or err) from None
    return builder.info


def _stamp(record: dict) -> None:
    """Add what is known once a build succeeded: the Hub commit it read, when it was built, a new build id."""
    if record["source"] == "hub":
        record["revision"] = _resolved_revision(record) or record.get("revision")
    record.update(built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), build_id=uuid.uuid4().hex)


def _swap_into_place(name: str, config: str, staging: Path, destination: Path) -> None:
    """Swap ``staging/final`` in at ``destination``, the default configuration's build kept the newest, and
    move this configuration's builds of an older builder version or hash into ``staging`` (removed with it)."""
    default = default_config(name)
    # One swap at a time per dataset name, so the default config's "newest" order holds.
    with _file_lock(staging.parent / f"{name}.swap.lock"):
        # The default config's build is the newest at every instant: dated now before it
        # appears, or touched now before another config's build (dated earlier) appears.
        _touch(staging / "final" if config == default else current_build(name, default))
        replace_directory(staging / "final", destination, staging / "previous")
        for old in config_builds(name, config):
            if old != destination:
                old.rename(staging / f"older-{uuid.uuid4().hex[:8]}")


def _resolved_revision(record: dict) -> str | None:
    """The commit of the Hub snapshot a build read (from the local Hub cache; no network)."""
    from huggingface_hub import snapshot_download  # late: see the note at the imports

    try:
        path = snapshot_download(record["repo_id"], repo_type="dataset", revision=record.get("revision"),
                                 local_files_only=True)
    except Exception:  # noqa: BLE001 - the revision is informative; the build itself succeeded
        return None
    return Path(path).name


def label_counts(dataset) -> dict[str, dict[str, int]]:
    """Rows per category (or per change type) for each split, for the closing summary."""
    counts = {}
    for split, ds in dataset.items():
        for column in ("category", "change_types"):
            if column not in ds.column_names:
                continue
            values = ds.select_columns([column])[column]
            feature = ds.features[column]
            if column == "change_types":
                values = [label for labels in values for label in labels]
            elif hasattr(feature, "int2str"):
                values = feature.int2str(list(values))
            counts[split] = dict(sorted(collections.Counter(values).items()))
            break
    return counts


def build_configs(name: str, configs: list[str], source: str, num_proc=None, repo_id=None, revision=None,
                  overwrite: bool = False, fingerprint: str = "stat", **sample_options) -> list[BuildSummary]:
    """Build each config from one source (``"hub"``, ``"sample"`` or a folder); summaries in order.

    Every configuration is checked against its existing build before any is built, so a conflict
    leaves all of them as they were. A ``sample`` source is generated once into a temp folder and
    recorded as synthetic (n, seed, image size). A folder is fingerprinted once, by ``fingerprint``
    (``"stat"`` or ``"content"``, see :func:`build`), for every config.
    """
    if fingerprint not in FINGERPRINT_KINDS:
        raise ValueError(f"fingerprint must be one of {FINGERPRINT_KINDS}, got {fingerprint!r}")
    records = _planned_records(name, configs, source, repo_id, revision, overwrite, sample_options)
    options = {"source": source, **({"repo_id": repo_id} if repo_id else {}),
               **({"revision": revision} if revision else {})}
    summaries = []
    with tempfile.TemporaryDirectory(prefix=f"diffbench-{name}-sample-") as scratch:
        snapshot = None
        if source == "sample":
            options["source"] = str(samples.write_sample(name, Path(scratch), **sample_options))
        elif source != "hub" and configs:
            snapshot, records = _with_fingerprint(records, Path(source).expanduser(), fingerprint)
        for config in configs:
            summary = build(name, config, num_proc=num_proc, overwrite=overwrite, source_snapshot=snapshot,
                            provenance_record=None if source == "hub" else records[config], **options)
            summary.counts = label_counts(load_built(name, config))
            summaries.append(summary)
    return summaries


def _planned_records(name: str, configs: list[str], source: str, repo_id: str | None, revision: str | None,
                     overwrite: bool, sample_options: dict) -> dict[str, dict]:
    """Config -> the provenance its build will record (a local folder's fingerprint not yet in it), each
    checked against the existing build unless ``overwrite``."""
    records = {}
    for config in configs:
        if source == "sample":
            records[config] = {**samples.sample_provenance(name, **sample_options), "dataset": name, "config": config}
        else:
            records[config] = planned_provenance(name, config, source, repo_id, revision)
        if not overwrite:
            check_replaceable(name, config, records[config])
    return records


def _with_fingerprint(records: dict[str, dict], folder: Path, fingerprint: str) -> tuple[str, dict[str, dict]]:
    """The ``stat`` snapshot of ``folder``, and ``records`` with its fingerprint by ``fingerprint`` added."""
    snapshot = folder_fingerprint(folder, "stat")  # first, so a change during the content hash is seen
    digest = snapshot if fingerprint == "stat" else folder_fingerprint(folder, fingerprint)
    return snapshot, {config: {**record, "fingerprint": digest, "fingerprint_kind": fingerprint}
                      for config, record in records.items()}


def load_built(name: str, config: str | None = None, split: str | None = None):
    """A built dataset, read from the cache without touching the network.

    The same data ``load_dataset(name, config)`` gives after ``diffbench build``; a
    :class:`NotBuiltError` says which command builds it when it is missing; a name diffbench has no builder
    for is a ValueError naming the known ones (never advice to build it).
    """
    from datasets.packaged_modules.cache import cache  # late: see the note at the imports

    hub_folder("datasets", name)

    logger = logging.getLogger(cache.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "found the latest cached configuration" warning is noise here
    try:
        builder = cache.Cache(
            dataset_name=name, config_name=config, version="auto", hash="auto", cache_dir=str(cache_root())
        )
    except ValueError as err:
        if "Couldn't find cache" not in str(err):
            raise
        option = f" --config {config}" if config else ""
        raise NotBuiltError(f"{name}{'/' + config if config else ''} is not built: run `diffbench build {name}{option}`") from None
    finally:
        logger.setLevel(level)
    return builder.as_dataset(split=split)
