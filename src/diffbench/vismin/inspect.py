"""VisMin's view of a run (:mod:`diffbench.report.inspect`): a row a sample, its category, whether its text,
image and group are right under the official rule (as samples.jsonl records them: ``text_correct``,
``image_correct``, ``group_correct``), and what the run gave: the 2x2 similarities (``T0_I0``, ``T0_I1``,
``T1_I0``, ``T1_I1``) or the four answers (``Text_Q0`` ... ``Image_Q1``) with what the lenient parser read in
each (``Text_Q0_parsed`` ...: the option, ``ambiguous``, or None where it read none; absent when the run
used the strict parser).

    >>> row = VIEW.row({"id": "relation/4", "category": "relation",
    ...                 "answers": {"Text_Q0": "(A)", "Text_Q1": "A", "Image_Q0": "First", "Image_Q1": "Second"},
    ...                 "parsed": {"Text_Q0": "A", "Text_Q1": "A", "Image_Q0": "First", "Image_Q1": "Second"},
    ...                 "text_correct": False, "image_correct": True, "group_correct": False})
    >>> row["Text_Q1"], row["Text_Q1_parsed"], VIEW.cell(row, "Text_Q1")
    ('A', 'A', 'A [A]')
    >>> [r["id"] for r in VIEW.select([row], category="relation", right="image", wrong="text")]
    ['relation/4']
"""

from __future__ import annotations

from diffbench.report.inspect import View
from diffbench.vismin.schema import ANSWER_COLUMNS, CATEGORIES, SCORE_COLUMNS, SCORE_NAMES

VERDICTS = tuple(f"{name}_correct" for name in SCORE_NAMES)


def _outcome(name, option: str):
    if name is None:
        return None
    if name not in SCORE_NAMES:
        raise ValueError(f"{option} {name!r}: choose from {', '.join(SCORE_NAMES)}")
    return f"{name}_correct"


class VisminView(View):
    kind = "vismin"
    default_benchmark = "vismin"
    default_config = "bench"
    text_columns = ("text_0", "text_1")
    image_columns = ("image_0", "image_1")
    wrapped = frozenset({*ANSWER_COLUMNS, "text_0", "text_1"})

    def check(self, record: dict, where: str) -> None:
        """A ValueError naming ``where`` when a record lacks what VisMin's rows need."""
        if not all(isinstance(record.get(key), bool) for key in VERDICTS):
            raise ValueError(f"{where}: needs {', '.join(VERDICTS)} (true or false)")
        if not isinstance(record.get("scores"), dict) and not isinstance(record.get("answers"), dict):
            raise ValueError(f"{where}: needs scores ({', '.join(SCORE_COLUMNS)}) or answers ({', '.join(ANSWER_COLUMNS)})")

    def row(self, record: dict) -> dict:
        row = {"id": record["id"], "category": record.get("category"), **{k: record[k] for k in VERDICTS}}
        if isinstance(record.get("scores"), dict):
            row.update({c: record["scores"].get(c) for c in SCORE_COLUMNS})
        else:
            parsed = record.get("parsed")  # absent when the run used the strict parser
            for column in ANSWER_COLUMNS:
                row[column] = record["answers"].get(column)
                if parsed is not None:
                    row[f"{column}_parsed"] = parsed.get(column)
        return row

    def select(self, found_rows, *, category=None, change_type=None, wrong=None, right=None) -> list[dict]:
        if change_type is not None:
            raise ValueError(f"VisMin samples have a category, not change types: choose a category ({', '.join(CATEGORIES)})")
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"category {category!r}: choose from {', '.join(CATEGORIES)}")
        wrong, right = _outcome(wrong, "wrong"), _outcome(right, "right")
        return [row for row in found_rows if (category is None or row["category"] == category)
                and (wrong is None or not row[wrong]) and (right is None or row[right])]

    def order(self, found_rows, worst=None) -> list[dict]:
        """Group wrong first, then the fewest of text and image right (stable: the file's order within)."""
        _no_metric(worst)
        return sorted(found_rows, key=lambda r: (r["group_correct"], r["text_correct"] + r["image_correct"]))

    def join(self, a_row: dict, b_row: dict) -> dict:
        shared = ("id", "category")
        return {**{k: a_row[k] for k in shared}, **{f"a_{k}": v for k, v in a_row.items() if k not in shared},
                **{f"b_{k}": v for k, v in b_row.items() if k not in shared}}

    def order_pairs(self, joined, worst=None) -> list[dict]:
        """A right and B wrong (group) first, then B right and A wrong, then the others (each in id order)."""
        _no_metric(worst)
        return sorted(joined, key=lambda r: 0 if r["a_group_correct"] > r["b_group_correct"]
                      else 1 if r["a_group_correct"] < r["b_group_correct"] else 2)

    def columns(self, found_rows) -> list[tuple[str, str]]:
        first = found_rows[0]
        if "a_group_correct" in first:
            return [("id", "id"), ("category", "category"),
                    *[(f"A {n}", f"a_{n}_correct") for n in SCORE_NAMES], *[(f"B {n}", f"b_{n}_correct") for n in SCORE_NAMES]]
        given = SCORE_COLUMNS if SCORE_COLUMNS[0] in first else ANSWER_COLUMNS
        texts = [(c, c) for c in self.text_columns if c in first]
        return [("id", "id"), ("category", "category"), *[(n, f"{n}_correct") for n in SCORE_NAMES],
                *[(c, c) for c in given], *texts]

    def cell(self, row: dict, key: str) -> str:
        if key in ANSWER_COLUMNS and f"{key}_parsed" in row:  # the answer, and what the lenient parser read
            parsed = row[f"{key}_parsed"]
            return f"{row.get(key)} [{parsed if parsed is not None else 'unread'}]"
        if key in SCORE_COLUMNS and isinstance(row.get(key), float):
            return f"{row[key]:.4g}"
        return super().cell(row, key)


def _no_metric(worst) -> None:
    if worst is not None:
        raise ValueError("VisMin samples are right or wrong, not scored by a caption metric: "
                         "filter by wrong or right (text, image, group)")


VIEW = VisminView()
