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
  rows: it is listed after them, its Source says :data:`diffbench.data.provenance.SYNTHETIC_NOTE`;
- names are the visitor's text: stored on one line without control or bidirectional-override
  characters (:func:`clean_name`: a U+202E would reverse what follows it on the board), trimmed, at most
  :data:`MAX_NAME_CHARS`; shown as plain text by the table (stripped again: rows stored before this
  rule), escaped wherever Markdown shows them;
- numbers are shown with two decimals (:meth:`Leaderboard.styled`).

What the board does with a file it cannot read (the Space must start whatever the file holds):

- a row that cannot be read (``cells`` or ``scores`` not a JSON object, a score that is not a number) is
  left out, and :meth:`Leaderboard.notes` names the file, the table, the rowid, the content hash, the
  name and the field; every other row is shown;
- a file SQLite finds damaged at start (not a database, truncated, failing ``PRAGMA quick_check``) is
  renamed ``leaderboard.sqlite3.damaged-<UTC time>`` (with its ``-wal``, which would otherwise be
  replayed into the new file) and a fresh file is started: keep-and-start-fresh rather than read-only,
  because nothing can be read from the damaged file anyway, the Space's job is to take new scores,
  and the Hub mirror, when set, restores its rows into the fresh file. The published rows are shown
  throughout, and :meth:`Leaderboard.notes` says where the damaged file was kept;
- a file that stops being readable while the Space runs: the published rows, and a note.

    >>> import tempfile
    >>> board = Leaderboard(Path(tempfile.mkdtemp()) / "board.sqlite3")
    >>> table = board.vismin_table()
    >>> list(table.columns[:4]), table.iloc[0]["Model"], board.notes()
    (['Model', 'Setting', 'AVG', 'AVG ±'], 'MTurk Human', [])
"""

from __future__ import annotations

import contextlib
import itertools
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

from diffbench.data.provenance import SYNTHETIC_NOTE
from diffbench.text import one_line, printable, strip_unsafe
from diffbench.vismin.published import AVG_NOTES, published_rows
from diffbench.vismin.schema import CATEGORIES, PUBLISHED_SAMPLES, SCORE_NAMES

DATA_DIR_ENV = "DIFFBENCH_DATA_DIR"
SPACE_STORAGE = Path("/data")  # a Hugging Face Space's persistent storage, when the Space has it
MIRROR_ENV = "DIFFBENCH_LEADERBOARD_REPO"
DB_NAME = "leaderboard.sqlite3"
MAX_NAME_CHARS = 80
SYNTHETIC_MARK = "[synthetic sample] "  # opens the Model cell of a run on the synthetic sample

CELLS = tuple((c, s) for c in CATEGORIES for s in SCORE_NAMES)
CELL_COLUMNS = tuple(f"{c.capitalize()} {s[0].upper()}" for c, s in CELLS)
#: "AVG ±": half the AVG's 95% bootstrap interval (runs scored here); "Published AVG": a published row's own
#: AVG where it is not the mean of its cells (vismin.published.AVG_NOTES says how it differs)
#: "Setting": the published table a row comes from (zero-shot, fine-tuned), or "scored here" for a run this board
#: scored: two published rows may share a name (Idefics2 zero-shot and fine-tuned)
VISMIN_COLUMNS = ("Model", "Setting", "AVG", "AVG ±", *CELL_COLUMNS, "Group (all samples)", "Samples", "Published AVG",
                  "Source")
SCORED_HERE = "scored here"
AVG_HALF_WIDTH = "AVG ±"
CAPTION_METRICS = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
#: "CIDEr ±": half the CIDEr-D's 95% bootstrap interval (runs scored since results carried intervals)
CIDER_HALF_WIDTH = "CIDEr ±"
CAPTION_COLUMNS = ("Name", "Dataset", "Split", "CIDEr", CIDER_HALF_WIDTH, "Bleu_4", "METEOR", "ROUGE_L", "Samples",
                   "Source")
SORTS = ("AVG", "Group (all samples)", "Model")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vismin_runs (
    content_hash TEXT PRIMARY KEY, name TEXT NOT NULL, submission TEXT, scored_at TEXT NOT NULL,
    synthetic INTEGER, provenance TEXT NOT NULL, cells TEXT NOT NULL, avg REAL, group_all REAL, samples INTEGER);
CREATE TABLE IF NOT EXISTS caption_runs (
    content_hash TEXT PRIMARY KEY, name TEXT NOT NULL, dataset TEXT, split TEXT, scored_at TEXT NOT NULL,
    synthetic INTEGER, provenance TEXT NOT NULL, scores TEXT NOT NULL, samples INTEGER);
"""
_VISMIN_ROWS = ("SELECT rowid, content_hash, name, scored_at, synthetic, cells, avg, group_all, samples "
                "FROM vismin_runs ORDER BY scored_at, rowid")
_CAPTION_ROWS = ("SELECT rowid, content_hash, name, dataset, split, scored_at, synthetic, scores, samples "
                 "FROM caption_runs ORDER BY scored_at, rowid")
_DAMAGE_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (named in sqlite3 from Python 3.11 on)
_DAMAGE_MESSAGES = ("database disk image is malformed", "file is not a database")  # Python 3.10: no codes


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


def _safe_line(text) -> str:
    """``text`` on one line (whitespace runs made one space), without control or invisible format
    characters (:func:`diffbench.text.strip_unsafe`), trimmed, cut to :data:`MAX_NAME_CHARS`."""
    spaced = " ".join(str(text).split())  # line breaks and tabs become spaces before controls are removed
    return " ".join(strip_unsafe(spaced).split())[:MAX_NAME_CHARS]


def clean_name(name, fallback: str) -> str:
    """A leaderboard name: one line without control or bidirectional-override characters, trimmed, at
    most :data:`MAX_NAME_CHARS` characters; ``fallback`` (cleaned the same way) when nothing is left.

    >>> clean_name("  my\\nmodel ", "x"), clean_name("", "scores.csv")
    ('my model', 'scores.csv')
    >>> clean_name("evil\\x00 \\u202egnp.exe", "x"), clean_name("\\u202e\\x00 ", "scores")
    ('evil gnp.exe', 'scores')
    """
    return _safe_line(name or "") or _safe_line(fallback)


@dataclass(frozen=True)
class Entry:
    """What adding a run did: ``added`` False when the same submission was already there (as ``name``)."""

    added: bool
    name: str
    scored_at: str


class _Mirror:
    """New rows appended to a JSON-lines file that a ``CommitScheduler`` pushes to a Hub dataset repo."""

    def __init__(self, repo_id: str, folder: Path):
        # huggingface_hub's upload machinery, imported only when a mirror is set (most boards have none).
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
        from huggingface_hub import snapshot_download  # as CommitScheduler above

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


def _is_damage(err: sqlite3.DatabaseError) -> bool:
    """Whether SQLite refused the file for what it holds (damaged, not a database), rather than for
    access, space or a lock: only such a file is kept aside and replaced."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES  # the primary code of an extended one
    return any(message in str(err) for message in _DAMAGE_MESSAGES)


def _json_object(text, field: str) -> dict:
    """A stored JSON column read back; ValueError naming ``field`` when it is not a JSON object."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise ValueError(f"{field} is not JSON: \"{printable(str(text)[:40])}\"") from None
    if not isinstance(value, dict):
        raise ValueError(f"{field} is not a JSON object")
    return value


def _number(value, field: str):
    """A stored score or count (a number, or None for a gap); ValueError naming ``field`` otherwise."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise ValueError(f"{field} is not a number: \"{printable(str(value)[:40])}\"")


def _shown_name(name) -> str:
    """A stored name as the board shows it: cleaned again (rows stored before :func:`clean_name` stripped
    control and bidi characters, or restored from the mirror, may hold them)."""
    if not isinstance(name, str):
        raise ValueError("name is not text")
    return clean_name(name, "(no name)")


def _shown_text(value):
    """A stored text cell (dataset, split, time) without control or invisible format characters."""
    return None if value is None else strip_unsafe(value)


class Leaderboard:
    """Published VisMin rows plus the runs in the SQLite file at ``path`` (thread-safe; one
    connection a call, so any thread may use it)."""

    def __init__(self, path: Path | None = None, mirror_repo: str | None = None):
        self.path = Path(path) if path is not None else data_dir() / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._logged: set[tuple[str, int]] = set()  # unreadable rows already logged
        self._start_notes = self._open_or_start_fresh()
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

    def _open_or_start_fresh(self) -> list[str]:
        """Create the tables. A file SQLite finds damaged is kept aside and a fresh one started (see the
        module docstring); returns what the board says about it (nothing when the file is sound)."""
        damage = self._damage()
        notes = []
        if damage is not None:
            kept = self._keep_aside()
            notes.append(f"{self.path}: the leaderboard file cannot be read ({damage}); it was kept as "
                         f"{kept.name} and a new file started: the runs scored here before are not shown")
            logging.getLogger(__name__).warning(notes[-1])
        with self._connect() as db:
            db.executescript(_SCHEMA)
        return notes

    def _damage(self) -> str | None:
        """Why SQLite cannot use the file (damaged, not a database), or None when it can (or it is new).
        Read-only, so that the file and its WAL are kept as found (closing a writable connection
        checkpoints the WAL into the file, or deletes it). Any other refusal (no access, a lock) is the
        machine's problem: raised, naming the file."""
        if not self.path.exists():
            return None
        try:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            try:
                findings = [str(row[0]) for row in db.execute("PRAGMA quick_check")]
            finally:
                db.close()
        except sqlite3.DatabaseError as err:
            if not _is_damage(err):
                raise type(err)(f"{self.path}: {err}") from err
            return str(err)
        return None if findings == ["ok"] else one_line("\n".join(findings[:3]))

    def _keep_aside(self) -> Path:
        """Rename the damaged file to ``<name>.damaged-<UTC time>``, with its WAL when it has one (left
        behind, it would be replayed into the fresh file; beside the kept copy, SQLite reads it with it).
        The ``-shm`` index is derived from the WAL and rebuilt on open: removed."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        for n in itertools.count(2):  # two starts within a second
            if not kept.exists():
                break
            kept = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}")
        os.replace(self.path, kept)
        wal, index = Path(f"{self.path}-wal"), Path(f"{self.path}-shm")
        if wal.exists() and wal.stat().st_size:
            os.replace(wal, f"{kept}-wal")
        for leftover in (wal, index):  # an empty WAL and the index: the damage check's own
            leftover.unlink(missing_ok=True)
        return kept

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
        """The published rows on the one AVG convention (the mean of the twelve cells), their own AVG beside it
        where it differs, the Source saying how (:data:`diffbench.vismin.published.AVG_NOTES`)."""
        rows = published_rows()
        frame = pd.DataFrame({
            "Model": [row["model"] for row in rows],
            "Setting": [row["table"] for row in rows],
            "AVG": [row["avg"] for row in rows],
            AVG_HALF_WIDTH: np.nan,
            **{column: [row["cells"][cell] for row in rows] for column, cell in zip(CELL_COLUMNS, CELLS)},
            "Group (all samples)": np.nan,
            "Samples": float(PUBLISHED_SAMPLES),
            "Published AVG": [row["avg_published"] if row["avg_note"] else np.nan for row in rows],
            "Source": [f"published ({row['table']})" + (f" · {AVG_NOTES[row['avg_note']]}" if row["avg_note"] else "")
                       for row in rows],
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
            name, scored_at = db.execute(f"SELECT name, scored_at FROM {table} WHERE content_hash = ?",
                                         (record["content_hash"],)).fetchone()
        if added and self._mirror is not None:
            self._mirror.append({"table": table, **record})
        return Entry(added, name, scored_at)

    @staticmethod
    def _synthetic_flag(provenance: dict):
        value = provenance.get("synthetic")
        return None if value is None else int(bool(value))

    def add_vismin(self, results: dict, name: str | None = None) -> Entry:
        """Add a scored VisMin submission (the results of :func:`diffbench.space.backend.score_vismin_run`)."""
        scores, groups = results["scores"], results["groups"]
        provenance = results.get("provenance") or {}
        cells = {column: groups.get(c, {}).get("scores", {}).get(s) for column, (c, s) in zip(CELL_COLUMNS, CELLS)}
        low, high = results["ci95"]["avg"]
        cells[AVG_HALF_WIDTH] = (high - low) / 2
        fallback = Path(str(results.get("submission", "submission"))).stem
        return self._insert("vismin_runs", {
            "content_hash": results["content_hash"],
            "name": clean_name(name, fallback),
            "submission": str(results.get("submission", "")),
            "scored_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "synthetic": self._synthetic_flag(provenance),
            "provenance": json.dumps(provenance, sort_keys=True, default=str),
            "cells": json.dumps(cells),
            "avg": scores["avg"],
            "group_all": scores["group"],
            "samples": results["samples"],
        })

    def add_captions(self, results: dict, name: str | None = None) -> Entry:
        """Add a scored caption submission (the results of :func:`diffbench.space.backend.score_caption_run`)."""
        provenance = results.get("provenance") or {}
        scores = {m: results["scores"].get(m) for m in CAPTION_METRICS}
        cider = results["ci95"].get("CIDEr")
        scores[CIDER_HALF_WIDTH] = None if not cider else (cider[1] - cider[0]) / 2
        return self._insert("caption_runs", {
            "content_hash": results["content_hash"],
            "name": clean_name(name, str(results.get("submission", "captions"))),
            "dataset": results.get("benchmark"),
            "split": results.get("split"),
            "scored_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "synthetic": self._synthetic_flag(provenance),
            "provenance": json.dumps(provenance, sort_keys=True, default=str),
            # "scale": rows stored before results were percentages hold pycocoevalcap's 0..1 (shown x 100)
            "scores": json.dumps({"scale": "percent", **scores}),
            "samples": results["samples"],
        })

    # -- showing --------------------------------------------------------------------------------

    @staticmethod
    def _source(scored_at, synthetic) -> str:
        scored_at = _shown_text(scored_at)
        if synthetic is None:
            return f"scored here {scored_at} · data of unknown source: not ranked"
        if synthetic:
            return f"scored here {scored_at} · {SYNTHETIC_NOTE}"
        return f"scored here {scored_at}"

    def notes(self) -> list[str]:
        """What the board says besides its rows, one line each, naming the file (and the table, row and
        field): a damaged file kept aside at start, a file that cannot be read now, each row left out."""
        notes = [*self._start_notes, *self._vismin_runs()[1], *self._caption_runs()[1]]
        return list(dict.fromkeys(notes))  # a file unreadable now is said once, not once a table

    def _select(self, sql: str) -> tuple[list, list[str]]:
        """The rows ``sql`` selects, or none and a note when the file cannot be read now."""
        try:
            with self._connect() as db:
                return db.execute(sql).fetchall(), []
        except sqlite3.DatabaseError as err:
            return [], [f"{self.path}: the leaderboard file cannot be read ({err}); the runs scored here are not shown"]

    def _unreadable(self, table: str, rowid: int, content_hash, name, err: ValueError) -> str:
        """The note for a row left out (logged once a process, not at every refresh)."""
        note = (f"{self.path}: {table} row {rowid} (content_hash {printable(content_hash)}, "
                f"name \"{printable(str(name)[:MAX_NAME_CHARS])}\") cannot be read: {err}; it is left out")
        if (table, rowid) not in self._logged:
            self._logged.add((table, rowid))
            logging.getLogger(__name__).warning(note)
        return note

    def _vismin_runs(self) -> tuple[pd.DataFrame, list[str]]:
        """The VisMin runs that can be read, and a note for each row that cannot."""
        rows, notes = self._select(_VISMIN_ROWS)
        records = []
        for rowid, content_hash, name, *values in rows:
            try:
                records.append(self._vismin_record(name, *values))
            except ValueError as err:
                notes.append(self._unreadable("vismin_runs", rowid, content_hash, name, err))
        return pd.DataFrame(records, columns=[*VISMIN_COLUMNS, "_ranked"]), notes

    def _vismin_record(self, name, scored_at, synthetic, cells, avg, group_all, samples) -> dict:
        cells = _json_object(cells, "cells")
        synthetic = None if synthetic is None else bool(synthetic)
        return {
            "Model": (SYNTHETIC_MARK if synthetic else "") + _shown_name(name),  # first, where a narrow column shows it
            "Setting": SCORED_HERE, "AVG": _number(avg, "avg"), "Source": self._source(scored_at, synthetic),
            **{column: _number(cells.get(column), f"cells[{column!r}]") for column in (AVG_HALF_WIDTH, *CELL_COLUMNS)},
            "Group (all samples)": _number(group_all, "group_all"), "Samples": _number(samples, "samples"),
            "_ranked": synthetic is False,  # real data of known source only
        }

    def vismin_table(self, sort_by: str = "AVG") -> pd.DataFrame:
        """Published rows and real-data runs ranked together by ``sort_by``; then the runs that are not
        comparable (synthetic sample, unknown source), sorted the same way. Rows that cannot be read are
        left out (:meth:`notes` names them)."""
        sort_by = sort_by if sort_by in SORTS else "AVG"
        runs, _ = self._vismin_runs()
        table = pd.concat([self._published, runs], ignore_index=True) if len(runs) else self._published.copy()
        for column in VISMIN_COLUMNS:
            if column not in ("Model", "Setting", "Source"):
                table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
        ascending = sort_by == "Model"
        key = (lambda s: s.str.lower()) if sort_by == "Model" else None
        parts = [table[table["_ranked"] == flag].sort_values(sort_by, ascending=ascending, na_position="last",
                                                              kind="stable", key=key) for flag in (True, False)]
        return pd.concat(parts, ignore_index=True).drop(columns="_ranked")

    def _caption_runs(self) -> tuple[list[dict], list[str]]:
        """The caption runs that can be read, and a note for each row that cannot."""
        rows, notes = self._select(_CAPTION_ROWS)
        records = []
        for rowid, content_hash, name, *values in rows:
            try:
                records.append(self._caption_record(name, *values))
            except ValueError as err:
                notes.append(self._unreadable("caption_runs", rowid, content_hash, name, err))
        return records, notes

    def _caption_record(self, name, dataset, split, scored_at, synthetic, scores, samples) -> dict:
        scores = _json_object(scores, "scores")
        scale = 1 if scores.get("scale") == "percent" else 100  # older rows: pycocoevalcap's 0..1
        metrics = {m: _number(scores.get(m), f"scores[{m!r}]") for m in (*CAPTION_METRICS, CIDER_HALF_WIDTH)}
        synthetic = None if synthetic is None else bool(synthetic)
        return {"Name": (SYNTHETIC_MARK if synthetic else "") + _shown_name(name), "Dataset": _shown_text(dataset),
                "Split": _shown_text(split), **{m: None if v is None else scale * v for m, v in metrics.items()},
                "Samples": _number(samples, "samples"), "Source": self._source(scored_at, synthetic)}

    def caption_table(self) -> pd.DataFrame:
        """Caption runs, newest last; metrics ×100 (as papers print them), CIDEr-D ± half its 95% interval. Rows that cannot be read are
        left out (:meth:`notes` names them)."""
        records, _ = self._caption_runs()
        frame = pd.DataFrame(records, columns=list(CAPTION_COLUMNS))
        for column in (*CAPTION_METRICS, CIDER_HALF_WIDTH, "Samples"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        return frame

    @staticmethod
    def styled(frame: pd.DataFrame):
        """The table as shown: every score with two decimals, counts as integers, a gap as ``–``."""
        formats = {c: "{:.2f}" for c in frame.columns if frame[c].dtype.kind == "f" and c != "Samples"}
        if "Samples" in frame:
            formats["Samples"] = "{:,.0f}"
        return frame.style.format(formats, na_rep="–")
