"""Publish a built dataset as a Hub-ready dataset repo folder: parquet shards and a dataset card.

The folder holds one sub-folder per configuration, ``<config>/<split>-00000-of-0000N.parquet`` (the
layout ``Dataset.push_to_hub`` writes), with the image bytes embedded, and a ``README.md`` whose YAML
declares the ``configs`` (the builder's default config marked ``default``), the ``dataset_info``
features and sizes, the license and the citation. Its prose is the card kept beside the builder
(``datasets/<name>/README.md``). ``load_dataset(folder)`` then gives the same features and rows as
the build, byte for byte, and ``load_dataset(folder, streaming=True)`` streams it.

The card carries each configuration's provenance (:mod:`diffbench.data.provenance`); the card of a
synthetic build describes the synthetic data and its licence, not the upstream's.

The folder is written beside its destination and swapped into place when complete (atomically where
the file system can), so an interrupted publish leaves nothing half-written at ``out_dir``. Every
published folder holds a marker file (:data:`MARKER`) listing the files that publish wrote;
``overwrite`` replaces those, and only in a folder holding the marker: never a folder ``publish`` did
not write, and ``out_dir`` naming a file is an error.

What the user added to a published folder stays (a ``.git`` of the Hub repo, notes): just before the
swap those entries are moved into the new folder, with a journal (:data:`KEPT_JOURNAL`), so the swap
brings them back in the same step; a publish killed in between has them put back by the next one. An
entry of the user's at a path the new publish writes is refused, by name (it would be replaced). A
marker of an older publish, which listed no files, counts every file as publish's only when the folder
holds nothing but what a publish writes (its card, index and parquet shards); else it is refused,
naming the rest. ``push`` uploads only the files publish wrote.

    >>> shard_count(num_bytes=1_200, max_shard_bytes=500)
    3
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import yaml

from diffbench import files as result_files
from diffbench.data import building, provenance
from diffbench.data.hub_folders import hub_folder

# ``datasets`` (about a second to import) and ``huggingface_hub`` are imported by the functions that use
# them: the CLI imports its command modules at start-up, and the publish command imports this one.

MAX_SHARD_BYTES = 500 * 1000 * 1000  # the Hub's recommendation for parquet shards
MARKER = ".diffbench-publish"  # in every folder publish writes: what --overwrite may replace
PROVENANCE_INDEX = "diffbench_provenance.json"  # config -> provenance, beside the card
KEPT_JOURNAL = "kept.json"  # in a publish's staging folder: the user's entries moved into the new folder
SHARD_NAME = re.compile(r"[\w.-]+-\d{5}-of-\d{5}\.parquet")  # what an older marker's configs held


def shard_count(num_bytes: int, max_shard_bytes: int = MAX_SHARD_BYTES) -> int:
    """How many shards keep each one under ``max_shard_bytes``."""
    return max(1, math.ceil(num_bytes / max_shard_bytes))


def load_configs(name: str, configs: list[str] | None = None) -> dict:
    """The built ``configs`` of ``name`` (default: every built one, default first), each a DatasetDict.

    A configuration named in ``configs`` but not built raises :class:`~diffbench.data.building.NotBuiltError`.
    """
    if configs:
        return {config: building.load_built(name, config) for config in configs}
    default = building.default_config(name)
    loaded = {}
    for config in [default] + [c for c in building.config_names(name) if c != default]:
        try:
            loaded[config] = building.load_built(name, config)
        except building.NotBuiltError:
            continue
    if not loaded:
        raise building.NotBuiltError(f"{name} is not built: run `diffbench build {name}` first")
    return loaded


def _split_card(text: str) -> tuple[dict, str]:
    """A card's YAML front matter (as a dict) and its markdown body."""
    if text.startswith("---"):
        _, front, body = text.split("---", 2)
        return yaml.safe_load(front) or {}, body.lstrip("\n")
    return {}, text


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` tag for a row count.

    >>> size_category(2084)
    '1K<n<10K'
    """
    bounds = [(10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M")]
    return next((tag for bound, tag in bounds if rows < bound), "n>10M")


def write_card(name: str, configs: dict[str, object], out_dir: Path) -> Path:
    """Write ``README.md``: the builder folder's card with ``configs`` and ``dataset_info`` added.

    Sizes, ``size_categories`` and the license describe what ``out_dir`` holds.
    """
    from datasets.info import DatasetInfosDict  # late: see the note at the imports
    from datasets.splits import SplitDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    template = hub_folder("datasets", name) / "README.md"
    front, body = _split_card(template.read_text(encoding="utf-8")) if template.is_file() else ({}, "")
    default = building.default_config(name)
    infos, metadata_configs, records = {}, {}, {}
    for config, dataset_dict in configs.items():
        first = next(iter(dataset_dict.values()))
        records[config] = provenance.of_dataset(first)
        info = first.info.copy()
        info.config_name = config
        info.splits = SplitDict({split: ds.info.splits[split] for split, ds in dataset_dict.items()})
        info.dataset_size = sum(ds.info.splits[split].num_bytes for split, ds in dataset_dict.items())
        info.download_size = sum(p.stat().st_size for p in (out_dir / config).glob("*.parquet"))
        infos[config] = info
        metadata_configs[config] = {
            "data_files": [{"split": split, "path": f"{config}/{split}-*"} for split in dataset_dict],
            **({"default": True} if config == default else {}),
        }
    if all(provenance.is_synthetic(record) for record in records.values()):
        front, body = synthetic_card(name, front, records, next(iter(infos.values())))
    licenses = sorted({info.license for info in infos.values() if info.license})
    if licenses:  # the licenses of what is published, not of every config the builder knows
        front["license"] = licenses[0] if len(licenses) == 1 else licenses
    most_rows = max(len(ds) for dataset_dict in configs.values() for ds in dataset_dict.values())
    front["size_categories"] = [size_category(most_rows)]
    card_data = DatasetCardData(**front)
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    MetadataConfigs(metadata_configs).to_dataset_card_data(card_data)
    if not body:
        first_info = next(iter(infos.values()))
        body = f"# {name}\n\n{first_info.description}\n\n## Citation\n\n```bibtex\n{first_info.citation}```\n"
    body = f"{body.rstrip()}\n\n{provenance_section(records)}"
    path = out_dir / "README.md"
    DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}").save(path)
    (out_dir / PROVENANCE_INDEX).write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    return path


def synthetic_card(name: str, front: dict, records: dict[str, dict], info) -> tuple[dict, str]:
    """Front matter and body for a build of the synthetic sample: its own data and licence."""
    record = next(iter(records.values()))
    pretty = front.get("pretty_name", name)
    kept = {key: front[key] for key in ("language", "task_categories") if key in front}
    front = {"pretty_name": f"{pretty} (synthetic sample)", **kept,
             "tags": [*front.get("tags", []), "synthetic"], "license": record.get("license")}
    body = (
        f"# {pretty}: synthetic sample\n\n"
        f"**{provenance.SYNTHETIC_NOTE[0].upper()}{provenance.SYNTHETIC_NOTE[1:]}.**\n\n"
        f"{record.get('description', '')}\n\n"
        f"It has the columns and layout of {pretty}, so code written for the real data runs on it; it holds "
        f"none of the real data (no upstream image or caption). The real dataset: {record.get('upstream_homepage') or info.homepage or 'see its card'}.\n\n"
        f"## Licence\n\n{record.get('license')}: every image and caption was generated by diffbench's own code.\n\n"
        f"## Citation of the benchmark whose layout it follows\n\n```bibtex\n{info.citation.strip()}\n```\n"
    )
    return front, body


def provenance_section(records: dict[str, dict]) -> str:
    """The card's "Provenance" section: where each configuration was built from."""
    lines = ["## Provenance", "", "| config | built from | built at (UTC) | diffbench |", "|---|---|---|---|"]
    for config, record in records.items():
        note = f" ({provenance.SYNTHETIC_NOTE})" if provenance.is_synthetic(record) else ""
        lines.append(f"| `{config}` | {provenance.describe(record)}{note} | {record.get('built_at', '')} | "
                     f"{record.get('diffbench_version', '')} |")
    lines += ["", f"The full records are in `{PROVENANCE_INDEX}`.", ""]
    return "\n".join(lines)


def check_out_dir(out_dir: Path, overwrite: bool) -> list[str]:
    """Refuse an ``out_dir`` publish must not write: a file, or a non-empty folder publish did not write (or
    whose older marker lists no files while other files are there). Returns the entries there that are
    the user's, to keep."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} exists and is not a folder: --out must name a folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return []
    if not overwrite:
        raise ValueError(f"{out_dir} exists and is not empty; pass --overwrite (overwrite=True in Python) to replace "
                         "what an earlier publish wrote there")
    if not (out_dir / MARKER).is_file():
        raise ValueError(f"{out_dir} was not written by diffbench publish (no {MARKER} in it): refusing to replace "
                         "it; choose another --out")
    marker = read_marker(out_dir)
    kept = foreign_entries(out_dir, published_files(out_dir, marker))
    if kept and "files" not in marker:
        raise ValueError(f"{out_dir} was written by an older diffbench publish, which did not list its files, and "
                         f"also holds {_names(kept)}: refusing to replace it; move those out, or choose another --out")
    return kept


def read_marker(folder: Path) -> dict:
    """The marker of a published folder (:data:`MARKER`)."""
    path = folder / MARKER
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not a diffbench publish marker ({err}); refusing to replace {folder}") from None
    if not isinstance(marker, dict) or not isinstance(marker.get("files", []), list):
        raise ValueError(f"{path}: not a diffbench publish marker; refusing to replace {folder}")
    return marker


def published_files(folder: Path, marker: dict | None = None) -> set[str]:
    """The files (relative paths) a publish wrote into ``folder``: its marker's list; for an older marker,
    which has none, what a publish of its configs writes (card, index, ``<config>/*.parquet`` shards)."""
    marker = read_marker(folder) if marker is None else marker
    if "files" in marker:
        return {str(f) for f in marker["files"]} | {MARKER}
    configs = [c for c in marker.get("configs", []) if isinstance(c, str) and c and "/" not in c]
    shards = {f"{c}/{p.name}" for c in configs for p in (folder / c).glob("*.parquet") if SHARD_NAME.fullmatch(p.name)}
    return {"README.md", PROVENANCE_INDEX, MARKER, *shards}


def foreign_entries(folder: Path, ours: set[str]) -> list[str]:
    """The entries of ``folder`` that are not among ``ours`` (relative file paths), outermost first: a folder
    holding none of ``ours`` is one entry (``.git``); one holding some is looked into."""
    parents = {"/".join(parts[:i]) for parts in (p.split("/") for p in ours) for i in range(1, len(parts))}
    found = []

    def walk(current: Path, prefix: str) -> None:
        for entry in sorted(os.scandir(current), key=lambda e: e.name):
            relative = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if relative in parents:
                    walk(Path(entry.path), relative + "/")
                else:
                    found.append(relative)
            elif relative not in ours:
                found.append(relative)

    walk(folder, "")
    return found


def _names(entries: list[str], shown: int = 8) -> str:
    more = f" and {len(entries) - shown} more" if len(entries) > shown else ""
    return ", ".join(entries[:shown]) + more


def arrange_kept(out_dir: Path, scratch: Path, kept: list[str]) -> list[str]:
    """The user's entries as they move into the new folder: a folder of theirs where the new publish has a
    folder too goes entry by entry. An entry where the new publish writes a file is refused, by name (it
    would be replaced)."""
    moves, clashes, pending = [], [], list(kept)
    while pending:
        relative = pending.pop(0)
        source, target = out_dir / relative, scratch / relative
        parts = relative.split("/")
        ancestors = [scratch.joinpath(*parts[:i]) for i in range(1, len(parts))]
        if any(p.is_symlink() or (p.exists() and not p.is_dir()) for p in ancestors):
            clashes.append(relative)
        elif _real_dir(target) and _real_dir(source):
            pending[:0] = [f"{relative}/{name}" for name in sorted(os.listdir(source))]
        elif os.path.lexists(target):
            clashes.append(relative)
        else:
            moves.append(relative)
    if clashes:
        raise ValueError(f"{out_dir} holds {_names(clashes)}, which diffbench publish did not write, where the new "
                         "publish writes: refusing to replace them; move them out, or choose another --out")
    return moves


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _carry_over(out_dir: Path, scratch: Path, kept: list[str], holder: Path) -> None:
    """Move the user's entries into the new folder, journaled first, so that the swap keeps them."""
    result_files.write_atomically(holder / KEPT_JOURNAL,  # whole or absent: a full disk stops it before any move
                                  json.dumps({"from": str(out_dir), "to": str(scratch), "entries": kept}))
    for relative in kept:
        target = scratch / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(out_dir / relative, target)


def put_back(holder: Path) -> None:
    """Return the user's entries that a publish moved into its new folder, when that folder was never
    swapped into place (the publish failed or was killed first)."""
    journal = holder / KEPT_JOURNAL
    if not journal.is_file():
        return
    entry = json.loads(journal.read_text(encoding="utf-8"))
    origin, moved_to = Path(entry["from"]), Path(entry["to"])
    for relative in entry["entries"]:
        source, target = moved_to / relative, origin / relative
        if os.path.lexists(source) and origin.is_dir() and not os.path.lexists(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, target)
    journal.unlink()


def clean_staging(staging: Path) -> None:
    """What killed publishes left: the old folder put back (two-rename swaps), the user's entries put back
    into it, then removed (:func:`diffbench.files.clean_staging`; a running publish's is left alone)."""
    for holder in staging.glob("*-*"):
        pid = holder.name.split("-", 1)[0]
        if holder.is_dir() and pid.isdigit() and not result_files.pid_alive(int(pid)):
            result_files.restore_interrupted(holder)
            put_back(holder)
    result_files.clean_staging(staging)


def write_shards(loaded: dict, scratch: Path, max_shard_bytes: int) -> None:
    """Each config's splits as parquet shards under ``scratch/<config>/``."""
    for config, dataset_dict in loaded.items():
        for split, dataset in dataset_dict.items():
            n = shard_count(dataset.data.nbytes, max_shard_bytes)
            (scratch / config).mkdir(parents=True, exist_ok=True)
            for index in range(n):
                shard = dataset.shard(num_shards=n, index=index, contiguous=True)
                shard.to_parquet(str(scratch / config / f"{split}-{index:05d}-of-{n:05d}.parquet"))


def publish(name: str, out_dir: Path, configs: list[str] | None = None, max_shard_bytes: int = MAX_SHARD_BYTES,
            overwrite: bool = False) -> Path:
    """Write the built ``configs`` of ``name`` (default: every built one) to ``out_dir``.

    ``overwrite`` replaces the files an earlier publish wrote (listed in its :data:`MARKER`), and keeps the
    rest of the folder.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    check_out_dir(out_dir, overwrite)
    loaded = load_configs(name, configs)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # one folder a publish, named by its process: what a killed publish left is restored and removed, a
    # running one's is left alone (as for builds)
    staging = out_dir.parent / f".{out_dir.name}.publishing"
    clean_staging(staging)
    holder = staging / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    scratch = holder / "new"
    try:
        write_shards(loaded, scratch, max_shard_bytes)
        write_card(name, loaded, scratch)
        files = sorted(p.relative_to(scratch).as_posix() for p in scratch.rglob("*") if p.is_file())
        marker = {"dataset": name, "configs": list(loaded), "files": files,
                  "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (scratch / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        kept = check_out_dir(out_dir, overwrite)  # again: the folder may have changed while the shards were written
        kept = arrange_kept(out_dir, scratch, kept)
        try:
            _carry_over(out_dir, scratch, kept, holder)
            result_files.replace_directory(scratch, out_dir, holder / "old")
        except BaseException:
            put_back(holder)  # an error, not a kill (the journal's case): the user's entries go back at once
            raise
    finally:
        shutil.rmtree(holder, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.rmdir()  # unless another publish is using it
    return out_dir


def check_online() -> None:
    """Refuse a push before any work when the Hub cannot be reached by configuration (``HF_HUB_OFFLINE``)."""
    from huggingface_hub import constants  # late: see the note at the imports

    if constants.HF_HUB_OFFLINE:
        raise ValueError("--push needs the network to reach the Hub, and HF_HUB_OFFLINE is set: unset it, or "
                         "publish without --push")


def push(folder: Path, repo_id: str, private: bool = False, revision: str | None = None) -> str:
    """Upload the files a publish wrote into ``folder`` (not the marker, nor what the user keeps there) to a
    Hub dataset repo (created if missing); returns the commit URL."""
    from huggingface_hub import HfApi  # late: see the note at the imports

    check_online()
    files = sorted(published_files(Path(folder)) - {MARKER})
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type="dataset", revision=revision,
        allow_patterns=[glob.escape(f) for f in files], ignore_patterns=[MARKER],
        commit_message=f"Upload {Path(folder).name} with diffbench publish",
    )
    return str(commit)
