"""Read and check an official VisMin submission, and join it to the benchmark's rows.

A submission is one of the two official formats (rabiulcste/vismin, ``vismin-bench/README.md``):

- similarity scores of a contrastive model: ``id,T0_I0,T0_I1,T1_I0,T1_I1``;
- answers of a chat model: ``id,Text_Q0,Text_Q1,Image_Q0,Image_Q1``.

``id`` is either ours, ``<category>/<upstream id>`` (the ``id`` column of ``load_dataset("vismin")``),
or the upstream integer id. Upstream ids restart at 0 in each category, so an integer id needs a
``category`` column beside it, unless the file lists every sample in the dataset's order (the official
scorer matches rows by position). Missing, extra and duplicate ids are reported, never skipped
silently. Every error names the file, the line and the column. Scoring is
:func:`diffbench.vismin.scoring.score_submission`.

    >>> limits_for(2084)
    (18120704, 5168)
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from diffbench.text import printable
from diffbench.vismin.schema import ANSWER_COLUMNS, SCORE_COLUMNS

KINDS = {"scores": SCORE_COLUMNS, "answers": ANSWER_COLUMNS}
SHOWN_IDS = 5  # how many offending ids an error message lists

#: Bounds on a submission, from the size of the benchmark it is scored on: a full VisMin CSV of
#: similarities is about 100 bytes a row; chat answers may carry the model's whole reply.
BYTES_PER_SAMPLE = 8 * 1024
BYTES_SLACK = 1024 * 1024
ROWS_SLACK = 1000

# Exact number syntax: what float() reads, less its extras (``1_000``, ``inf``, ``nan``, whitespace inside).
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)  # ASCII: no "١"
_UPSTREAM_ID = re.compile(r"0|[1-9]\d*", re.ASCII)  # how upstream writes its integer ids: no sign, point or padding


def _line(row: int, lines=None) -> int:
    """The line of a data row: where it starts in its CSV file (``lines``, from :func:`read_submission`:
    blank lines and quoted line breaks counted), else as a table written out would put it (the
    header is line 1)."""
    return lines[row] if lines is not None else row + 2


def _examples(items) -> str:
    """The first :data:`SHOWN_IDS` of ``items``, shown safely (an id may hold a quoted line break)."""
    items = list(items)
    shown = ", ".join(printable(i) for i in items[:SHOWN_IDS])
    return shown + (f", ... ({len(items)} in all)" if len(items) > SHOWN_IDS else "")


def limits_for(dataset_samples: int) -> tuple[int, int]:
    """``(max bytes, max rows)`` of a submission for a benchmark of ``dataset_samples`` samples.

    >>> limits_for(2084)
    (18120704, 5168)
    """
    return BYTES_SLACK + BYTES_PER_SAMPLE * dataset_samples, 2 * dataset_samples + ROWS_SLACK


class CoverageError(ValueError):
    """Duplicate, unknown or missing ids. ``only_missing``: the one problem is missing samples, which
    the caller may allow (each front end says how in its own words)."""

    def __init__(self, message: str, only_missing: bool):
        super().__init__(message)
        self.only_missing = only_missing


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


def check_header(columns, source: str = "submission") -> list[str]:
    """The header's names, stripped; a name given twice is an error naming it (never a silent pick)."""
    names = [str(c).strip() for c in columns]
    seen = set()
    for position, name in enumerate(names, 1):
        if name in seen:
            raise ValueError(f"{source}, line 1: column {name!r} appears twice (again as column {position})")
        seen.add(name)
    return names


def _cell_text(value) -> str:
    """A cell of a DataFrame as its text: ``None``/NaN as ``""``; numbers as Python writes them (so a
    float id ``0.0`` stays ``"0.0"`` and is refused, never turned into ``0``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    return str(value).strip()


def validate_submission(frame: pd.DataFrame, source: str = "submission", lines=None) -> pd.DataFrame:
    """A checked copy of a submission table: ids present, score cells finite numbers, answers strings.

    The result's ``attrs["kind"]`` says which format it is; ``lines`` (the file line each row starts
    on) is kept as ``attrs["lines"]``, for every later message.
    """
    if frame.columns.duplicated().any():
        check_header(frame.columns, source)
    frame = frame.rename(columns=lambda c: str(c).strip())
    check_header(frame.columns, source)
    kind = submission_kind(frame.columns, source)
    if frame.empty:
        raise ValueError(f"{source}: has a header but no rows")
    frame = frame.reset_index(drop=True).copy()
    lines = list(lines) if lines is not None else frame.attrs.get("lines")
    ids = frame["id"].map(_cell_text)
    if (ids == "").any():
        row = int((ids == "").idxmax())
        raise ValueError(f"{source}, line {_line(row, lines)}, column id: empty id")
    frame["id"] = ids
    if kind == "scores":
        for column in SCORE_COLUMNS:
            frame[column] = _numbers(frame, column, source, lines)
    else:
        for column in ANSWER_COLUMNS:
            bad = frame[column].map(lambda v: not isinstance(v, str))
            if bad.any():
                row = int(bad.idxmax())
                value = frame.at[row, column]
                value = value.item() if isinstance(value, np.generic) else value  # 1, not np.int64(1)
                raise ValueError(
                    f"{source}, line {_line(row, lines)} (id {frame.at[row, 'id']!r}), column {column}: "
                    f"{value!r} is not a string answer"
                )
    frame.attrs["kind"] = kind
    frame.attrs["lines"] = lines
    return frame


def _number(value) -> float:
    """A finite float from a number or its exact decimal text; NaN for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return math.nan
    if isinstance(value, (int, float, np.integer, np.floating)):
        try:
            return float(value)
        except OverflowError:
            return math.nan
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value.strip())  # may overflow to inf: refused below as not finite
    return math.nan


def _numbers(frame: pd.DataFrame, column: str, source: str, lines=None) -> pd.Series:
    values = frame[column].map(_number).astype("float64")
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"{source}, line {_line(row, lines)} (id {frame.at[row, 'id']!r}), column {column}: "
            f"{_cell_text(frame.at[row, column])!r} is not a finite number"
        )
    return values


def read_submission(path, max_bytes: int | None = None, max_rows: int | None = None) -> pd.DataFrame:
    """Read and check an official submission CSV; errors name the file, the line and the column.

    Read as a stream of rows (memory grows with the rows kept, never with the file): a file over
    ``max_bytes`` is refused before it is read, and reading stops at row ``max_rows + 1``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no submission file at {path}")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path}: the file is empty")
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{path}: {size / 2**20:,.1f} MB is far larger than a submission for this benchmark "
                         f"(at most {max_bytes / 2**20:,.1f} MB)")
    header, columns, lines = None, None, []
    line = 0  # the last line read whole
    try:
        # utf-8-sig: a byte-order mark (as Excel writes) is not part of the first column's name
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, skipinitialspace=True, strict=True)
            for record in reader:
                # A record starts on the line after the last one; it may span several (a quoted line break).
                start, line = line + 1, reader.line_num
                if header is None:
                    header = check_header(record, str(path))
                    submission_kind(header, str(path))  # a wrong header fails before any row is read
                    columns = [[] for _ in header]
                    continue
                if not record:
                    continue  # a blank line, as pandas skips it
                if len(record) != len(header):
                    raise ValueError(f"{path}, line {start}: {len(record)} fields where the header has {len(header)}")
                if max_rows is not None and len(columns[0]) >= max_rows:
                    raise ValueError(f"{path}: more than {max_rows:,} rows, far more than this benchmark's samples")
                for values, cell in zip(columns, record):
                    values.append(cell)
                lines.append(start)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a readable CSV file (not UTF-8 text near line {line + 1}: {err.reason})") from None
    except csv.Error as err:
        # csv counts the lines it has read: the bad one is the last (line_num), where the record went wrong.
        raise ValueError(f"{path}: not a readable CSV file (line {reader.line_num}: {err})") from None
    if header is None:
        raise ValueError(f"{path}: the file is empty")
    frame = pd.DataFrame(dict(zip(header, columns)), columns=header, dtype=object)
    return validate_submission(frame, source=str(path), lines=lines)


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
    """Our ``<category>/<id>`` for every submission row, from either id form.

    Ids are matched exactly: an upstream id is an integer written as upstream writes it (``7``; never
    ``7.0``, ``07`` or ``+7``), and ``<category>/<id>`` must equal a dataset id character for character.
    """
    lines = frame.attrs.get("lines")
    ids = frame["id"]
    ours = ids.str.contains("/", regex=False)
    result = ids.copy()
    upstream_rows = ~ours
    if upstream_rows.any():
        written = ids[upstream_rows]
        bad = ~written.map(lambda text: bool(_UPSTREAM_ID.fullmatch(text)))
        if bad.any():
            row = int(bad[bad].index[0])
            raise ValueError(
                f"{source}, line {_line(row, lines)}, column id: {ids[row]!r} is neither <category>/<id> nor an upstream "
                "integer id (digits only, as upstream writes them)"
            )
        numbers = written.astype("int64")
        if "category" in frame:
            stated = frame.loc[upstream_rows, "category"].map(_cell_text)
            result[upstream_rows] = stated + "/" + written
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
        stated = frame.loc[ours, "category"].map(_cell_text)
        prefix = ids[ours].str.split("/").str[0]
        clash = stated != prefix
        if clash.any():
            row = int(clash[clash].index[0])
            raise ValueError(f"{source}, line {_line(row, lines)}, column category: {stated[row]!r} contradicts id "
                             f"{ids[row]!r}")
    return result


def check_coverage(ids: pd.Series, keys: pd.DataFrame, source: str, allow_missing: bool, lines=None) -> list[str]:
    """Raise a :class:`CoverageError` on duplicate or unknown ids, and on missing ones unless allowed;
    returns the missing ids. ``lines``: the file line of each row (``frame.attrs["lines"]``)."""
    problems = []
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        at = {i: [_line(r, lines) for r in rows] for i, rows in duplicated.groupby(duplicated).groups.items()}
        problems.append(f"{len(at)} duplicate ids ({_examples(f'{i} at lines {v}' for i, v in at.items())})")
    known = set(keys["id"])
    extra = [(row, i) for row, i in ids.items() if i not in known]
    if extra:
        problems.append(f"{len(extra)} ids not in the dataset "
                        f"({_examples(f'{i} at line {_line(r, lines)}' for r, i in extra)})")
    given = set(ids)
    missing = [i for i in keys["id"] if i not in given]
    only_missing = not problems
    if missing and not allow_missing:
        problems.append(f"{len(missing)} of {len(keys)} dataset samples missing ({_examples(missing)})")
    if problems:
        raise CoverageError(f"{source}: " + "; ".join(problems), only_missing=only_missing)
    return missing
