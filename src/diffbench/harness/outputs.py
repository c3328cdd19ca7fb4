"""What a run leaves in ``--out``, and resuming from it.

    run.json                 what was run (task, model, protocol, dtype, weights and data fingerprints,
                             provenance): a resumed run must match it; the --limit draw (``limit``,
                             ``samples``) may grow: the run is extended; ``settings`` (the dtype and
                             image splitting with where each came from) and ``environment`` (versions,
                             date, image-processing backend, whether the model was loaded or
                             shared with another task of the call) and ``invocation`` (every option
                             resolved, the --config file's path and sha256, the call's tasks) are
                             recorded, not compared
    progress/rank-<p>.jsonl  predictions appended batch by batch by each process (the resume source)
    <submission file>        the official submission: vismin_scores.csv (contrastive),
                             vismin_answers.csv (chat), captions.json (difference captions)
    generations.jsonl        every raw answer of a chat model on VisMin (id, question, prompt, output,
                             parsed answer)
    results.json             the scores with their 95% intervals (diffbench.report.layout)
    samples.jsonl            one line a sample: what the model gave and whether (or how well) it is right
    results.md               the paper's table layout, with the published rows beside
    results.png, .svg        scores per category / change type
    .diffbench-files.json    the files diffbench wrote here, with their sha256 (:mod:`diffbench.files`)

The submission file and the report are moved in as one set (:func:`diffbench.files.staged`); a
run refuses to start over files of those names that diffbench did not write (``--overwrite`` replaces
them).

A run interrupted at any point resumes where it stopped: the next run with the same ``--out`` reads
the saved predictions and computes only the missing samples. A complete submission file means nothing
is left to compute: the run only re-scores it. A rerun with a larger ``--limit`` (or none) extends the
run: the draws are nested (:mod:`diffbench.harness.draws`), so the earlier predictions are kept and only
the new samples run; a smaller one is refused (it would replace the report and the submission file with
fewer samples than were predicted).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from diffbench import files as result_files
from diffbench.harness.record import resolves

PROGRESS_DIR = "progress"


RUN_FILE = "run.json"
NOT_COMPARED = ("environment", "settings", "invocation")
#: the --limit draw: checked apart (a rerun may draw more, which extends the run, never fewer)
DRAW_KEYS = ("limit", "samples", "split_samples", "sample_draw")
WEIGHTS_CHANGED = "the model's weights changed since these predictions were made"
#: what a refusal names, in this order: (reason, keys, keys that follow from these and are then not named)
MISMATCHES = (
    ("another model", ("model", "revision", "processor"), ("weights", "kind", "model_type", "similarity")),
    ("other data", ("task", "dataset", "config", "split", "data_files"), ("dataset_fingerprint", "provenance")),
    (WEIGHTS_CHANGED, ("weights",), ()),
    ("the data was rebuilt or changed since these predictions were made", ("dataset_fingerprint",), ()),
    ("the data comes from another build", ("provenance",), ()),
    ("--fast-decode decodes JPEGs at a reduced scale, which gives other pixels", ("fast_decode",), ()),
)
OTHER_SETTINGS = "other settings"
OUTPUT_FILES = ("vismin_scores.csv", "vismin_answers.csv", "captions.json", "generations.jsonl", "results.json",
                "results.md", "results.png", "results.svg", "samples.jsonl")


class RunMismatchError(ValueError):
    """``--out`` holds predictions of a different run."""


PROCEED = "use another --out, or --overwrite to compute afresh"


def check_manifest(out: Path, manifest: dict, overwrite: bool = False) -> dict | None:
    """Write ``run.json``; an existing one must describe the same run (unless ``overwrite``), apart from
    its ``settings`` and ``environment``, and its draw may only grow. A refusal names what differs and why
    it matters. Files of the outputs' names that diffbench did not write are refused before any work
    (unless ``overwrite``). Returns the earlier run.json (None: none, or overwritten)."""
    result_files.prepare(out, OUTPUT_FILES, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RUN_FILE
    old = None
    if path.exists() and not overwrite:
        old = read_run(path)
        if resolves(manifest.get("weights"), old.get("weights")):
            # the Hub cache lost the snapshot: the saved commit stands (the loop checks it once loaded)
            manifest["weights"] = old["weights"]
        elif resolves(old.get("weights"), manifest.get("weights")):
            old["weights"] = manifest["weights"]  # recorded before its first download: now with its commit
        check_same_run(out, old, manifest)
        check_draw(out, old, manifest)
        for section in NOT_COMPARED:  # what only a model load learns stays known when nothing is loaded
            manifest[section] = {**(old.get(section) or {}), **(manifest.get(section) or {})}
    if overwrite:
        clear(out)
    write_json(path, manifest)
    return old


def check_same_run(out: Path, old: dict, new: dict) -> None:
    """Refuse, naming the first reason (:data:`MISMATCHES`) and every key that differs, unless ``old`` and
    ``new`` describe the same predictions."""
    if old.get("limit") and "samples" not in old:
        raise RunMismatchError(f"{out} holds predictions of an earlier diffbench, whose --limit {old['limit']} took "
                               "the first rows (its data fingerprint covers those rows only, and this version's "
                               f"--limit draws other rows); {PROCEED}")
    keys = sorted((set(old) | set(new)) - set(NOT_COMPARED) - set(DRAW_KEYS))
    # a key an older run.json lacks matches its off value (False, None): e.g. fast_decode, recorded since
    differ = [k for k in keys if old.get(k) != new.get(k) and not (k not in old and not new.get(k))]
    if not differ:
        return
    reasons, named = [], set()
    for reason, primary, following in MISMATCHES:
        keys_here = [k for k in primary if k in differ and k not in named]
        if keys_here:
            reasons.append((reason, keys_here))
            named.update(keys_here, following)
    rest = [k for k in differ if k not in named]
    if rest:
        reasons.append((OTHER_SETTINGS, rest))
    said = "; ".join(f"{reason} ({', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in keys_here)})"
                     for reason, keys_here in reasons)
    raise RunMismatchError(f"{out} holds predictions of another run: {said}; {PROCEED}")


def check_draw(out: Path, old: dict, new: dict) -> None:
    """A rerun may draw more samples (the earlier ones are among them: the run is extended), never fewer:
    its report and submission file would replace those of the larger run with a part of it."""
    drawn, drawing = old.get("sample_draw"), new.get("sample_draw")
    if drawn and drawing and drawn != drawing:  # the earlier rows cannot be found again: not an extension
        raise RunMismatchError(f"{out} holds predictions of another run: --limit drew its samples another way "
                               f"(sample_draw: {drawn!r} -> {drawing!r}); {PROCEED}")
    before = old.get("samples")
    if before is None or new.get("samples", 0) >= before:
        return
    asked = f"--limit {old['limit']}" if old.get("limit") is not None else "no --limit"
    raise RunMismatchError(
        f"{out} holds a run of {before} samples ({asked}); this one draws {new['samples']} of them (--limit "
        f"{new.get('limit')}), and its report would replace that run's with fewer samples: rerun with --limit "
        f"{before} or more (or none) to resume or extend it, or {PROCEED}")


def read_run(path: Path) -> dict:
    """An existing ``run.json``; one that is not a run record is refused, naming it."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise RunMismatchError(f"{path} is not a run record ({err}); use another --out, or --overwrite to compute "
                               "afresh") from None
    if not isinstance(old, dict):
        raise RunMismatchError(f"{path} is not a run record (not a JSON object); use another --out, or --overwrite "
                               "to compute afresh")
    return old


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
        """Saved predictions by sample id. A last line cut short by an interruption (no newline) is ignored;
        any other line that is not a prediction is an error naming the file and line."""
        saved = {}
        for path in sorted(self.dir.glob("*.jsonl")):
            lines = path.read_bytes().split(b"\n")
            for number, line in enumerate(lines, 1):
                cut = number == len(lines)  # after the last newline: empty, or a line cut short
                record = _record(line)
                if record is not None:
                    saved[record["id"]] = record
                elif line.strip() and not cut:
                    shown = line[:60].decode("utf-8", "replace")
                    raise ValueError(f"{path}, line {number}: not a saved prediction (a JSON object with an id): "
                                     f"{shown!r}; remove the line (its sample is predicted again) or pass --overwrite (overwrite=True in Python)")
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
        """Before appending: drop a last line cut short (or end a whole one with its newline), so that every
        line but the last stays a whole record."""
        if not self.path.exists() or not self.path.stat().st_size:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        with open(self.path, "rb+") as handle:
            if _record(data.rsplit(b"\n", 1)[-1]) is not None:
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
            else:
                handle.truncate(data.rfind(b"\n") + 1)

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


def _record(line: bytes) -> dict | None:
    """A saved prediction (a JSON object with an ``id``), or ``None`` when ``line`` is not one."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("id"), (str, int)) or isinstance(record["id"], bool):
        return None
    return record


def write_csv(path: Path, records: list[dict], columns: list[str]) -> None:
    """The official submission CSV (``id`` first), written whole (:func:`diffbench.files.write_file`)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["id", *columns])
    for record in records:
        writer.writerow([record["id"], *(_csv_value(record[c]) for c in columns)])
    result_files.write_file(path, text.getvalue())


def _csv_value(value):
    return repr(value) if isinstance(value, float) else value  # repr: the shortest exact float text


def read_csv(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def write_json(path: Path, value) -> None:
    """``value`` as indented JSON, written whole (:func:`diffbench.files.write_file`)."""
    result_files.write_file(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, records) -> None:
    """One JSON object a line, written whole (:func:`diffbench.files.write_file`)."""
    result_files.write_file(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
