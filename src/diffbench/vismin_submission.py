"""Score an official VisMin submission CSV against the built benchmark, as the paper reports it.

A submission is one of the two official formats (rabiulcste/vismin, ``vismin-bench/README.md``):

- similarity scores of a contrastive model: ``id,T0_I0,T0_I1,T1_I0,T1_I1``;
- answers of a chat model: ``id,Text_Q0,Text_Q1,Image_Q0,Image_Q1``.

``id`` is either ours, ``<category>/<upstream id>`` (the ``id`` column of ``load_dataset("vismin")``),
or the upstream integer id. Upstream ids restart at 0 in each category, so an integer id needs a
``category`` column beside it, unless the file lists every sample in the dataset's order (the official
scorer matches rows by position). Missing, extra and duplicate ids are reported, never skipped
silently. The scores come from the ``vismin_group_score`` metric (``metrics/vismin_group_score/``).

    >>> published_results().loc[lambda t: t.model == "Random Chance", "avg_as_published"].item()
    22.22
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

SCORE_COLUMNS = ("T0_I0", "T0_I1", "T1_I0", "T1_I1")
ANSWER_COLUMNS = ("Text_Q0", "Text_Q1", "Image_Q0", "Image_Q1")
KINDS = {"scores": SCORE_COLUMNS, "answers": ANSWER_COLUMNS}
CATEGORIES = ("object", "attribute", "relation", "counting")  # the order of the published tables
SHOWN_IDS = 5  # how many offending ids an error message lists


def _line(row: int) -> int:
    """The CSV line of a data row (the header is line 1)."""
    return row + 2


def _examples(items) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:SHOWN_IDS])
    return shown + (f", ... ({len(items)} in all)" if len(items) > SHOWN_IDS else "")


# -- reading --------------------------------------------------------------------------------------


def submission_kind(columns, source: str = "submission") -> str:
    """``"scores"`` or ``"answers"`` from the header; a ValueError names the missing columns."""
    present = {kind: [c for c in cols if c in columns] for kind, cols in KINDS.items()}
    complete = [kind for kind, cols in KINDS.items() if len(present[kind]) == len(cols)]
    if "id" in columns and len(complete) == 1:
        return complete[0]
    if len(complete) == 2:
        raise ValueError(f"{source}: has both the score columns and the answer columns; a submission holds one kind")
    closest = max(KINDS, key=lambda kind: len(present[kind]))
    missing = [c for c in ("id", *KINDS[closest]) if c not in columns]
    raise ValueError(
        f"{source}: missing columns {missing}; a VisMin submission has id,{','.join(SCORE_COLUMNS)} "
        f"(similarity scores) or id,{','.join(ANSWER_COLUMNS)} (a chat model's answers)"
    )


def validate_submission(frame: pd.DataFrame, source: str = "submission") -> pd.DataFrame:
    """A checked copy of a submission table: ids present, score cells finite numbers, answers strings.

    The result's ``attrs["kind"]`` says which format it is.
    """
    frame = frame.rename(columns=lambda c: str(c).strip())
    kind = submission_kind(frame.columns, source)
    if frame.empty:
        raise ValueError(f"{source}: has a header but no rows")
    frame = frame.reset_index(drop=True).copy()
    ids = frame["id"].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip())
    if (ids == "").any():
        row = int((ids == "").idxmax())
        raise ValueError(f"{source}, line {_line(row)}, column id: empty id")
    frame["id"] = ids
    if kind == "scores":
        for column in SCORE_COLUMNS:
            frame[column] = _numbers(frame, column, source)
    else:
        for column in ANSWER_COLUMNS:
            bad = frame[column].map(lambda v: not isinstance(v, str))
            if bad.any():
                row = int(bad.idxmax())
                value = frame.at[row, column]
                value = value.item() if isinstance(value, np.generic) else value  # 1, not np.int64(1)
                raise ValueError(
                    f"{source}, line {_line(row)} (id {frame.at[row, 'id']!r}), column {column}: "
                    f"{value!r} is not a string answer"
                )
    frame.attrs["kind"] = kind
    return frame


def _numbers(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce").astype("float64")  # text that is no number -> NaN
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"{source}, line {_line(row)} (id {frame.at[row, 'id']!r}), column {column}: "
            f"{frame.at[row, column]!r} is not a finite number"
        )
    return values


def read_submission(path) -> pd.DataFrame:
    """Read and check an official submission CSV; errors name the file, the line and the column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no submission file at {path}")
    try:
        # Everything as text: numbers are checked cell by cell, and an empty answer stays "" (wrong).
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({err})") from None
    return validate_submission(frame, source=str(path))


# -- joining on the dataset -----------------------------------------------------------------------


def dataset_keys(dataset) -> pd.DataFrame:
    """``id``, ``upstream_id`` and ``category`` (names) of every benchmark row, without decoding images."""
    columns = [c for c in ("id", "upstream_id", "category") if c in dataset.column_names]
    table = dataset.select_columns(columns).to_pandas()
    feature = dataset.features["category"]
    if hasattr(feature, "int2str"):
        table["category"] = feature.int2str(table["category"].tolist())
    if "upstream_id" not in table:
        table["upstream_id"] = table["id"].str.split("/").str[-1].astype("int64")
    return table


def submission_ids(frame: pd.DataFrame, keys: pd.DataFrame, source: str = "submission") -> pd.Series:
    """Our ``<category>/<id>`` for every submission row, from either id form."""
    ids = frame["id"]
    ours = ids.str.contains("/", regex=False)
    result = ids.copy()
    upstream_rows = ~ours
    if upstream_rows.any():
        numbers = pd.to_numeric(ids[upstream_rows], errors="coerce")
        bad = numbers.isna() | (numbers != numbers.round())
        if bad.any():
            row = int(bad[bad].index[0])
            raise ValueError(
                f"{source}, line {_line(row)}, column id: {ids[row]!r} is neither <category>/<id> nor an upstream integer id"
            )
        numbers = numbers.astype("int64")
        if "category" in frame:
            result[upstream_rows] = frame.loc[upstream_rows, "category"].str.strip() + "/" + numbers.astype(str)
        elif upstream_rows.all() and numbers.tolist() == keys["upstream_id"].tolist():
            # The official scorer matches rows by position: a complete file in the dataset's order is unambiguous.
            result = keys["id"].copy()
        elif not keys["upstream_id"].duplicated().any():
            by_upstream = dict(zip(keys["upstream_id"], keys["id"]))
            result[upstream_rows] = numbers.map(lambda n: by_upstream.get(n, f"?/{n}"))
        else:
            raise ValueError(
                f"{source}: integer ids restart at 0 in each VisMin category, so they are ambiguous here; add a "
                "category column, write ids as <category>/<id> (as load_dataset('vismin') does), or list every "
                "sample in the dataset's order"
            )
    if "category" in frame and ours.any():
        stated = frame.loc[ours, "category"].str.strip()
        prefix = ids[ours].str.split("/").str[0]
        clash = stated != prefix
        if clash.any():
            row = int(clash[clash].index[0])
            raise ValueError(f"{source}, line {_line(row)}, column category: {stated[row]!r} contradicts id {ids[row]!r}")
    return result


def check_coverage(ids: pd.Series, keys: pd.DataFrame, source: str, allow_missing: bool) -> list[str]:
    """Raise on duplicate or unknown ids, and on missing ones unless allowed; returns the missing ids."""
    problems = []
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        lines = {i: [_line(r) for r in rows] for i, rows in duplicated.groupby(duplicated).groups.items()}
        problems.append(f"{len(lines)} duplicate ids ({_examples(f'{i} at lines {v}' for i, v in lines.items())})")
    known = set(keys["id"])
    extra = [(row, i) for row, i in ids.items() if i not in known]
    if extra:
        problems.append(f"{len(extra)} ids not in the dataset ({_examples(f'{i} at line {_line(r)}' for r, i in extra)})")
    given = set(ids)
    missing = [i for i in keys["id"] if i not in given]
    if missing and not allow_missing:
        problems.append(f"{len(missing)} of {len(keys)} dataset samples missing ({_examples(missing)}); "
                        "allow_missing (--allow-missing) scores the others")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))
    return missing


# -- scoring --------------------------------------------------------------------------------------


def _metric():
    from diffbench.hub_folders import load_module

    module = load_module("metrics", "vismin_group_score")
    return module.VisminGroupScore()


def score_submission(
    path_or_frame,
    dataset=None,
    config: str = "bench",
    *,
    parser: str = "lenient",
    allow_missing: bool = False,
    output_dir=None,
) -> dict:
    """Score a submission (a CSV path or a DataFrame) on the built VisMin benchmark.

    ``dataset`` defaults to ``load_built("vismin", config, "test")``. Returns the results dict; with
    ``output_dir`` it is also written there as ``results.json``, beside the table as ``results.md``.
    """
    if isinstance(path_or_frame, pd.DataFrame):
        source = "submission"
        frame = validate_submission(path_or_frame, source)
    else:
        source = str(path_or_frame)
        frame = read_submission(path_or_frame)
    if dataset is None:
        from diffbench.building import load_built

        dataset = load_built("vismin", config, "test")
    keys = dataset_keys(dataset)
    ids = submission_ids(frame, keys, source)
    missing = check_coverage(ids, keys, source, allow_missing)
    category_of = dict(zip(keys["id"], keys["category"]))
    categories = [category_of[i] for i in ids]
    kind = frame.attrs["kind"]
    inputs = {column: frame[column].to_numpy() for column in KINDS[kind]}
    if kind == "answers":
        inputs = {column: values.tolist() for column, values in inputs.items()}
    scores = _metric().compute(**inputs, categories=categories, parser=parser)
    from diffbench import __version__

    results = {
        "benchmark": "vismin",
        "config": config,
        "split": "test",
        "submission": source,
        "kind": kind,
        "parser": parser if kind == "answers" else None,
        "num_samples": len(frame),
        "dataset_samples": len(keys),
        "missing_ids": missing,
        "scores": scores,
        "diffbench_version": __version__,
    }
    if output_dir is not None:
        write_results(results, output_dir)
    return results


def write_results(results: dict, output_dir, table: str | None = None) -> tuple[Path, Path]:
    """``results.json`` and ``results.md`` (``table``, by default :func:`format_table`) in ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, table_path = output_dir / "results.json", output_dir / "results.md"
    for path, text in ((json_path, json.dumps(results, indent=2) + "\n"), (table_path, (table or format_table(results)) + "\n")):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # a reader never sees half a file
    return json_path, table_path


# -- the paper's table ----------------------------------------------------------------------------


def published_results() -> pd.DataFrame:
    """The published VisMin tables (project page): one row per model, ``table`` zero-shot or fine-tuned."""
    with resources.files("diffbench").joinpath("reference", "vismin_published_results.csv").open("rb") as f:
        return pd.read_csv(f)


def _cell(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def format_table(results: dict, model: str | None = None, compare=()) -> str:
    """The paper's layout in markdown: text / image / group per category, then AVG.

    ``results`` is what :func:`score_submission` returns (or a metric output with categories);
    ``compare`` names published models (see :func:`published_results`) to list below it.
    """
    scores = results.get("scores", results)
    if "per_category" not in scores:
        raise ValueError("the results have no per-category scores: score with categories to get the paper's table")
    header = ["Model"] + [f"{c.capitalize()} {k}" for c in CATEGORIES for k in ("T", "I", "G")] + ["AVG"]
    label = model or Path(str(results.get("submission", "submission"))).stem
    rows = [[label] + [_cell(scores["per_category"].get(c, {}).get(f"{k}_score")) for c in CATEGORIES
                       for k in ("text", "image", "group")] + [_cell(scores["avg_as_published"])]]
    if compare:
        published = published_results()
        for name in compare:
            match = published[published["model"] == name]
            if match.empty:
                raise ValueError(f"no published VisMin result for {name!r}; known: {', '.join(published['model'].unique())}")
            for _, row in match.iterrows():
                cells = [row[f"{c}_{k}"] for c in CATEGORIES for k in ("text", "image", "group")]
                rows.append([f"{name} ({row['table']}, published)"] + [_cell(v) for v in cells] + [_cell(row["avg_as_published"])])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    n = scores["num_samples"]
    lines += [
        "",
        f"T / I / G: text, image and group scores (%). AVG: the mean of the category cells, as published. "
        f"Over all {n:,} samples: text {scores['text_score']:.2f}, image {scores['image_score']:.2f}, "
        f"group {scores['group_score']:.2f}.",
    ]
    if results.get("missing_ids"):
        lines.append(f"Scored {n:,} of {results['dataset_samples']:,} samples: {len(results['missing_ids']):,} missing.")
    return "\n".join(lines)
