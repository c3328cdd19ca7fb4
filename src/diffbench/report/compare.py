"""Two results on the same data, side by side: ``diffbench compare A B`` (what every benchmark shares).

A and B are result folders (results.json of :mod:`diffbench.report.layout` with samples.jsonl beside it,
as ``diffbench score`` and ``diffbench eval`` write them) or results.json paths. This module reads them
(:func:`load_run`), refuses two that are not on the same data (:func:`check_comparable`,
:func:`shared_ids`), hands the per-sample records, aligned by id, to a benchmark's comparer (VisMin:
:mod:`diffbench.vismin.compare`; captions: :mod:`diffbench.captions.compare`), and writes what it returns
as compare.json and compare.md, one set (:func:`write_comparison`).

compare.json (schema :data:`SCHEMA`): ``benchmark``, ``config``, ``split``, ``a`` and ``b`` (name, results
path, model, samples), ``samples`` (how many were compared), ``data`` (the build compared on), ``uncertainty``
(how the intervals and tests were made), ``scores`` (``{metric: entry}`` over every sample compared) and
``groups`` (``{group: {"samples": n, "scores": {metric: entry}}}``). An entry is :func:`difference`'s:
``a``, ``b``, ``difference`` (b - a), ``ci95`` (the 95% interval of the difference), ``test`` and
``p_value``, and what the test adds (McNemar: ``b01``, ``b10``).

    >>> entry = difference(50.0, 62.5, [2.5, 22.5], "mcnemar-exact", 0.03125, b01=5, b10=0)
    >>> entry["difference"], format_p(entry["p_value"]), format_difference(entry)
    (12.5, '0.031', '+12.50 ±10.00')
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from diffbench import files
from diffbench.data import provenance as data_provenance
from diffbench.report.layout import RESULTS_FILE, SAMPLES_FILE, check
from diffbench.text import markdown_text

SCHEMA = "diffbench.compare/1"
COMPARE_FILES = ("compare.json", "compare.md")
SIGNIFICANCE = 0.05


@dataclass
class Run:
    """One side of a comparison: its label, where its results.json is, the results, and its samples.jsonl
    records by id (in the file's order) with the line each came from."""

    name: str
    path: Path
    results: dict
    records: dict
    lines: dict

    @property
    def samples_file(self) -> Path:
        return self.path.parent / SAMPLES_FILE

    def where(self, sample_id) -> str:
        """``<samples.jsonl>, line N (id X)``: where a record came from, for errors."""
        return f"{self.samples_file}, line {self.lines[sample_id]} (id {sample_id!r})"


@dataclass
class Differences:
    """What a benchmark's comparer returns: ``scores`` (``{metric: entry}``), ``groups`` (``{group:
    {"samples": n, "scores": {metric: entry}}}``) and ``method``: ``{"interval": ..., "test": ...}``, a
    phrase each saying how the intervals and the p-values were made (compare.md prints them)."""

    scores: dict
    groups: dict
    method: dict


#: a benchmark's comparison: (A, B, the ids to compare (the same samples in the same order), resamples, seed)
Comparer = Callable[["Run", "Run", list, int, int], Differences]


def difference(a: float, b: float, ci95, test: str, p_value: float, **extra) -> dict:
    """One metric compared: both values, ``b - a``, its 95% interval, the test and its p-value (and what
    the test adds, e.g. McNemar's discordant counts)."""
    return {"a": a, "b": b, "difference": b - a, "ci95": list(ci95), "test": test, "p_value": p_value, **extra}


# -- reading --------------------------------------------------------------------------------------------


def results_path(path) -> Path:
    """results.json of a folder, or the path itself when it names a file."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no results at {path} (give a folder holding {RESULTS_FILE}, or the file)")
    return path


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None


def read_samples(path: Path) -> tuple[dict, dict]:
    """``(records, lines)`` of a samples.jsonl: each record by its id, and the line it is on; a line that is
    not a JSON object with an id, or an id seen before, is a ValueError naming the file and the line."""
    if not path.is_file():
        raise FileNotFoundError(f"no {SAMPLES_FILE} beside {path.parent / RESULTS_FILE} (results scored before "
                                "per-sample records were written: score it again)")
    records, lines = {}, {}
    with open(path, encoding="utf-8", errors="strict") as handle:
        try:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue  # a blank line (an editor's last newline) holds no sample
                record = _sample_record(path, number, line)
                sample_id = record["id"]
                if sample_id in records:
                    raise ValueError(f"{path}, line {number}: id {sample_id!r} again (first at line {lines[sample_id]})")
                records[sample_id], lines[sample_id] = record, number
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not UTF-8 text ({err.reason} after line {len(records)})") from None
    return records, lines


def _sample_record(path: Path, number: int, line: str) -> dict:
    try:
        record = json.loads(line.strip())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg}, column {err.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}, line {number}: not a JSON object")
    if not isinstance(record.get("id"), (str, int)) or isinstance(record.get("id"), bool) or record["id"] == "":
        raise ValueError(f"{path}, line {number}: no id (a string or an integer)")
    return record


def run_name(results: dict, results_file: Path) -> str:
    """A run's label: the model it ran, else its submission file's name, else its folder's."""
    if results.get("model"):
        return str(results["model"])
    if results.get("submission"):
        return Path(str(results["submission"])).stem
    return results_file.parent.name or str(results_file)


def load_run(path) -> Run:
    """A result folder (or a results.json path) with its samples.jsonl, checked."""
    found = results_path(path)
    results = check(read_json(found), str(found))
    records, lines = read_samples(found.parent / SAMPLES_FILE)
    if len(records) != results["samples"]:
        raise ValueError(f"{found.parent / SAMPLES_FILE} holds {len(records):,} samples but {found} says "
                         f"{results['samples']:,}: the two are not of one scoring")
    return Run(run_name(results, found), found, results, records, lines)


# -- the same data? -------------------------------------------------------------------------------------


def data_identity(provenance: dict) -> tuple:
    """What must agree for two results to be on the same data: the dataset, its configuration, the source
    and what pins its content (a Hub revision, a local folder's fingerprint); not the build's date or id,
    so the same data built twice compares."""
    pinned = {"hub": "revision", "local": "fingerprint"}.get(provenance.get("source"))
    return (provenance.get("dataset"), provenance.get("config"), *data_provenance.source_identity(provenance),
            provenance.get(pinned) if pinned else None)


def check_comparable(a: Run, b: Run) -> None:
    """A ValueError saying what differs when A and B are not results of one benchmark, configuration, split
    and build."""
    for key in ("benchmark", "config", "split"):
        if a.results.get(key) != b.results.get(key):
            raise ValueError(f"A and B are results of different {key}s ({a.results.get(key)!r} in {a.path}, "
                             f"{b.results.get(key)!r} in {b.path}): compare two results of one {key}")
    pa, pb = a.results.get("provenance") or {}, b.results.get("provenance") or {}
    if data_identity(pa) != data_identity(pb):
        raise ValueError(f"A and B were scored on different data (A: {data_provenance.describe(pa)}, "
                         f"B: {data_provenance.describe(pb)}): compare two results of one build")


def shared_ids(a: Run, b: Run, intersect: bool = False) -> list:
    """The ids both hold, in one order whatever the files' order (sorted); different id sets are refused,
    saying how many differ, unless ``intersect``."""
    only_a = [i for i in a.records if i not in b.records]
    only_b = [i for i in b.records if i not in a.records]
    if (only_a or only_b) and not intersect:
        example = (only_a or only_b)[0]
        raise ValueError(f"A and B cover different samples: {len(only_a):,} ids only in A ({a.samples_file}), "
                         f"{len(only_b):,} only in B ({b.samples_file}), e.g. {example!r}; "
                         f"--intersect compares the {len(a.records) - len(only_a):,} they share")
    ids = sorted((i for i in a.records if i in b.records), key=lambda i: (isinstance(i, str), i))
    if not ids:
        raise ValueError(f"A and B share no sample ids ({a.samples_file}, {b.samples_file})")
    return ids


# -- the comparison -------------------------------------------------------------------------------------


def compare(a: Run, b: Run, comparer: Comparer, *, intersect: bool = False, resamples: int, seed: int) -> dict:
    """compare.json's content: A and B checked to be on the same data, their records aligned by id and
    handed to ``comparer``."""
    check_comparable(a, b)
    ids = shared_ids(a, b, intersect)
    found = comparer(a, b, ids, resamples, seed)
    provenance = a.results.get("provenance") or {}
    return _finite({
        "schema": SCHEMA, "benchmark": a.results["benchmark"], "config": a.results.get("config"),
        "split": a.results.get("split"), "a": _side(a), "b": _side(b), "samples": len(ids),
        "data": {"source": data_provenance.describe(provenance), "synthetic": provenance.get("synthetic"),
                 "intersect": intersect, "samples_only_a": len(a.records) - len(ids),
                 "samples_only_b": len(b.records) - len(ids)},
        "uncertainty": {**found.method, "resamples": resamples, "seed": seed, "level": 0.95},
        "scores": found.scores, "groups": found.groups})


def _side(run: Run) -> dict:
    return {"name": run.name, "results": str(run.path), "model": run.results.get("model"),
            "submission": run.results.get("submission"), "samples": len(run.records)}


def _finite(value):
    """``value`` with every NaN as ``null`` (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# -- compare.md -----------------------------------------------------------------------------------------


def format_p(p_value) -> str:
    if p_value is None:
        return "–"
    return f"{p_value:.3f}" if p_value >= 0.001 else f"{p_value:.1e}"


def format_difference(entry: dict) -> str:
    """``+12.50 ±10.00``: the difference and half the width of its 95% interval (the bounds: compare.json)."""
    low, high = entry["ci95"]
    spread = "" if low is None or high is None else f" ±{(high - low) / 2:.2f}"
    return f"{entry['difference']:+.2f}{spread}"


def _row(group: str, metric: str, entry: dict, discordant: bool) -> str:
    p_value = entry["p_value"]
    mark = "*" if p_value is not None and p_value < SIGNIFICANCE else ""
    cells = [markdown_text(group), metric, f"{entry['a']:.2f}", f"{entry['b']:.2f}", format_difference(entry),
             format_p(p_value), mark]
    if discordant:
        cells.append(f"{entry['b10']} / {entry['b01']}" if "b01" in entry else "–")
    return "| " + " | ".join(cells) + " |"


def format_markdown(comparison: dict) -> str:
    """compare.md: who is A and B, then one row a metric (overall, then each group): A, B, B − A ± half its
    95% interval, the p-value, ``*`` where p < 0.05; McNemar's discordant counts where there are some."""
    a, b = comparison["a"], comparison["b"]
    entries = [("all", comparison["scores"])] + [(g, v["scores"]) for g, v in comparison["groups"].items()]
    discordant = any("b01" in e for _, scores in entries for e in scores.values())
    header = ["Group", "Metric", "A", "B", "B − A", "p", ""] + (["A only / B only"] if discordant else [])
    lines = [f"# Compare {comparison['benchmark']}: B − A", "",
             f"- A: {markdown_text(a['name'])} ({markdown_text(a['results'])})",
             f"- B: {markdown_text(b['name'])} ({markdown_text(b['results'])})",
             f"- {comparison['samples']:,} samples of {comparison['benchmark']} {comparison['config']}/"
             f"{comparison['split']}, {comparison['data']['source']}", "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---", "---"] + ["---:"] * 4 + ["---"]
                                                             + (["---:"] if discordant else [])) + "|"]
    lines += [_row(group, metric, entry, discordant) for group, scores in entries for metric, entry in scores.items()]
    method = comparison["uncertainty"]
    lines += ["", f"Scores in %. B − A: the difference, ± half its 95% interval ({method['interval']}; "
                  f"{method['resamples']:,} resamples, seed {method['seed']}; the bounds are in compare.json). "
                  f"p: {method['test']}. * p < {SIGNIFICANCE} (each row tested alone: no correction for the "
                  "number of rows)."]
    if comparison["data"]["intersect"]:
        lines.append(f"Compared on the samples both hold: {comparison['data']['samples_only_a']:,} only in A and "
                     f"{comparison['data']['samples_only_b']:,} only in B left out.")
    if comparison["data"]["synthetic"]:
        lines.append(f"**{data_provenance.SYNTHETIC_NOTE}**.")
    return "\n".join(lines) + "\n"


def write_comparison(out, comparison: dict, overwrite: bool = False) -> list[Path]:
    """compare.json and compare.md in ``out`` as one set (never over files diffbench did not write there,
    unless ``overwrite``)."""
    out = Path(out)
    with files.staged(out, overwrite=overwrite, names=COMPARE_FILES) as folder:
        files.write_atomically(folder / COMPARE_FILES[0], json.dumps(comparison, indent=2, ensure_ascii=False) + "\n")
        files.write_atomically(folder / COMPARE_FILES[1], format_markdown(comparison))
    return [out / name for name in COMPARE_FILES]
