"""The VisMin submission reader against hostile input: bounded, streaming, exact.

Issue 14: a 1 GB CSV must not grow memory; a column given twice is an error naming it; ids are matched
exactly (``0.0`` is no integer); arbitrary text, numbers and shapes give a result or a one-line
ValueError, never a traceback and never a silently changed value (hypothesis).
"""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffbench.vismin.schema import ANSWER_COLUMNS, SCORE_COLUMNS
from diffbench.vismin.scoring import score_submission
from diffbench.vismin.submission import limits_for, read_submission, validate_submission

HEADER = "id," + ",".join(SCORE_COLUMNS) + "\n"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def bench(vismin_built):
    from diffbench.data.building import load_built

    return load_built("vismin", "bench", "test")


def _one_line(err: BaseException) -> str:
    message = str(err)
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


def test_a_column_given_twice_is_an_error_naming_it(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("id,T0_I0,T0_I1,T1_I0,T1_I1,T0_I0\nobject/0,1,0,0,1,0\n")
    with pytest.raises(ValueError, match=r"twice\.csv, line 1: column 'T0_I0' appears twice \(again as column 6\)"):
        read_submission(path)
    frame = pd.DataFrame([["object/0", 1, 0, 0, 1, 0]], columns=["id", *SCORE_COLUMNS, "T0_I0"])
    with pytest.raises(ValueError, match="column 'T0_I0' appears twice"):
        validate_submission(frame)


@pytest.mark.parametrize("written", ["0.0", "00", "+0", "0e0", " 1.", "1_0", "0x1"])
def test_upstream_ids_are_matched_exactly(bench, tmp_path, written):
    path = tmp_path / "ids.csv"
    path.write_text(HEADER + f"{written},1,0,0,1\n")
    with pytest.raises(ValueError) as err:
        score_submission(path, bench, allow_missing=True)
    message = _one_line(err.value)
    assert "ids.csv, line 2, column id:" in message and repr(written.strip()) in message


def test_a_float_id_in_a_frame_is_not_made_an_integer(bench):
    frame = pd.DataFrame({"id": [0.0], **{c: [1.0] for c in SCORE_COLUMNS}})
    with pytest.raises(ValueError, match=r"line 2, column id: '0\.0' is neither"):
        score_submission(frame, bench, allow_missing=True)


@pytest.mark.parametrize("text", ["1_000", "0x10", "infinity", "1e999", "--1", "1.2.3", "١"])
def test_score_cells_are_exact_decimal_numbers(tmp_path, text):
    path = tmp_path / "cells.csv"
    path.write_text(HEADER + f"object/0,{text},0,0,1\n")
    with pytest.raises(ValueError, match=r"line 2 \(id 'object/0'\), column T0_I0: .* is not a finite number"):
        read_submission(path)


def test_a_1_gb_submission_is_refused_before_it_is_read(bench, tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:
        f.write(HEADER.encode())
        f.truncate(2**30)  # sparse: 1 GiB that costs no disk
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ValueError) as err:
            score_submission(path, bench)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "1,024.0 MB is far larger than a submission for this benchmark" in _one_line(err.value)
    assert peak < 20 * 2**20 and time.monotonic() - started < 30


def test_reading_streams_and_stops_at_the_row_limit(tmp_path):
    """30 MB of valid rows, read with a limit of 1,000 rows: stops early, memory stays flat."""
    path = tmp_path / "long.csv"
    row = "object/{},0.25,0.5,0.125,0.75\n"
    with open(path, "w") as f:
        f.write(HEADER)
        for start in range(0, 1_000_000, 10_000):
            f.write("".join(row.format(i) for i in range(start, start + 10_000)))
    assert path.stat().st_size > 30_000_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="more than 1,000 rows"):
            read_submission(path, max_rows=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20, peak


def test_limits_grow_with_the_benchmark():
    small, full = limits_for(40), limits_for(2084)
    assert small < full and full[0] < 2**30 and full[1] >= 2084


@pytest.mark.parametrize("text,message", [
    ("\ufeffid,T0_I0,T0_I1,T1_I0,T1_I1\nobject/0,1,0,0,1\n", None),  # a byte-order mark is fine
    ('id,T0_I0,T0_I1,T1_I0,T1_I1\n"object/0,1,0,0,1\n', r"not a readable CSV file \(line \d+: unexpected end of data\)"),
    ("id,T0_I0,T0_I1,T1_I0,T1_I1\nobject/0,1,0,0,1,9\n", r"line 2: 6 fields where the header has 5"),
    ("id,T0_I0,T0_I1,T1_I0,T1_I1\nobject/0,1,0\n", r"line 2: 3 fields where the header has 5"),
])
def test_malformed_csv(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    if message is None:
        assert read_submission(path)["id"].tolist() == ["object/0"]
    else:
        with pytest.raises(ValueError, match=message):
            read_submission(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(HEADER.encode() + "object/0,1,0,0,1\ncaf\xe9,1,0,0,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv: not a readable CSV file \(not UTF-8 text"):
        read_submission(path)


# -- properties -----------------------------------------------------------------------------------

cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.text(max_size=12),
    st.sampled_from(["", " ", "nan", "inf", "-0", "1e308", "1e309", "0.0", "00", '"', ",", "\n", "\r", "\x00"]),
)


@SETTINGS
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=7), max_size=6),
       header=st.lists(st.sampled_from(["id", *SCORE_COLUMNS, *ANSWER_COLUMNS, "category", "x", " id", ""]),
                       max_size=7))
def test_reader_on_arbitrary_text_gives_a_frame_or_one_line(tmp_path_factory, rows, header):
    path = tmp_path_factory.mktemp("h") / "s.csv"
    text = ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        frame = read_submission(path)
    except ValueError as err:
        _one_line(err)
        return
    assert frame.attrs["kind"] in ("scores", "answers") and len(frame) >= 1


@SETTINGS
@given(values=st.lists(st.tuples(*(st.floats(allow_nan=False, allow_infinity=False, width=64),) * 4),
                       min_size=1, max_size=20),
       ids=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
                            min_size=1, max_size=10), min_size=20, max_size=20, unique=True))
def test_numbers_and_ids_come_back_unchanged(tmp_path_factory, values, ids):
    import csv

    path = tmp_path_factory.mktemp("h") / "s.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *SCORE_COLUMNS])
        for i, row in zip(ids, values):
            writer.writerow([i, *map(repr, row)])
    frame = read_submission(path)
    assert frame["id"].tolist() == [i.strip() for i in ids[: len(values)]]
    assert frame[list(SCORE_COLUMNS)].to_numpy().tolist() == [list(r) for r in values]


def _metric():
    from diffbench.data.hub_folders import load_module

    return load_module("metrics", "vismin_group_score").VisminGroupScore()


score_values = st.one_of(st.floats(), st.integers(-10**20, 10**20), st.text(max_size=4), st.none(), st.booleans())


@settings(max_examples=200, deadline=None)
@given(columns=st.lists(st.lists(score_values, max_size=5), min_size=4, max_size=4),
       categories=st.one_of(st.none(), st.lists(st.sampled_from(["object", "attribute", "relation", "counting",
                                                                  "Object", "", "x"]), max_size=5)))
def test_metric_on_arbitrary_scores_gives_a_result_or_one_line(columns, categories):
    inputs = dict(zip(SCORE_COLUMNS, columns))
    try:
        result = _metric().compute(**inputs, categories=categories)
    except ValueError as err:
        _one_line(err)
        return
    # A result only for what the official rule can rank, and it is the official rule's result.
    n = len(columns[0])
    assert all(len(c) == n for c in columns) and n >= 1
    numbers = np.array(columns, dtype=np.float64)
    assert np.isfinite(numbers).all() and not any(isinstance(v, (bool, str)) or v is None for c in columns for v in c)
    text = (numbers[0] > numbers[2]) & (numbers[3] > numbers[1])
    image = (numbers[0] > numbers[1]) & (numbers[3] > numbers[2])
    assert math.isclose(result["group_score"], 100 * float((text & image).mean()))
    assert result["num_samples"] == n


@settings(max_examples=200, deadline=None)
@given(columns=st.lists(st.lists(st.one_of(st.text(max_size=20), st.none(), st.integers(), st.floats()),
                                 max_size=5), min_size=4, max_size=4),
       parser=st.sampled_from(["lenient", "strict", "LENIENT", ""]))
def test_metric_on_arbitrary_answers_gives_a_result_or_one_line(columns, parser):
    inputs = dict(zip(ANSWER_COLUMNS, columns))
    try:
        result = _metric().compute(**inputs, parser=parser)
    except ValueError as err:
        _one_line(err)
        return
    assert parser in ("lenient", "strict") and all(isinstance(v, str) for c in columns for v in c)
    assert 0 <= result["group_score"] <= 100 and result["num_samples"] == len(columns[0])


# -- issue 23: physical line numbers ---------------------------------------------------------------

# What comes before the bad row: each moves it down the file without adding a data row.
BEFORE_THE_BAD_ROW = {
    "blank-lines": "object/0,1,0,0,1\n\n\n",
    "quoted-newline": 'object/0,1,0,"0\n",1\n',  # one row over two lines
    "crlf-and-blank": "object/0,1,0,0,1\r\n\r\n",
    "all-of-them": 'object/0,1,0,0,1\n\nobject/1,"1\n",0,0,1\n\n"object/2",1,0,"0\n\n",1\n\n',
}
# A bad row and the error it must give, ``{line}`` where its line goes: the line the row starts on.
BAD_ROWS = {
    "not-a-number": ("attribute/0,1,x,0,1", "line {line} (id 'attribute/0'), column T0_I1: 'x' is not a finite number"),
    "fields": ("attribute/0,1,0", "line {line}: 3 fields where the header has 5"),
    "empty-id": (",1,0,0,1", "line {line}, column id: empty id"),
}


def _text_and_line(before: str, bad: str) -> tuple[str, int]:
    """The CSV text, and the line ``bad`` starts on (``\r\n`` is one line break)."""
    text = HEADER + before + bad + "\n"
    return text, text.count("\n", 0, text.rindex(bad)) + 1


@pytest.mark.parametrize("bad", BAD_ROWS, ids=list(BAD_ROWS))
@pytest.mark.parametrize("before", BEFORE_THE_BAD_ROW, ids=list(BEFORE_THE_BAD_ROW))
def test_errors_name_the_physical_line(tmp_path, before, bad):
    row, message = BAD_ROWS[bad]
    text, line = _text_and_line(BEFORE_THE_BAD_ROW[before], row)
    path = tmp_path / "lines.csv"
    path.write_bytes(text.encode())
    with pytest.raises(ValueError) as err:
        read_submission(path)
    assert _one_line(err.value) == f"{path}, {message.format(line=line)}"


def _keys(n: int = 4):
    return pd.DataFrame({"id": [f"object/{i}" for i in range(n)], "upstream_id": list(range(n)),
                         "category": ["object"] * n})


@pytest.mark.parametrize("before", BEFORE_THE_BAD_ROW, ids=list(BEFORE_THE_BAD_ROW))
def test_id_and_coverage_errors_name_the_physical_line(tmp_path, before):
    """The ids are checked after reading (against the dataset): they keep each row's line too."""
    from diffbench.vismin.submission import check_coverage, submission_ids

    path = tmp_path / "ids.csv"
    text, line = _text_and_line(BEFORE_THE_BAD_ROW[before], "object/9,1,0,0,1")
    path.write_bytes(text.encode())
    frame = read_submission(path)
    keys = _keys()
    ids = submission_ids(frame, keys, str(path))
    with pytest.raises(ValueError) as err:
        check_coverage(ids, keys, str(path), allow_missing=True, lines=frame.attrs["lines"])
    assert f"1 ids not in the dataset (object/9 at line {line})" in _one_line(err.value)

    text, line = _text_and_line(BEFORE_THE_BAD_ROW[before], "07,1,0,0,1")
    path.write_bytes(text.replace("object/", "").encode())  # upstream integer ids throughout
    with pytest.raises(ValueError) as err:
        submission_ids(read_submission(path), keys, str(path))
    assert _one_line(err.value).startswith(f"{path}, line {line}, column id: '07' is neither")


def test_duplicate_ids_name_their_physical_lines(bench, tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text(HEADER + "object/0,1,0,0,1\n\n" + '"object/\n1",1,0,0,1\n' + "object/0,1,0,0,1\n")
    with pytest.raises(ValueError) as err:
        score_submission(path, bench, allow_missing=True)
    assert "1 duplicate ids (object/0 at lines [2, 6])" in _one_line(err.value)
