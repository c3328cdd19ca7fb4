"""The Space's leaderboard: the published VisMin rows and every submission scored here, kept in SQLite.

Where it lives: ``$DIFFBENCH_DATA_DIR/leaderboard.sqlite3``; without that variable, the Space's
persistent storage ``/data`` when it exists and is writable (a Hugging Face Space with persistent
storage), else the per-user data folder (``$XDG_DATA_HOME/diffbench``, by default
``~/.local/share/diffbench``). A restart keeps every row.

Optional mirror: with ``DIFFBENCH_LEADERBOARD_REPO=<user>/<dataset repo>`` (and a write token in
``HF_TOKEN``), every new row is also appended to a JSON-lines file that huggingface_hub's
``CommitScheduler`` pushes to that Hub dataset repo every few minutes (the pattern of the Hub docs,
"Scheduled uploads"); on start, rows found in that repo and missing from the SQLite file are restored
(:meth:`Leaderboard.restore`), so the leaderboard survives a Space without persistent storage. The Hub
side is not exercised by the tests (they run offline); restoring from the JSON lines is.

Rules the table keeps:

- one submission counts once: rows are keyed by the submission's content hash (its bytes and what it
  was scored against), so uploading the same file again adds nothing and says under which name it
  already stands;
- a run on the synthetic sample (or on data of unknown source) is never ranked among the published
  rows: it is listed after them, its Source says :data:`diffbench.provenance.SYNTHETIC_NOTE`;
- names are the visitor's text: stored as given (trimmed, at most :data:`MAX_NAME_CHARS`), shown as
  plain text by the table, escaped wherever Markdown shows them;
- numbers are shown with two decimals (:meth:`Leaderboard.styled`).

    >>> import tempfile
    >>> board = Leaderboard(Path(tempfile.mkdtemp()) / "board.sqlite3")
    >>> table = board.vismin_table()
    >>> list(table.columns[:3]), table.iloc[0]["Model"]
    (['Model', 'AVG', 'Object T'], 'MTurk Human')
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from diffbench.provenance import SYNTHETIC_NOTE
from diffbench.vismin_schema import CATEGORIES, PUBLISHED_SAMPLES, SCORE_NAMES

DATA_DIR_ENV = "DIFFBENCH_DATA_DIR"
SPACE_STORAGE = Path("/data")  # a Hugging Face Space's persistent storage, when the Space has it
MIRROR_ENV = "DIFFBENCH_LEADERBOARD_REPO"
DB_NAME = "leaderboard.sqlite3"
MAX_NAME_CHARS = 80
SYNTHETIC_MARK = "[synthetic sample] "  # opens the Model cell of a run on the synthetic sample

CELL_COLUMNS = tuple(f"{c.capitalize()} {s[0].upper()}" for c in CATEGORIES for s in SCORE_NAMES)
VISMIN_COLUMNS = ("Model", "AVG", *CELL_COLUMNS, "Group (all samples)", "Samples", "Source")
CAPTION_METRICS = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
CAPTION_COLUMNS = ("Name", "Dataset", "Split", "CIDEr", "Bleu_4", "METEOR", "ROUGE_L", "Samples", "Source")
SORTS = ("AVG", "Group (all samples)", "Model")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vismin_runs (
    content_hash TEXT PRIMARY KEY, name TEXT NOT NULL, submission TEXT, scored_at TEXT NOT NULL,
    synthetic INTEGER, provenance TEXT NOT NULL, cells TEXT NOT NULL, avg REAL, group_all REAL, samples INTEGER);
CREATE TABLE IF NOT EXISTS caption_runs (
    content_hash TEXT PRIMARY KEY, name TEXT NOT NULL, dataset TEXT, split TEXT, scored_at TEXT NOT NULL,
    synthetic INTEGER, provenance TEXT NOT NULL, scores TEXT NOT NULL, samples INTEGER);
"""


def data_dir() -> Path:
    """The folder the Space keeps its data in (created if need be); see the module docstring."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        folder = Path(override).expanduser()
    elif SPACE_STORAGE.is_dir() and os.access(SPACE_STORAGE, os.W_OK):
        folder = SPACE_STORAGE / "diffbench"
    else:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        folder = Path(base) / "diffbench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def clean_name(name, fallback: str) -> str:
    """A leaderboard name: one line, trimmed, at most :data:`MAX_NAME_CHARS` characters.

    >>> clean_name("  my\\nmodel ", "x"), clean_name("", "scores.csv")
    ('my model', 'scores.csv')
    """
    text = " ".join(str(name or "").split())[:MAX_NAME_CHARS]
    return text or " ".join(str(fallback).split())[:MAX_NAME_CHARS]


@dataclass(frozen=True)
class Entry:
    """What adding a run did: ``added`` False when the same submission was already there (as ``name``)."""

    added: bool
    name: str
    scored_at: str
    synthetic: bool | None


class _Mirror:
    """New rows appended to a JSON-lines file that a ``CommitScheduler`` pushes to a Hub dataset repo."""

    def __init__(self, repo_id: str, folder: Path):
        from huggingface_hub import CommitScheduler

        folder.mkdir(parents=True, exist_ok=True)
        self.repo_id = repo_id
        self.path = folder / f"runs-{uuid.uuid4().hex}.jsonl"  # one file a Space process: no clashes
        self.scheduler = CommitScheduler(repo_id=repo_id, repo_type="dataset", folder_path=folder,
                                         path_in_repo="leaderboard", every=5)

    def append(self, record: dict) -> None:
        with self.scheduler.lock:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def published_records(self):
        """Every row the repo holds (its ``leaderboard/*.jsonl`` files), for :meth:`Leaderboard.restore`."""
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(self.repo_id, repo_type="dataset", allow_patterns=["leaderboard/*.jsonl"]))
        for path in sorted(folder.glob("leaderboard/*.jsonl")):
            yield from read_records(path)


def read_records(path: Path):
    """The rows of a mirror file; a line that is not JSON (one cut short by an interruption) is skipped
    and counted in a warning."""
    skipped = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
    if skipped:
        logging.getLogger(__name__).warning("%s: %d line(s) that are not JSON skipped", path, skipped)


class Leaderboard:
    """Published VisMin rows plus the runs in the SQLite file at ``path`` (thread-safe; one
    connection a call, so any thread may use it)."""

    def __init__(self, path: Path | None = None, mirror_repo: str | None = None):
        self.path = Path(path) if path is not None else data_dir() / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(_SCHEMA)
        self._published = self._published_frame()
        repo = mirror_repo if mirror_repo is not None else os.environ.get(MIRROR_ENV)
        self._mirror = _Mirror(repo, self.path.parent / "mirror") if repo else None
        if self._mirror is not None:
            try:
                self.restore(self._mirror.published_records())
            except Exception:  # noqa: BLE001 -- an unreachable mirror leaves the local file as it is
                logging.getLogger(__name__).exception("could not restore the leaderboard from %s", repo)

    def restore(self, records) -> int:
        """Insert mirrored rows missing here (same content hash: kept once); returns how many were added."""
        columns = {"vismin_runs": ("content_hash", "name", "submission", "scored_at", "synthetic", "provenance",
                                   "cells", "avg", "group_all", "samples"),
                   "caption_runs": ("content_hash", "name", "dataset", "split", "scored_at", "synthetic",
                                    "provenance", "scores", "samples")}
        added = skipped = 0
        with self._lock, self._connect() as db:
            for record in records:
                names = columns.get(record.get("table") if isinstance(record, dict) else None)
                if not names or not record.get("content_hash"):
                    skipped += 1
                    continue
                sql = (f"INSERT OR IGNORE INTO {record['table']} ({', '.join(names)}) "
                       f"VALUES ({', '.join('?' for _ in names)})")
                added += db.execute(sql, tuple(record.get(n) for n in names)).rowcount
        if skipped:
            logging.getLogger(__name__).warning("%d mirrored row(s) without a known table or content hash skipped", skipped)
        return added

    @contextlib.contextmanager
    def _connect(self):
        """A connection for one ``with`` block: committed (or rolled back) and closed at its end."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            with db:
                yield db
        finally:
            db.close()

    @staticmethod
    def _published_frame() -> pd.DataFrame:
        from diffbench.vismin_submission import published_results

        published = published_results()
        frame = pd.DataFrame({
            "Model": published["model"],
            "AVG": published["avg_as_published"].astype(float),
            **{column: published[f"{c}_{s}"].astype(float)
               for column, (c, s) in zip(CELL_COLUMNS, [(c, s) for c in CATEGORIES for s in SCORE_NAMES])},
            "Group (all samples)": np.nan,
            "Samples": float(PUBLISHED_SAMPLES),
            "Source": "published (" + published["table"] + ")",
        })
        frame["_ranked"] = True
        return frame

    # -- adding ---------------------------------------------------------------------------------

    def _insert(self, table: str, record: dict) -> Entry:
        columns = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        with self._lock, self._connect() as db:
            added = db.execute(f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})",
                               tuple(record.values())).rowcount == 1
            name, scored_at, synthetic = db.execute(
                f"SELECT name, scored_at, synthetic FROM {table} WHERE content_hash = ?",
                (record["content_hash"],)).fetchone()
        if added and self._mirror is not None:
            self._mirror.append({"table": table, **record})
        return Entry(added, name, scored_at, None if synthetic is None else bool(synthetic))

    @staticmethod
    def _synthetic_flag(provenance: dict):
        value = provenance.get("synthetic")
        return None if value is None else int(bool(value))

    def add_vismin(self, results: dict, name: str | None = None) -> Entry:
        """Add a scored VisMin submission (what :func:`diffbench.space.backend.score_vismin_csv` returns)."""
        scores = results["scores"]
        per = scores.get("per_category", {})
        provenance = results.get("provenance") or {}
        cells = {column: per.get(c, {}).get(f"{s}_score")
                 for column, (c, s) in zip(CELL_COLUMNS, [(c, s) for c in CATEGORIES for s in SCORE_NAMES])}
        fallback = Path(str(results.get("submission", "submission"))).stem
        return self._insert("vismin_runs", {
            "content_hash": results["content_hash"],
            "name": clean_name(name, fallback),
            "submission": str(results.get("submission", "")),
            "scored_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "synthetic": self._synthetic_flag(provenance),
            "provenance": json.dumps(provenance, sort_keys=True, default=str),
            "cells": json.dumps(cells),
            "avg": scores.get("avg_as_published"),
            "group_all": scores.get("group_score"),
            "samples": scores.get("num_samples"),
        })

    def add_captions(self, results: dict, name: str | None = None) -> Entry:
        """Add a scored caption submission (what :func:`diffbench.space.backend.score_caption_json` returns)."""
        provenance = results.get("provenance") or {}
        return self._insert("caption_runs", {
            "content_hash": results["content_hash"],
            "name": clean_name(name, str(results.get("submission", "captions"))),
            "dataset": results.get("dataset"),
            "split": results.get("split"),
            "scored_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "synthetic": self._synthetic_flag(provenance),
            "provenance": json.dumps(provenance, sort_keys=True, default=str),
            "scores": json.dumps({m: results.get(m) for m in CAPTION_METRICS}),
            "samples": results.get("num_samples"),
        })

    # -- showing --------------------------------------------------------------------------------

    @staticmethod
    def _source(scored_at: str, synthetic) -> str:
        if synthetic is None:
            return f"scored here {scored_at} · data of unknown source: not ranked"
        if synthetic:
            return f"scored here {scored_at} · {SYNTHETIC_NOTE}"
        return f"scored here {scored_at}"

    def _vismin_runs(self) -> pd.DataFrame:
        with self._connect() as db:
            rows = db.execute("SELECT name, scored_at, synthetic, cells, avg, group_all, samples FROM vismin_runs "
                              "ORDER BY scored_at, rowid").fetchall()
        records = []
        for name, scored_at, synthetic, cells, avg, group_all, samples in rows:
            synthetic = None if synthetic is None else bool(synthetic)
            records.append({
                "Model": (SYNTHETIC_MARK if synthetic else "") + name,  # first, where a narrow column shows it
                "AVG": avg, "Source": self._source(scored_at, synthetic), **json.loads(cells),
                "Group (all samples)": group_all, "Samples": samples,
                "_ranked": synthetic is False,  # real data of known source only
            })
        return pd.DataFrame(records, columns=[*VISMIN_COLUMNS, "_ranked"])

    def vismin_table(self, sort_by: str = "AVG") -> pd.DataFrame:
        """Published rows and real-data runs ranked together by ``sort_by``; then the runs that are not
        comparable (synthetic sample, unknown source), sorted the same way."""
        sort_by = sort_by if sort_by in SORTS else "AVG"
        runs = self._vismin_runs()
        table = pd.concat([self._published, runs], ignore_index=True) if len(runs) else self._published.copy()
        for column in VISMIN_COLUMNS:
            if column not in ("Model", "Source"):
                table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
        ascending = sort_by == "Model"
        key = (lambda s: s.str.lower()) if sort_by == "Model" else None
        parts = [table[table["_ranked"] == flag].sort_values(sort_by, ascending=ascending, na_position="last",
                                                              kind="stable", key=key) for flag in (True, False)]
        return pd.concat(parts, ignore_index=True).drop(columns="_ranked")

    def caption_table(self) -> pd.DataFrame:
        """Caption runs, newest last; metrics ×100 (as papers print them)."""
        with self._connect() as db:
            rows = db.execute("SELECT name, dataset, split, scored_at, synthetic, scores, samples FROM caption_runs "
                              "ORDER BY scored_at, rowid").fetchall()
        records = []
        for name, dataset, split, scored_at, synthetic, scores, samples in rows:
            scores = json.loads(scores)
            synthetic = None if synthetic is None else bool(synthetic)
            records.append({"Name": (SYNTHETIC_MARK if synthetic else "") + name, "Dataset": dataset, "Split": split,
                            **{m: (None if scores.get(m) is None else 100 * float(scores[m])) for m in CAPTION_METRICS},
                            "Samples": samples, "Source": self._source(scored_at, synthetic)})
        frame = pd.DataFrame(records, columns=list(CAPTION_COLUMNS))
        for column in (*CAPTION_METRICS, "Samples"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        return frame

    @staticmethod
    def styled(frame: pd.DataFrame):
        """The table as shown: every score with two decimals, counts as integers, a gap as ``–``."""
        formats = {c: "{:.2f}" for c in frame.columns if frame[c].dtype.kind == "f" and c != "Samples"}
        if "Samples" in frame:
            formats["Samples"] = "{:,.0f}"
        return frame.style.format(formats, na_rep="–")
