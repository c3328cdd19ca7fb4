"""Inspect a run: its samples one by one, filtered, with their images, alone or beside another run on the
same data (``diffbench inspect``, the Space's "Inspect a run" tab).

A run is what ``diffbench score`` and ``diffbench eval`` write: a folder with results.json
(:mod:`diffbench.report.layout`) and samples.jsonl, that results.json, or a samples.jsonl alone (an upload:
then nothing says which build it was scored on, and ``benchmark``/``config``/``split`` may say it).
:func:`load` reads it (through :mod:`diffbench.report.compare`'s reader: the same checks, the same one-line
errors naming file and line) and picks the benchmark's view from the records: VisMin's
(:mod:`diffbench.vismin.inspect`: category, text / image / group right or wrong, the 2x2 similarities or the
four answers and what the lenient parser read in them, the two texts from the build) or the captions' (:mod:`diffbench.captions.inspect`:
change types, the prediction against the references, pycocoevalcap's per-sample BLEU-4, METEOR, ROUGE-L,
CIDEr-D). The view is imported when a run of its benchmark is loaded: this module imports no benchmark.

The API (every row a plain dict of JSON values; :func:`frame` makes a pandas DataFrame of rows):

- :func:`load` ``(path, *, benchmark=None, config=None, split=None) -> Run``;
- :func:`rows` ``(run, *, category=None, change_type=None, wrong=None, right=None, worst=None, n=None,
  texts=False)``: the samples, the ones the run got wrong first (VisMin: group wrong, then by how many of
  text / image are wrong; captions: CIDEr-D ascending), filtered by group and outcome; ``worst`` sorts by
  a caption metric ascending; ``texts`` adds VisMin's two texts from the build;
- :func:`built` ``(run) -> Built``: the built split the run was scored on (``dataset`` None, with ``note``
  saying why, when it is not built or the cache holds another build): never raises for it;
- :func:`images` ``(run, sample_id, dataset=None) -> {column: PIL.Image} | None`` and :func:`example`
  ``(run, sample_id, dataset=None) -> dict``: a sample's images (None when the build is absent) and its row
  with its texts and images;
- :func:`pair` ``(a, b, *, intersect=False) -> Pair``: two runs on the same data, refused as ``diffbench
  compare`` refuses them (:func:`diffbench.report.compare.check_comparable`, :func:`~diffbench.report.compare.shared_ids`);
- :func:`side_by_side` ``(pair, *, category=None, change_type=None, a_right=None, a_wrong=None,
  b_right=None, b_wrong=None, worst=None, n=None)``: one row a shared sample, A's columns prefixed ``a_``,
  B's ``b_``; VisMin: the samples A got right and B wrong first (``a_right="group", b_wrong="group"``
  keeps only those); captions: ``<metric>_a_minus_b``, A ahead of B most first (``worst`` sorts ascending:
  where A trails B most);
- :func:`format_table` ``(rows, view)``: the terminal's table (text from users through
  :func:`diffbench.text.printable`), :func:`json_lines` ``(rows)``: one JSON object a row, ASCII only.

Runnable on a samples.jsonl written here (the same records ``diffbench score vismin`` writes):

    >>> import json, pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> records = [{"id": f"object/{k}", "category": "object",
    ...             "scores": {"T0_I0": 1.0, "T0_I1": 0.0, "T1_I0": float(k), "T1_I1": 1.0},
    ...             "text_correct": k == 0, "image_correct": True, "group_correct": k == 0} for k in range(3)]
    >>> _ = (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in records))
    >>> run = load(folder / "samples.jsonl")
    >>> run.view.kind, run.benchmark, len(run.records)
    ('vismin', 'vismin', 3)
    >>> [row["id"] for row in rows(run, wrong="group")]
    ['object/1', 'object/2']
    >>> row = rows(run, n=1)[0]
    >>> row["id"], row["group_correct"], row["T1_I0"]
    ('object/1', False, 1.0)
    >>> print(format_table(rows(run, right="group"), run.view))
    id        category  text   image  group  T0_I0  T0_I1  T1_I0  T1_I1
    object/0  object    right  right  right  1      0      0      1

B, the same samples with object/0 wrong and object/1 right; A right and B wrong first, then B right and A wrong:

    >>> other = pathlib.Path(tempfile.mkdtemp())
    >>> flipped = [{**r, "text_correct": k == 1, "group_correct": k == 1} for k, r in enumerate(records)]
    >>> _ = (other / "samples.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in flipped))
    >>> both = pair(run, load(other / "samples.jsonl"))
    >>> [(r["id"], r["a_group_correct"], r["b_group_correct"]) for r in side_by_side(both)]
    [('object/0', True, False), ('object/1', False, True), ('object/2', False, False)]
    >>> [r["id"] for r in side_by_side(both, a_right="group", b_wrong="group")]
    ['object/0']
"""

from __future__ import annotations

import importlib
import json
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from diffbench.report import compare
from diffbench.report.layout import RESULTS_FILE, SAMPLES_FILE
from diffbench.text import printable

#: the modules holding each kind's view (a ``VIEW`` object), imported when a run of that kind is loaded
VIEW_MODULES = {"vismin": "diffbench.vismin.inspect", "captions": "diffbench.captions.inspect"}
#: rows a terminal table shows unless told (``-n``)
DEFAULT_SHOWN = 20


@dataclass
class Run:
    """A loaded run: its label, the file it was read from (results.json, or the samples.jsonl of a run
    given without one), ``results`` (None without results.json), its records ``{id: record}`` in the file's
    order with the line each came from, what it was scored on (``benchmark``, ``config``, ``split``: None
    where nothing says) and its benchmark's view."""

    name: str
    path: Path
    results: dict | None
    records: dict
    lines: dict
    benchmark: str | None
    config: str | None
    split: str | None
    view: object
    samples_file: Path = field(default=None)
    _built: object = field(default=None, repr=False)

    def where(self, sample_id) -> str:
        return f"{self.samples_file}, line {self.lines[sample_id]} (id {sample_id!r})"

    def as_compared(self) -> compare.Run:
        """This run as :mod:`diffbench.report.compare` reads one (its checks need ``results``)."""
        results = self.results or {"benchmark": self.benchmark, "config": self.config, "split": self.split,
                                   "provenance": {}}
        return compare.Run(self.name, self.samples_file.parent / RESULTS_FILE, results, self.records, self.lines)


@dataclass
class Built:
    """The built split a run was scored on: ``dataset`` (a ``datasets.Dataset``) and ``index`` ({id: row}),
    or ``dataset`` None and ``note`` saying why there are no images."""

    dataset: object = None
    index: dict = field(default_factory=dict)
    note: str = ""


@dataclass
class Pair:
    """Two runs on the same data and the ids they share (sorted, as ``diffbench compare`` orders them)."""

    a: Run
    b: Run
    ids: list
    view: object


class View:
    """What a benchmark's view gives (:mod:`diffbench.vismin.inspect`, :mod:`diffbench.captions.inspect`
    subclass it): the defaults naming a bare samples.jsonl's data, the build's text and image columns, and
    how a record becomes a row, is filtered, ordered, joined with another run's and printed."""

    kind = ""
    default_benchmark: str | None = None
    default_config: str | None = None
    default_split: str | None = "test"
    text_columns: tuple = ()
    image_columns: tuple = ()
    #: columns of the terminal table that wrap (long text) rather than widen the table
    wrapped: frozenset = frozenset()

    def check(self, record: dict, where: str) -> None:
        raise NotImplementedError

    def row(self, record: dict) -> dict:
        raise NotImplementedError

    def select(self, found_rows, *, category=None, change_type=None, wrong=None, right=None) -> list[dict]:
        raise NotImplementedError

    def order(self, found_rows, worst=None) -> list[dict]:
        raise NotImplementedError

    def join(self, a_row: dict, b_row: dict) -> dict:
        raise NotImplementedError

    def order_pairs(self, joined, worst=None) -> list[dict]:
        raise NotImplementedError

    def columns(self, found_rows) -> list[tuple[str, str]]:
        """``[(header, key)]`` of the terminal table."""
        raise NotImplementedError

    def cell(self, row: dict, key: str) -> str:
        """A cell's text: right / wrong for a verdict, a list joined, None as ``-``."""
        value = row.get(key)
        if isinstance(value, bool):
            return "right" if value else "wrong"
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.2f}"
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value) or "-"
        return str(value)


# -- loading --------------------------------------------------------------------------------------------


def load(path, *, benchmark: str | None = None, config: str | None = None, split: str | None = None) -> Run:
    """A run from a folder, its results.json, or a samples.jsonl (with results.json beside it when there is
    one); ``benchmark``, ``config`` and ``split`` name the data of a samples.jsonl that came alone (and must
    agree with results.json's when given)."""
    path = Path(path)
    if path.is_file() and path.name != RESULTS_FILE and not (path.parent / RESULTS_FILE).is_file():
        return _load_bare(path, benchmark, config, split)
    if path.is_file() and path.name != RESULTS_FILE:
        path = path.parent  # a samples.jsonl with its results.json beside it: the whole run
    found = compare.load_run(path)
    results = found.results
    for key, given in (("benchmark", benchmark), ("config", config), ("split", split)):
        if given is not None and given != results.get(key):
            raise ValueError(f"{found.path} is a run of {key} {results.get(key)!r}, not {given!r}")
    view = view_of(found.records, found.samples_file, results["benchmark"])
    return Run(found.name, found.path, results, found.records, found.lines, results["benchmark"],
               results.get("config"), results.get("split"), view, found.samples_file)


def _load_bare(path: Path, benchmark, config, split) -> Run:
    records, lines = compare.read_samples(path)
    if not records:
        raise ValueError(f"{path}: no samples")
    view = view_of(records, path, benchmark)
    benchmark = benchmark or view.default_benchmark
    name = path.parent.name if path.name == SAMPLES_FILE else path.stem
    return Run(name or str(path), path, None, records, lines, benchmark, config or view.default_config,
               split or view.default_split, view, path)


def view_of(records: dict, source: Path, benchmark: str | None = None):
    """The view of the benchmark whose records these are (VisMin's hold ``group_correct``, a caption
    set's ``prediction``), checked against ``benchmark`` when one is named."""
    first_id = next(iter(records), None)
    first = records.get(first_id, {})
    kind = "vismin" if "group_correct" in first else "captions" if "prediction" in first else None
    if kind is None:
        raise ValueError(f"{source}: its records are neither VisMin's (group_correct) nor a caption set's "
                         f"(prediction): is it a samples.jsonl of diffbench score or eval?")
    if benchmark is not None and (benchmark == "vismin") != (kind == "vismin"):
        raise ValueError(f"{source}: records of a {kind} run, but the run is named {benchmark!r}")
    view = importlib.import_module(VIEW_MODULES[kind]).VIEW
    for sample_id, record in records.items():
        view.check(record, f"{source}, id {sample_id!r}")
    return view


# -- rows -----------------------------------------------------------------------------------------------


def rows(run: Run, *, category=None, change_type=None, wrong=None, right=None, worst=None, n=None,
         texts: bool = False) -> list[dict]:
    """The run's samples as rows (see the module docstring): filtered, ordered worst first, the first ``n``;
    ``texts``: with the build's texts where the view has some (VisMin's text_0, text_1; None without the build)."""
    view = run.view
    selected = [view.row(record) for record in run.records.values()]
    selected = view.select(selected, category=category, change_type=change_type, wrong=wrong, right=right)
    selected = view.order(selected, worst)
    selected = selected if n is None else selected[:max(0, int(n))]
    return with_texts(run, selected) if texts else selected


def with_texts(run: Run, found_rows: list[dict]) -> list[dict]:
    """``found_rows`` with the build's text columns of the view (None in each without the build)."""
    columns = run.view.text_columns
    if not columns:
        return found_rows
    found = built(run)
    if found.dataset is None:
        return [{**row, **dict.fromkeys(columns)} for row in found_rows]
    table = found.dataset.select_columns(list(columns)).to_dict()  # the texts only: no image decoded
    return [{**row, **{c: table[c][found.index[str(row["id"])]] for c in columns}} for row in found_rows]


def frame(found_rows: list[dict]):
    """The rows as a pandas DataFrame (one column a key, in the rows' order)."""
    import pandas as pd

    return pd.DataFrame.from_records(found_rows)


# -- the build's images -----------------------------------------------------------------------------------


def built(run: Run) -> Built:
    """The built split ``run`` was scored on, found once and kept; ``Built(None, note=...)`` when the cache
    does not hold it (never an error: a listing does not need images)."""
    if run._built is None:
        run._built = _find_build(run)
    return run._built


def _find_build(run: Run) -> Built:
    from diffbench.data import provenance
    from diffbench.data.building import NotBuiltError, load_built

    if run.benchmark is None:
        return Built(note=f"{run.samples_file} came without results.json: name its benchmark to see its images")
    try:
        dataset = load_built(run.benchmark, run.config if run.config != "default" else None, run.split)
    except (NotBuiltError, ValueError, FileNotFoundError, KeyError) as err:
        return Built(note=f"no images: {err}")
    recorded = (run.results or {}).get("provenance")
    if recorded and compare.data_identity(recorded) != compare.data_identity(provenance.of_dataset(dataset)):
        return Built(note=f"no images: the {run.benchmark} build in the cache ({provenance.describe(provenance.of_dataset(dataset))}) "
                          f"is not the one this run was scored on ({provenance.describe(recorded)})")
    index = {str(sample_id): k for k, sample_id in enumerate(dataset["id"])}
    missing = [i for i in run.records if str(i) not in index]
    if missing:
        return Built(note=f"no images: the {run.benchmark} build in the cache lacks {len(missing):,} of the run's "
                          f"ids (e.g. {missing[0]!r}): another build")
    return Built(dataset, index)


def example(run: Run, sample_id, dataset=None) -> dict:
    """A sample's row with the build's texts and images (``images`` None, ``note`` saying why, when the
    build is absent); a KeyError naming the samples file for an id the run does not hold."""
    if sample_id not in run.records:
        raise KeyError(f"{run.samples_file} holds no sample {sample_id!r}")
    found = Built(dataset, {str(i): k for k, i in enumerate(dataset["id"])}) if dataset is not None else built(run)
    row = run.view.row(run.records[sample_id])
    if found.dataset is None:
        return {**row, "images": None, "note": found.note}
    item = found.dataset[found.index[str(sample_id)]]
    return {**row, **{c: item[c] for c in run.view.text_columns},
            "images": {c: item[c] for c in run.view.image_columns}, "note": ""}


def images(run: Run, sample_id, dataset=None) -> dict | None:
    """``{column: PIL.Image}`` of a sample (VisMin: image_0, image_1; captions: image_before, image_after),
    or None when the build is absent (:func:`built` says why)."""
    return example(run, sample_id, dataset)["images"]


# -- two runs -------------------------------------------------------------------------------------------


def pair(a: Run, b: Run, *, intersect: bool = False) -> Pair:
    """A and B on the same data: refused, in one line, as ``diffbench compare`` refuses two results of
    different benchmarks, configurations, splits, builds or samples (``intersect``: the samples both hold).
    A run without results.json is checked on what it says (its benchmark, config and split) and its ids."""
    if a.view is not b.view:
        raise ValueError(f"A ({a.path}) and B ({b.path}) are runs of different benchmarks "
                         f"({a.view.kind}, {b.view.kind}): inspect two runs on the same data")
    compared_a, compared_b = a.as_compared(), b.as_compared()
    if a.results is not None and b.results is not None:
        compare.check_comparable(compared_a, compared_b)
    else:
        for key in ("benchmark", "config", "split"):
            if getattr(a, key) != getattr(b, key):
                raise ValueError(f"A and B are runs of different {key}s ({getattr(a, key)!r} in {a.path}, "
                                 f"{getattr(b, key)!r} in {b.path}): inspect two runs of one {key}")
    return Pair(a, b, compare.shared_ids(compared_a, compared_b, intersect), a.view)


def side_by_side(found: Pair, *, category=None, change_type=None, a_right=None, a_wrong=None, b_right=None,
                 b_wrong=None, worst=None, n=None) -> list[dict]:
    """One row a shared sample (see the module docstring), filtered, ordered A-ahead-first, the first ``n``."""
    view = found.view
    a_rows = {r["id"]: r for r in view.select([view.row(found.a.records[i]) for i in found.ids],
                                              category=category, change_type=change_type, wrong=a_wrong, right=a_right)}
    b_rows = {r["id"]: r for r in view.select([view.row(found.b.records[i]) for i in found.ids if i in a_rows],
                                              wrong=b_wrong, right=b_right)}
    joined = [view.join(a_rows[i], b_rows[i]) for i in found.ids if i in b_rows]
    joined = view.order_pairs(joined, worst)
    return joined if n is None else joined[:max(0, int(n))]


# -- printing -------------------------------------------------------------------------------------------


def json_lines(found_rows: list[dict]) -> str:
    """One JSON object a row; ASCII only (every other character escaped), so no text from a user reaches
    the terminal as anything but text."""
    return "".join(json.dumps(row, ensure_ascii=True) + "\n" for row in found_rows)


def format_table(found_rows: list[dict], view, width: int | None = None) -> str:
    """The rows as a plain-text table: the view's columns, long text wrapped to fit ``width`` (the
    terminal's by default); every cell through :func:`diffbench.text.printable`."""
    if not found_rows:
        return "(no samples)"
    columns = view.columns(found_rows)
    cells = [[printable(view.cell(row, key)) for _, key in columns] for row in found_rows]
    headers = [header for header, _ in columns]
    widths = [max(len(h), *(len(r[k]) for r in cells)) for k, h in enumerate(headers)]
    widths = _fit(widths, [key in view.wrapped for _, key in columns],
                  width or shutil.get_terminal_size((120, 24)).columns)
    lines = [_line(headers, widths)]
    for row in cells:
        wrapped = [textwrap.wrap(cell, w) or [""] for cell, w in zip(row, widths)]
        for depth in range(max(len(w) for w in wrapped)):
            lines.append(_line([w[depth] if depth < len(w) else "" for w in wrapped], widths))
    return "\n".join(lines)


def _fit(widths: list[int], wrappable: list[bool], total: int) -> list[int]:
    """The wrappable columns narrowed, the widest first, until the table fits ``total`` (never under 16)."""
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > total:
        candidates = [k for k, ok in enumerate(wrappable) if ok and widths[k] > 16]
        if not candidates:
            break
        widest = max(candidates, key=lambda k: widths[k])
        widths[widest] -= 1
    return widths


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()
