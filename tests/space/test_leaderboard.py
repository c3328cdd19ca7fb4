"""The Space's leaderboard (:mod:`diffbench.space.leaderboard`), and what it does with a file it cannot
read: a row that is not JSON, a damaged SQLite file, a name that would spoof the board.

The logic is driven on :class:`Leaderboard` directly, on real SQLite files. That the Space still starts
is proven for real: the app is built with :func:`diffbench.space.app.build_demo` on the hostile file,
served on loopback, and called through ``gradio_client`` (a few seconds a start).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from diffbench.space.leaderboard import MAX_NAME_CHARS, Leaderboard, read_records
from diffbench.space.tables import html_table
from test_space import _board_rows, _free_port, _unescaped, _vismin_rows, _write_csv

CATEGORIES = ("object", "attribute", "relation", "counting")


def _vismin_results(content_hash: str, avg: float = 40.0, synthetic=False, submission: str = "x.csv") -> dict:
    """The results of :func:`diffbench.space.backend.score_vismin_run`, reduced to what the board keeps."""
    groups = {c: {"samples": 521, "scores": {"text": avg, "image": avg, "group": avg}} for c in CATEGORIES}
    return {"content_hash": content_hash, "submission": submission,
            "provenance": {"source": "synthetic" if synthetic else "hub", "synthetic": synthetic},
            "scores": {"avg": avg, "group": avg}, "ci95": {"avg": [avg - 1, avg + 1]}, "groups": groups,
            "samples": 2084}


def _caption_results(content_hash: str, cider: float = 50.0) -> dict:
    """The results of :func:`diffbench.space.backend.score_caption_run` (layout v1, percent), reduced to what
    the board keeps."""
    return {"content_hash": content_hash, "submission": "captions.json", "benchmark": "spot_the_diff",
            "split": "test", "provenance": {"synthetic": False}, "samples": 3,
            "scores": {"Bleu_4": 10.0, "METEOR": 20.0, "ROUGE_L": 30.0, "CIDEr": cider},
            "ci95": {"CIDEr": [cider - 4.0, cider + 6.0]}}


def test_caption_rows_show_percent_with_the_cider_interval_and_older_rows_x100(tmp_path):
    """Rows stored since results were percentages are shown as stored, with CIDEr ± half its interval; rows
    stored before (pycocoevalcap's 0..1, no interval) are shown x 100, the ± left empty."""
    path = tmp_path / "leaderboard.sqlite3"
    board = Leaderboard(path)
    board.add_captions(_caption_results("sha256:new", cider=123.4), name="new run")
    _execute(path, "INSERT INTO caption_runs (content_hash, name, dataset, split, scored_at, synthetic, provenance, "
                   "scores, samples) VALUES ('sha256:old', 'old run', 'spot_the_diff', 'test', '2026-01-01 00:00 UTC', "
                   "0, '{}', ?, 3)", json.dumps({"Bleu_4": 0.1, "METEOR": 0.2, "ROUGE_L": 0.3, "CIDEr": 1.5}))
    rows = {row["Name"]: row for row in board.caption_table().to_dict("records")}
    assert rows["new run"]["CIDEr"] == 123.4 and rows["new run"]["CIDEr ±"] == 5.0
    assert rows["new run"]["Bleu_4"] == 10.0 and rows["new run"]["Dataset"] == "spot_the_diff"
    assert rows["old run"]["CIDEr"] == 150.0 and rows["old run"]["METEOR"] == 20.0
    assert rows["old run"]["CIDEr ±"] != rows["old run"]["CIDEr ±"]  # NaN: shown as a gap


def _execute(path: Path, sql: str, *args) -> list:
    """``sql`` run on the file itself, as a hand edit, an older version or a bad restore would leave it."""
    db = sqlite3.connect(path)
    try:
        with db:
            return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _board_with_one_bad_row(path: Path, table: str) -> dict:
    """A board of two good runs of each kind and one run of ``table`` whose JSON column is not JSON;
    returns what the note must name about the bad row."""
    board = Leaderboard(path)
    for n in range(3):
        board.add_vismin(_vismin_results(f"sha256:v{n}", avg=40.0 + n), name=f"vismin run {n}")
        board.add_captions(_caption_results(f"sha256:c{n}", cider=10.0 * (n + 1)), name=f"caption run {n}")
    column = "cells" if table == "vismin_runs" else "scores"
    prefix = "v" if table == "vismin_runs" else "c"
    _execute(path, f"UPDATE {table} SET {column} = 'not json' WHERE content_hash = ?", f"sha256:{prefix}1")
    rowid = _execute(path, f"SELECT rowid FROM {table} WHERE content_hash = ?", f"sha256:{prefix}1")[0][0]
    kind = "vismin" if table == "vismin_runs" else "caption"
    return {"table": table, "rowid": rowid, "hash": f"sha256:{prefix}1", "name": f"{kind} run 1", "field": column}


def _assert_names_bad_row(note: str, path: Path, bad: dict) -> None:
    for needle in (str(path), f"{bad['table']} row {bad['rowid']}", bad["hash"], f'"{bad["name"]}"',
                   f"{bad['field']} is not JSON"):
        assert needle in note, (needle, note)


# -- keeping runs (moved here from test_space.py: they need no Space) -----------------------------


def test_leaderboard_persists_counts_once_and_ranks_real_data_only(tmp_path):
    from diffbench.data.provenance import SYNTHETIC_NOTE

    results = _vismin_results
    path = tmp_path / "board.sqlite3"
    board = Leaderboard(path)
    assert board.add_vismin(results("sha256:a", 99.0, True), name="synthetic run").added
    assert board.add_vismin(results("sha256:b", 50.0, False), name="real | run").added
    assert board.add_vismin(results("sha256:c", 60.0, None), name="unknown run").added
    again = board.add_vismin(results("sha256:a", 99.0, True), name="renamed")
    assert not again.added and again.name == "synthetic run"
    table = Leaderboard(path).vismin_table("AVG")  # a restart: a new object on the same file
    models = table["Model"].tolist()
    assert models.count("[synthetic sample] synthetic run") == 1 and "renamed" not in " ".join(models)
    ranked = models[: models.index("[synthetic sample] synthetic run")]
    assert "real | run" in ranked and "unknown run" not in ranked and "MTurk Human" in ranked
    avg = table["AVG"].tolist()[: len(ranked)]
    assert avg == sorted(avg, reverse=True)  # the ranked part is in AVG order, 99.0 is not in it
    assert SYNTHETIC_NOTE in table.loc[table["Model"] == "[synthetic sample] synthetic run", "Source"].item()
    shown = html_table(table, pinned=3)
    assert ">50.00<" in shown and ">2,084<" in shown and ">scored here<" in shown


def test_leaderboard_restores_mirrored_rows(tmp_path, caplog):
    """What the Hub mirror holds (JSON lines, one a new row) puts a lost SQLite file back, each row once;
    a line cut short is skipped with a warning, never silently."""
    first = Leaderboard(tmp_path / "a.sqlite3")
    records = []
    first._mirror = type("M", (), {"append": lambda self, r: records.append(r)})()  # capture what would be pushed
    groups = {c: {"samples": 521, "scores": {"text": 50.0, "image": 40.0, "group": 30.0}}
              for c in ("object", "attribute", "relation", "counting")}
    first.add_vismin({"content_hash": "sha256:x", "submission": "a.csv", "provenance": {"synthetic": False},
                      "scores": {"avg": 40.0, "group": 30.0}, "ci95": {"avg": [38.0, 42.0]}, "groups": groups,
                      "samples": 2084}, name="mirrored")
    mirror = tmp_path / "runs.jsonl"
    mirror.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"cut short', encoding="utf-8")
    second = Leaderboard(tmp_path / "b.sqlite3")  # a restart without persistent storage: an empty file
    assert second.restore(read_records(mirror)) == 1 and second.restore(read_records(mirror)) == 0
    assert f"{mirror}: 1 line(s) that are not JSON skipped" in caplog.text
    row = second.vismin_table().set_index("Model").loc["mirrored"]
    assert row["AVG"] == 40.0 and row["Object G"] == 30.0 and row["Samples"] == 2084


def test_data_folder_choice(monkeypatch, tmp_path):
    from diffbench.space import leaderboard  # the module: its SPACE_STORAGE is swapped

    monkeypatch.setenv("DIFFBENCH_DATA_DIR", str(tmp_path / "chosen"))
    assert leaderboard.data_dir() == tmp_path / "chosen" and (tmp_path / "chosen").is_dir()
    monkeypatch.delenv("DIFFBENCH_DATA_DIR")
    monkeypatch.setattr(leaderboard, "SPACE_STORAGE", tmp_path / "data")  # a Space with persistent storage
    (tmp_path / "data").mkdir()
    assert leaderboard.data_dir() == tmp_path / "data" / "diffbench"
    monkeypatch.setattr(leaderboard, "SPACE_STORAGE", tmp_path / "no-such-storage")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert leaderboard.data_dir() == tmp_path / "xdg" / "diffbench"


# -- rows that cannot be read ---------------------------------------------------------------------


@pytest.mark.parametrize("table", ["vismin_runs", "caption_runs"])
def test_a_row_that_is_not_json_is_left_out_and_named(tmp_path, table, caplog):
    path = tmp_path / "leaderboard.sqlite3"
    bad = _board_with_one_bad_row(path, table)
    board = Leaderboard(path)  # a restart on the file: it opens
    models = board.vismin_table()["Model"].tolist()
    names = board.caption_table()["Name"].tolist()
    shown = models + names
    assert "MTurk Human" in models  # the published rows
    assert {"vismin run 0", "vismin run 2", "caption run 0", "caption run 2"} <= set(shown)
    assert bad["name"] not in shown
    assert ({"vismin run 1", "caption run 1"} - {bad["name"]}) <= set(shown)  # the other kind is whole
    notes = board.notes()
    assert len(notes) == 1 and "\n" not in notes[0], notes
    _assert_names_bad_row(notes[0], path, bad)
    assert notes[0] in caplog.text  # the server's log says it too (once, not at every refresh)
    board.vismin_table(), board.caption_table(), board.notes()  # refreshes
    assert caplog.text.count(notes[0]) == 1
    # Everything else works: a new run is added and shown beside the good ones.
    assert board.add_vismin(_vismin_results("sha256:new", avg=99.0), name="new run").added
    assert board.vismin_table()["Model"].tolist()[0] == "new run"  # ranked first by AVG
    assert board.notes() == notes


def test_rows_with_other_unreadable_columns_are_left_out_and_named(tmp_path):
    """JSON that is not an object, a score that is not a number, a name that is not text: each row is
    left out with its field named; the good row stays."""
    path = tmp_path / "leaderboard.sqlite3"
    board = Leaderboard(path)
    for n in range(4):
        board.add_vismin(_vismin_results(f"sha256:{n}"), name=f"run {n}")
    _execute(path, "UPDATE vismin_runs SET cells = '[1, 2]' WHERE content_hash = 'sha256:1'")
    _execute(path, "UPDATE vismin_runs SET avg = 'lots' WHERE content_hash = 'sha256:2'")
    _execute(path, "UPDATE vismin_runs SET name = x'00ff' WHERE content_hash = 'sha256:3'")
    models = board.vismin_table()["Model"].tolist()
    assert "run 0" in models and not {"run 1", "run 2", "run 3"} & set(models)
    notes = board.notes()
    assert len(notes) == 3, notes
    assert "sha256:1" in notes[0] and "cells is not a JSON object" in notes[0]
    assert "sha256:2" in notes[1] and 'avg is not a number: "lots"' in notes[1]
    assert "sha256:3" in notes[2] and "name is not text" in notes[2]


# -- a damaged file ---------------------------------------------------------------------------------


def _real_db_bytes(folder: Path) -> bytes:
    """The bytes of a real leaderboard file with a few runs in it (WAL checkpointed on close)."""
    folder.mkdir()
    board = Leaderboard(folder / "real.sqlite3")
    for n in range(20):
        board.add_vismin(_vismin_results(f"sha256:{n}"), name=f"run {n}")
    data = (folder / "real.sqlite3").read_bytes()
    assert len(data) > 1000 and not (folder / "real.sqlite3-wal").exists()
    return data


def _damaged_index_page(folder: Path) -> bytes:
    """A real file with the header of one index page overwritten: SQLite opens it, and only
    ``PRAGMA quick_check`` finds the damage (it answers with findings rather than raising)."""
    data = bytearray(_real_db_bytes(folder))
    ((root, page_size),) = _execute(folder / "real.sqlite3", "SELECT rootpage, (SELECT page_size FROM pragma_page_size)"
                                    " FROM sqlite_master WHERE name = 'sqlite_autoindex_caption_runs_1'")
    start = (root - 1) * page_size
    data[start:start + 12] = b"\xff" * 12  # no valid b-tree page type
    return bytes(data)


DAMAGE = {
    "random bytes": lambda folder: os.urandom(8192),
    "first 1,000 bytes of a real file": lambda folder: _real_db_bytes(folder)[:1000],
    "a damaged index page": _damaged_index_page,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_file_is_kept_aside_and_a_fresh_one_started(tmp_path, damage, caplog):
    path = tmp_path / "data" / "leaderboard.sqlite3"
    path.parent.mkdir()
    damaged = DAMAGE[damage](tmp_path / "source")
    path.write_bytes(damaged)
    wal = os.urandom(4096)
    Path(f"{path}-wal").write_bytes(wal)  # left by an unclean stop: kept with its file, as found
    board = Leaderboard(path)
    kept = sorted(p.name for p in path.parent.iterdir() if p.name.startswith("leaderboard.sqlite3.damaged-"))
    assert len(kept) == 2 and kept[1] == f"{kept[0]}-wal", kept
    main = path.parent / kept[0]
    assert main.read_bytes() == damaged and Path(f"{main}-wal").read_bytes() == wal
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    (note,) = board.notes()
    assert str(path) in note and main.name in note and "cannot be read" in note, note
    assert note in caplog.text
    assert "MTurk Human" in board.vismin_table()["Model"].tolist()  # the published rows are still shown
    # New scores can still be added, and a restart keeps them (without the note: that file is sound).
    assert board.add_vismin(_vismin_results("sha256:new"), name="after the damage").added
    again = Leaderboard(path)
    assert "after the damage" in again.vismin_table()["Model"].tolist() and again.notes() == []


def test_a_file_damaged_while_the_space_runs_leaves_the_published_rows_and_a_note(tmp_path):
    path = tmp_path / "leaderboard.sqlite3"
    board = Leaderboard(path)
    board.add_vismin(_vismin_results("sha256:a"), name="a run")
    path.write_bytes(os.urandom(8192))
    models = board.vismin_table()["Model"].tolist()
    assert "MTurk Human" in models and "a run" not in models and board.caption_table().empty
    (note,) = board.notes()  # said once, not once a table
    assert str(path) in note and "cannot be read" in note, note


# -- names --------------------------------------------------------------------------------------------


def test_names_lose_control_and_bidi_override_characters(tmp_path):
    path = tmp_path / "leaderboard.sqlite3"
    board = Leaderboard(path)
    entry = board.add_vismin(_vismin_results("sha256:a"), name=" my\x00 model \u202e4pm.exe ")
    assert entry.name == "my model 4pm.exe"
    long_name = "\u202e" * 50 + "x" * 100  # stripped before it is cut: the overrides take no room
    assert board.add_vismin(_vismin_results("sha256:b"), name=long_name).name == "x" * MAX_NAME_CHARS
    empty = board.add_vismin(_vismin_results("sha256:c", submission="run-c.csv"), name="\x00 \u202e\u2066 ")
    assert empty.name == "run-c"  # nothing left: the submission's file name, as for no name at all
    assert board.add_captions(_caption_results("sha256:d"), name="cap\x1b[31m\u202ename").name == "cap[31mname"
    stored = [n for (n,) in _execute(path, "SELECT name FROM vismin_runs UNION ALL SELECT name FROM caption_runs")]
    assert stored == ["my model 4pm.exe", "x" * MAX_NAME_CHARS, "run-c", "cap[31mname"]
    # A name stored before this rule (or restored from the mirror) is shown stripped.
    _execute(path, "UPDATE vismin_runs SET name = ? WHERE content_hash = 'sha256:a'", "old\u202e\x00 name")
    assert "old name" in board.vismin_table()["Model"].tolist()


# -- the Space starts -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _space(board: Leaderboard, **state):
    """The Space built on ``board`` (and ``state``: other arguments of ``build_demo``; no warm-up), served
    on a free loopback port: a gradio_client on it."""
    from gradio_client import Client

    from diffbench.space.app import build_demo

    demo = build_demo(leaderboard=board, warm=False, **state)
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def _notes_shown(client) -> tuple[str, str]:
    """The board's notes as the page shows them at start (the Markdown above the tables) and as
    ``/leaderboard_notes`` answers, unescaped."""
    (start,) = [c["props"]["value"] for c in client.config["components"]
                if c.get("props", {}).get("elem_id") == "board-notes"]
    return _unescaped(start), _unescaped(client.predict(api_name="/leaderboard_notes"))


def test_the_space_starts_on_a_board_with_unreadable_rows(tmp_path, monkeypatch, vismin_built):
    """Rows that are not JSON in both tables and a name stored with a bidi override: the Space starts,
    shows the good rows, says which rows it left out, and still scores and ranks a submission."""
    from gradio_client import handle_file

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    path = tmp_path / "leaderboard.sqlite3"
    bad_vismin = _board_with_one_bad_row(path, "vismin_runs")
    _execute(path, "UPDATE caption_runs SET scores = 'not json' WHERE content_hash = 'sha256:c2'")
    _execute(path, "UPDATE vismin_runs SET name = 'spoofed \u202eexe.gnp' WHERE content_hash = 'sha256:v2'")
    with _space(Leaderboard(path)) as client:
        board, captions = client.predict("AVG", api_name="/leaderboard")
        models = [row["Model"] for row in _board_rows(board)]
        assert {"MTurk Human", "vismin run 0", "spoofed exe.gnp"} <= set(models) and "vismin run 1" not in models
        assert [row["Name"] for row in _board_rows(captions)] == ["caption run 0", "caption run 1"]
        at_start, answered = _notes_shown(client)
        assert at_start == answered and answered.count("⚠") == 2, answered
        _assert_names_bad_row(answered, path, bad_vismin)
        assert "caption_runs row 3" in answered and "sha256:c2" in answered and "scores is not JSON" in answered
        # Everything else works: a submission is scored, added under its stripped name, and shown.
        csv_path = _write_csv(tmp_path / "perfect.csv", _vismin_rows())
        message, *_ = client.predict(handle_file(str(csv_path)), False, "new\x00 \u202erun", api_name="/score_vismin")
        assert message.startswith("✓"), message
        board, _ = client.predict("AVG", api_name="/leaderboard")
        assert any(row["Model"].endswith("new run") for row in _board_rows(board)), _board_rows(board)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_the_space_starts_on_a_damaged_file(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    path = tmp_path / "leaderboard.sqlite3"
    path.write_bytes(DAMAGE[damage](tmp_path / "source"))
    with _space(Leaderboard(path)) as client:
        board, captions = client.predict("Model", api_name="/leaderboard")
        models = [row["Model"] for row in _board_rows(board)]
        assert "MTurk Human" in models and "Random Chance" in models and captions["data"] in ([], [[]])
        at_start, answered = _notes_shown(client)
        assert at_start == answered and answered.count("⚠") == 1, answered
        assert str(path) in answered and "leaderboard.sqlite3.damaged-" in answered, answered
    assert len(list(tmp_path.glob("leaderboard.sqlite3.damaged-*"))) == 1
