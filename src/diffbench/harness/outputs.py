"""What a run leaves in ``--out``, and resuming from it.

    run.json                 what was run (task, model, protocol, dtype, weights and data fingerprints,
                             provenance): a resumed run must match it; ``environment`` (versions,
                             date, image-processing backend) is recorded, not compared
    progress/rank-<p>.jsonl  predictions appended batch by batch by each process (the resume source)
    <submission file>        the official submission: vismin_scores.csv (contrastive),
                             vismin_answers.csv (chat), captions.json (difference captions)
    generations.jsonl        every raw answer of a chat model on VisMin (id, question, prompt, output,
                             parsed answer)
    results.json             the metric's results
    results.md               the paper's table layout, with the published rows beside
    results.png, .svg        scores per category / change type

A run interrupted at any point resumes where it stopped: the next run with the same ``--out`` reads
the saved predictions and computes only the missing samples. A complete submission file means nothing
is left to compute: the run only re-scores it.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

PROGRESS_DIR = "progress"


RUN_FILE = "run.json"
NOT_COMPARED = ("environment",)
#: why a difference in these keys matters, said when a resume is refused
REASONS = {"dataset_fingerprint": "the data was rebuilt or changed since these predictions were made",
           "weights": "the model's weights changed since these predictions were made",
           "provenance": "the data comes from another build",
           "fast_decode": "--fast-decode decodes JPEGs at a reduced scale, which gives other pixels"}
OUTPUT_FILES = ("vismin_scores.csv", "vismin_answers.csv", "captions.json", "generations.jsonl", "results.json",
                "results.md", "results.png", "results.svg")


class RunMismatchError(ValueError):
    """``--out`` holds predictions of a different run."""


def check_manifest(out: Path, manifest: dict, overwrite: bool = False) -> None:
    """Write ``run.json``; an existing one must describe the same run (unless ``overwrite``), apart from
    its ``environment``. A refusal names what differs and why it matters."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / RUN_FILE
    if path.exists() and not overwrite:
        old = json.loads(path.read_text())
        from diffbench.harness.record import resolves

        if resolves(manifest.get("weights"), old.get("weights")):
            # the Hub cache lost the snapshot: the saved commit stands (the loop checks it once loaded)
            manifest["weights"] = old["weights"]
        elif resolves(old.get("weights"), manifest.get("weights")):
            old["weights"] = manifest["weights"]  # recorded before its first download: now with its commit
        keys = sorted((set(old) | set(manifest)) - set(NOT_COMPARED))
        # a key an older run.json lacks matches its off value (False, None): e.g. fast_decode, recorded since
        differ = [k for k in keys if old.get(k) != manifest.get(k) and not (k not in old and not manifest.get(k))]
        if differ:
            why = [REASONS[k] for k in differ if k in REASONS]
            detail = ", ".join(f"{k}: {old.get(k)!r} -> {manifest.get(k)!r}" for k in differ)
            raise RunMismatchError(f"{out} holds predictions of another run ({'; '.join(why) + ': ' if why else ''}"
                                   f"{detail}); use another --out, or --overwrite to compute afresh")
    if overwrite:
        clear(out)
    write_json(path, manifest)


def update_record(out: Path, values: dict, section: str | None = None) -> None:
    """Set keys of run.json: top-level ones (the weights' commit, known once a Hub model is downloaded), or
    those of its ``section`` (``environment``: what is known once the model is loaded)."""
    path = out / RUN_FILE
    manifest = json.loads(path.read_text())
    (manifest.setdefault(section, {}) if section else manifest).update(values)
    write_json(path, manifest)


def clear(out: Path) -> None:
    for path in (out / PROGRESS_DIR).glob("*.jsonl"):
        path.unlink()
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)


class ProgressStore:
    """Predictions appended (and flushed) batch by batch; read back from every process's file."""

    def __init__(self, out: Path, rank: int):
        self.dir = out / PROGRESS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"rank-{rank}.jsonl"
        self._handle = None

    def load(self) -> dict[str, dict]:
        """Saved predictions by sample id. A line cut short by an interruption is ignored."""
        saved = {}
        for path in sorted(self.dir.glob("*.jsonl")):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    saved[record["id"]] = record
        return saved

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        if self._handle is None:
            self._repair_tail()
            self._handle = open(self.path, "a", encoding="utf-8")
        self._handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def _repair_tail(self) -> None:
        """End a file whose last line was cut short with a newline, so appended lines stay whole."""
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb+") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def remove_all(self) -> None:
        self.close()
        for path in self.dir.glob("*.jsonl"):
            path.unlink()
        try:
            self.dir.rmdir()
        except OSError:
            pass


def write_csv(path: Path, records: list[dict], columns: list[str]) -> None:
    """The official submission CSV (``id`` first); written to a temp file and renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *columns])
        for record in records:
            writer.writerow([record["id"], *(_csv_value(record[c]) for c in columns)])
    tmp.replace(path)


def _csv_value(value):
    return repr(value) if isinstance(value, float) else value  # repr: the shortest exact float text


def read_csv(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_jsonl(path: Path, records) -> None:
    """One JSON object a line; written to a temp file and renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)
