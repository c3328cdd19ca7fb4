"""The Inspect tab's work (no Gradio here): a run loaded from an upload or from the runs scored on this
page, its samples filtered and listed, one sample shown with its images, two runs side by side.

Everything a run is read with is :mod:`diffbench.report.inspect` (``diffbench inspect`` prints the same):
:func:`load_upload` puts an uploaded samples.jsonl (and its results.json, when given) in a folder of their
own and loads it; :func:`choose` turns the tab's two menus (group, outcome) into that module's filters;
:func:`listing_html` and :func:`sample_markdown` show what it returns.

Where a run comes from: an upload, or a run scored on this page (the Score tab writes samples.jsonl beside
results.json: :class:`diffbench.space.backend.ResultFiles`). The leaderboard keeps no samples: a public
board holds one row a run (its cells), and the samples of every run (2,084 records a VisMin run) would
grow its file, and its Hub mirror, without bound.

    >>> outcomes("vismin", paired=False)[:3]
    ['wrong first (all samples)', 'group wrong', 'group right']
    >>> choose("vismin", False, "group wrong")
    {'wrong': 'group'}
    >>> choose("captions", True, "A behind B most (METEOR)")
    {'worst': 'meteor'}
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import pandas as pd

from diffbench.captions.inspect import METRIC_KEYS, groups_of
from diffbench.report import inspect as inspecting
from diffbench.report.layout import RESULTS_FILE, SAMPLES_FILE
from diffbench.space.tables import html_table
from diffbench.text import markdown_text
from diffbench.vismin.schema import ANSWER_COLUMNS, SCORE_COLUMNS, SCORE_NAMES

ALL = "all"
LISTED = 20  # rows the listing shows (the sample picker steps through every selected one)
KEPT_RUNS = 64  # loaded runs kept in memory (the oldest is dropped first)
MAX_UPLOAD_BYTES = 50 * 1024 * 1024

# The outcome menu: its wording and the filters of diffbench.report.inspect it stands for.
_VISMIN = {"wrong first (all samples)": {},
           **{f"{n} {o}": {o: n} for n in ("group", "text", "image") for o in ("wrong", "right")}}
_VISMIN_PAIRED = {"A right, B wrong (group)": {"a_right": "group", "b_wrong": "group"},
                  "A wrong, B right (group)": {"a_wrong": "group", "b_right": "group"},
                  "every shared sample (A right, B wrong first)": {}}
_METRICS = {"CIDEr-D": "cider", "METEOR": "meteor", "BLEU-4": "bleu_4", "ROUGE-L": "rouge_l"}
_CAPTIONS = {f"worst {label} first": {"worst": key} for label, key in _METRICS.items()}
_CAPTIONS_PAIRED = {"A ahead of B most (CIDEr-D)": {},
                    **{f"A behind B most ({label})": {"worst": key} for label, key in _METRICS.items()}}


class UserError(ValueError):
    """A problem with what the visitor gave: shown as it is."""


def outcomes(kind: str, paired: bool) -> list[str]:
    """The outcome menu of a run of ``kind`` (``vismin``, ``captions``), alone or beside another."""
    table = {("vismin", False): _VISMIN, ("vismin", True): _VISMIN_PAIRED,
             ("captions", False): _CAPTIONS, ("captions", True): _CAPTIONS_PAIRED}[(kind, paired)]
    return list(table)


def choose(kind: str, paired: bool, outcome: str) -> dict:
    """The keyword arguments of :func:`diffbench.report.inspect.rows` (or ``side_by_side``) for a menu entry."""
    table = {("vismin", False): _VISMIN, ("vismin", True): _VISMIN_PAIRED,
             ("captions", False): _CAPTIONS, ("captions", True): _CAPTIONS_PAIRED}[(kind, paired)]
    if outcome not in table:
        raise UserError(f"{str(outcome)[:60]!r} is not an outcome here; choose one of: {', '.join(table)}")
    return dict(table[outcome])


class LoadedRuns:
    """The runs visitors loaded, by a key the page keeps (a run is not copied into each session's state)."""

    def __init__(self, root: Path | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="diffbench-space-inspect-", dir=root))
        self._runs: OrderedDict[str, inspecting.Run] = OrderedDict()
        self._lock = threading.Lock()
        self._count = 0
        atexit.register(self.remove)  # with the Space's other temporary files (SIGTERM exits normally)

    def add(self, run: inspecting.Run) -> str:
        with self._lock:
            self._count += 1
            key = f"run-{self._count}"
            self._runs[key] = run
            while len(self._runs) > KEPT_RUNS:
                self._runs.popitem(last=False)
        return key

    def get(self, key: str | None) -> inspecting.Run | None:
        with self._lock:
            return self._runs.get(key) if key else None

    def folder(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="upload-", dir=self.root))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def scored_runs(folders) -> dict[str, Path]:
    """The menu of runs scored on this page, newest first: ``{"3. vismin test · scores.csv": folder}``."""
    menu = {}
    for number, folder in reversed(list(enumerate(folders, 1))):
        try:
            results = json.loads((Path(folder) / RESULTS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # removed with the Space's temporary files
        menu[f"{number}. {results.get('benchmark')} {results.get('split')} · {results.get('submission', '?')}"] = Path(folder)
    return menu


def _name(path) -> str:
    return Path(str(path)).name


def load_upload(paths, folder: Path, benchmark: str | None = None) -> inspecting.Run:
    """A run from uploaded files: a samples.jsonl (any name ending .jsonl) and, optionally, its results.json
    (any name ending .json), copied into ``folder`` under the names a run folder has. ``benchmark`` names
    the data of a samples.jsonl that came alone (a caption set's records do not say which)."""
    paths = [p for p in (paths or []) if p]
    samples = [p for p in paths if str(p).endswith(".jsonl")]
    results = [p for p in paths if str(p).endswith(".json")]
    others = [_name(p) for p in paths if p not in samples and p not in results]
    if others:
        raise UserError(f"{others[0]}: upload a samples.jsonl (and its results.json), nothing else")
    if len(samples) != 1 or len(results) > 1:
        raise UserError("upload one samples.jsonl (the per-sample records `diffbench score` and `diffbench eval` "
                        "write beside results.json), and its results.json if you have it")
    for path in paths:
        if Path(path).stat().st_size > MAX_UPLOAD_BYTES:
            raise UserError(f"{_name(path)} is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
    shutil.copyfile(samples[0], folder / SAMPLES_FILE)
    if results:
        shutil.copyfile(results[0], folder / RESULTS_FILE)
    try:
        run = inspecting.load(folder / SAMPLES_FILE, benchmark=None if results else benchmark)
    except (ValueError, KeyError, OSError) as err:
        message = str(err).replace(str(folder / SAMPLES_FILE), _name(samples[0]))
        if results:
            message = message.replace(str(folder / RESULTS_FILE), _name(results[0]))
        raise UserError(" ".join(message.replace(str(folder), "the upload").split())) from None
    run.name = _name(samples[0]) if not results else f"{_name(results[0])} + {_name(samples[0])}"
    return run


def load_scored(folder: Path, label: str) -> inspecting.Run:
    """A run scored on this page (its folder holds results.json and samples.jsonl)."""
    run = inspecting.load(folder)
    run.name = label
    return run


def groups(run: inspecting.Run) -> list[str]:
    """The group menu: ``all``, then the categories (VisMin) or change types (captions) the run's samples have."""
    found = inspecting.rows(run)
    if run.view.kind == "vismin":
        return [ALL, *sorted({r["category"] for r in found if r.get("category")})]
    return [ALL, *sorted({g for r in found for g in groups_of(r)})]


def selected(a: inspecting.Run, b: inspecting.Run | None, group: str, outcome: str) -> list[dict]:
    """The samples the menus select: A's rows, or A and B side by side (refused as ``diffbench compare``
    refuses two runs of different data)."""
    kind = a.view.kind
    filters = choose(kind, b is not None, outcome)
    if group not in (None, "", ALL):
        filters["category" if kind == "vismin" else "change_type"] = group
    try:
        if b is None:
            return inspecting.rows(a, **filters)
        return inspecting.side_by_side(inspecting.pair(a, b, intersect=True), **filters)
    except ValueError as err:
        raise UserError(" ".join(str(err).split())) from None


def _listing_frame(found: list[dict], kind: str, paired: bool) -> pd.DataFrame:
    """The listing's columns: short ones only (the texts are in the sample's view)."""
    if kind == "vismin":
        names = [f"{side}{n}_correct" for side in (("a_", "b_") if paired else ("",)) for n in SCORE_NAMES]
        headers = [f"{side}{n}" for side in (("A ", "B ") if paired else ("",)) for n in SCORE_NAMES]
        frame = pd.DataFrame({"#": range(1, len(found) + 1), "id": [r["id"] for r in found],
                              "category": [r.get("category") for r in found]})
        for name, header in zip(names, headers):
            frame[header] = ["right" if r.get(name) else "wrong" for r in found]
        return frame
    frame = pd.DataFrame({"#": range(1, len(found) + 1), "id": [r["id"] for r in found],
                          "change types": [", ".join(r.get("change_types") or []) or "–" for r in found]})
    keys = [k for k in METRIC_KEYS if found and (f"a_{k}" if paired else k) in found[0]][:2]
    for key in keys:
        if paired:
            frame[f"A {key}"] = [float(r[f"a_{key}"]) for r in found]
            frame[f"B {key}"] = [float(r[f"b_{key}"]) for r in found]
            frame[f"{key} A−B"] = [float(r[f"{key}_a_minus_b"]) for r in found]
        else:
            frame[key] = [float(r[key]) for r in found]
    return frame


def listing_html(found: list[dict], kind: str, paired: bool) -> str:
    """The first :data:`LISTED` selected samples as a table (numbered: the sample picker's numbers)."""
    frame = _listing_frame(found[:LISTED], kind, paired)
    frame["#"] = frame["#"].astype(str)  # a number of the list, not a score
    more = f"<p>the first {LISTED} of {len(found):,}: step through all with the sample number</p>" if len(found) > LISTED else ""
    return html_table(frame, table_id="inspect-table") + more


def images(run: inspecting.Run, sample_id) -> tuple[object, object, str]:
    """A sample's two images from the build the run was scored on, or (None, None, why not)."""
    found = inspecting.example(run, sample_id)
    if found["images"] is None:
        return None, None, found["note"]
    first, second = (found["images"][c] for c in run.view.image_columns)
    return first, second, ""


def _verdicts(row: dict, prefix: str = "") -> str:
    marks = {True: "right ✓", False: "wrong ✗"}
    return " · ".join(f"{n}: {marks[bool(row.get(f'{prefix}{n}_correct'))]}" for n in SCORE_NAMES)


def _vismin_given(row: dict, texts: tuple, prefix: str = "") -> str:
    """The 2x2 similarities (caption by image), or the four answers with what the parser read."""
    md = markdown_text
    if f"{prefix}{SCORE_COLUMNS[0]}" in row:
        cell = {c: f"{row[prefix + c]:.4g}" for c in SCORE_COLUMNS}
        return ("| similarity | image 0 | image 1 |\n|---|---|---|\n"
                f"| caption 0: {md(texts[0] or '')} | {cell['T0_I0']} | {cell['T0_I1']} |\n"
                f"| caption 1: {md(texts[1] or '')} | {cell['T1_I0']} | {cell['T1_I1']} |")
    lines = ["| question | answer | read as |", "|---|---|---|"]
    for column in ANSWER_COLUMNS:
        parsed = row.get(f"{prefix}{column}_parsed", "–")
        lines.append(f"| {column} | {md(str(row.get(prefix + column)))} | {md(str(parsed if parsed is not None else 'unread'))} |")
    return "\n".join(lines)


def sample_markdown(a: inspecting.Run, b: inspecting.Run | None, row: dict) -> str:
    """One selected sample as the tab shows it under its images: VisMin's verdicts and the 2x2 similarities
    or the four answers (A's and B's); a caption run's prediction(s) against the references."""
    md = markdown_text
    head = f"**{md(str(row['id']))}**"
    if a.view.kind == "vismin":
        found = inspecting.example(a, row["id"])
        texts = found.get("text_0"), found.get("text_1")
        head += f" · category **{md(str(row.get('category')))}**"
        if b is None:
            return f"{head}\n\n{_verdicts(row)}\n\n{_vismin_given(row, texts)}"
        return (f"{head}\n\n**A** ({md(a.name)}): {_verdicts(row, 'a_')}\n\n{_vismin_given(row, texts, 'a_')}\n\n"
                f"**B** ({md(b.name)}): {_verdicts(row, 'b_')}\n\n{_vismin_given(row, texts, 'b_')}")
    types = ", ".join(row.get("change_types") or [])
    head += f" · change types **{md(types)}**" if types else ""
    references = "\n".join(f"{k}. {md(r)}" for k, r in enumerate(row.get("references") or [], 1))
    if b is None:
        scores = " · ".join(f"{k} {row[k]:.2f}" for k in METRIC_KEYS if k in row)
        predicted = f"**Prediction**: {md(row['prediction'])}\n\n{scores}"
    else:
        scores = {side: " · ".join(f"{k} {row[f'{side}_{k}']:.2f}" for k in METRIC_KEYS if f"{side}_{k}" in row)
                  for side in ("a", "b")}
        predicted = (f"**A** ({md(a.name)}): {md(row['a_prediction'])}\n\n{scores['a']}\n\n"
                     f"**B** ({md(b.name)}): {md(row['b_prediction'])}\n\n{scores['b']}")
    return f"{head}\n\n{predicted}\n\n**References**:\n\n{references}"
