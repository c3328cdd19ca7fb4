"""A difference-captioning run's view (:mod:`diffbench.report.inspect`): a row a sample, its change types
(and ``distractor`` on CLEVR-Change), the prediction against its references, and pycocoevalcap's
per-sample values x 100 as samples.jsonl records them (``Bleu_4``, ``METEOR``, ``ROUGE_L``, ``CIDEr``
(CIDEr-D within the whole corpus), ``SPICE``: those the run scored). Worst first: a metric ascending.

A change type filters by the groups results.json reports: a caption set's change types, CLEVR-Change's
official parts (``semantic_change``, its five types, ``distractor``).

    >>> rows = [{"id": "a", "change_types": ["color"], "prediction": "x", "references": ["y"], "CIDEr": 50.0},
    ...         {"id": "b", "change_types": ["add"], "prediction": "y", "references": ["y"], "CIDEr": 0.0}]
    >>> [r["id"] for r in VIEW.order(VIEW.select(rows), "cider")], metric_key("meteor")
    (['b', 'a'], 'METEOR')
    >>> [r["id"] for r in VIEW.select(rows, change_type="add")]
    ['b']
"""

from __future__ import annotations

from diffbench.captions.clevr_change import clevr_change_groups
from diffbench.report.inspect import View

#: samples.jsonl's per-sample metrics (:func:`diffbench.captions.scoring.sample_records`), the order shown
METRIC_KEYS = ("CIDEr", "METEOR", "Bleu_4", "ROUGE_L", "SPICE")
_NAMES = {"cider": "CIDEr", "cider-d": "CIDEr", "cider_d": "CIDEr", "meteor": "METEOR", "bleu": "Bleu_4",
          "bleu_4": "Bleu_4", "bleu-4": "Bleu_4", "rouge": "ROUGE_L", "rouge_l": "ROUGE_L", "rouge-l": "ROUGE_L",
          "spice": "SPICE"}


def metric_key(name: str) -> str:
    """samples.jsonl's key of a metric named as a user would (``cider``, ``METEOR``, ``bleu``...)."""
    key = _NAMES.get(str(name).lower())
    if key is None:
        raise ValueError(f"metric {name!r}: choose from cider, meteor, bleu_4, rouge_l, spice")
    return key


def groups_of(row: dict) -> list[str]:
    """The groups a row counts in (results.json's ``groups``)."""
    if "distractor" in row:
        return clevr_change_groups(bool(row["distractor"]), row.get("change_types"))
    return list(row.get("change_types") or [])


def _sort_metric(found_rows, worst, suffix: str = "") -> str | None:
    """The metric rows are ordered by: ``worst``'s key, checked to be in the rows (``<key><suffix>``), or
    CIDEr-D, else the first metric they hold; None when they hold none (or there are no rows)."""
    if not found_rows:
        return None
    present = [k for k in METRIC_KEYS if f"{k}{suffix}" in found_rows[0]]
    if worst is None:
        return present[0] if present else None
    key = metric_key(worst)
    if key not in present:
        raise ValueError(f"the run holds no per-sample {key} (it has {', '.join(present) or 'none'}): "
                         "score it with that metric")
    return key


class CaptionsView(View):
    kind = "captions"
    default_config = None
    image_columns = ("image_before", "image_after")
    wrapped = frozenset({"prediction", "references", "a_prediction", "b_prediction"})

    def check(self, record: dict, where: str) -> None:
        if not isinstance(record.get("prediction"), str) or not isinstance(record.get("references"), list):
            raise ValueError(f"{where}: needs prediction (a string) and references (a list of strings)")

    def row(self, record: dict) -> dict:
        row = {"id": record["id"], "change_types": list(record.get("change_types") or [])}
        if "distractor" in record:
            row["distractor"] = record["distractor"]
        row.update(prediction=record["prediction"], references=list(record["references"]))
        row.update({key: record[key] for key in METRIC_KEYS if key in record})
        return row

    def select(self, found_rows, *, category=None, change_type=None, wrong=None, right=None) -> list[dict]:
        if category is not None:
            raise ValueError("caption samples have change types, not a category: filter by change type")
        if wrong is not None or right is not None:
            raise ValueError("a caption is not right or wrong: order the samples by a metric (worst: cider, meteor)")
        if change_type is None:
            return list(found_rows)
        groups = [groups_of(row) for row in found_rows]
        known = sorted({g for labels in groups for g in labels})
        if found_rows and change_type not in known:
            raise ValueError(f"change type {change_type!r}: the run's samples have {', '.join(known) or 'none'}")
        return [row for row, labels in zip(found_rows, groups) if change_type in labels]

    def order(self, found_rows, worst=None) -> list[dict]:
        """By ``worst`` ascending (default CIDEr-D, else the first metric the run has); stable."""
        key = _sort_metric(found_rows, worst)
        return found_rows if key is None else sorted(found_rows, key=lambda r: r[key])

    def join(self, a_row: dict, b_row: dict) -> dict:
        shared = [k for k in ("id", "change_types", "distractor", "references") if k in a_row]
        joined = {k: a_row[k] for k in shared}
        joined.update(a_prediction=a_row["prediction"], b_prediction=b_row["prediction"])
        for key in METRIC_KEYS:
            if key in a_row and key in b_row:
                joined.update({f"a_{key}": a_row[key], f"b_{key}": b_row[key], f"{key}_a_minus_b": a_row[key] - b_row[key]})
        return joined

    def order_pairs(self, joined, worst=None) -> list[dict]:
        """By A - B of CIDEr-D (else the first shared metric) descending: where A is ahead most first;
        ``worst``: by A - B of that metric ascending, where A trails most first."""
        key = _sort_metric(joined, worst, "_a_minus_b")
        if key is None:
            return joined
        return sorted(joined, key=lambda r: r[f"{key}_a_minus_b"] * (1 if worst is not None else -1))

    def columns(self, found_rows) -> list[tuple[str, str]]:
        first = found_rows[0]
        if "a_prediction" in first:
            shown = [k for k in METRIC_KEYS if f"a_{k}" in first][:1]
            metrics = [(header, f"{side}{k}") for k in shown
                       for header, side in ((f"A {k}", "a_"), (f"B {k}", "b_"))] + [(f"{k} A-B", f"{k}_a_minus_b") for k in shown]
            return [("id", "id"), ("change types", "change_types"), *metrics, ("A prediction", "a_prediction"),
                    ("B prediction", "b_prediction"), ("references", "references")]
        metrics = [(k, k) for k in METRIC_KEYS if k in first][:2]
        return [("id", "id"), ("change types", "change_types"), *metrics, ("prediction", "prediction"),
                ("references", "references")]

    def cell(self, row: dict, key: str) -> str:
        if key == "references":
            return " ".join(f"[{k}] {reference}" for k, reference in enumerate(row[key], 1))
        return super().cell(row, key)


VIEW = CaptionsView()
