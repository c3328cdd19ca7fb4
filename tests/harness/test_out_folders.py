"""Output folders keep what users put there: results written as one set, never over a user's file.

What a hostile tester fed ``--out`` (issue 23): a folder holding the user's own ``results.json``, a nearly
full disk (a real small tmpfs), a writer killed between two moves, and damaged progress files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffbench import files as result_files
from diffbench.cli import main

USERS = '{"mine": "the numbers of my own paper"}\n'


@pytest.fixture(scope="module")
def submission(vismin_built, tmp_path_factory) -> Path:
    """A perfect score CSV for the session's VisMin sample bench."""
    from diffbench.data.building import load_built

    ids = load_built("vismin", "bench", "test")["id"]
    path = tmp_path_factory.mktemp("submission") / "perfect.csv"
    path.write_text("id,T0_I0,T0_I1,T1_I0,T1_I1\n" + "".join(f"{i},1.0,0.0,0.0,1.0\n" for i in ids))
    return path


@pytest.fixture(scope="module")
def omnidiff_cache(tmp_path_factory) -> Path:
    """The OmniDiff sample built into a datasets cache of this module's own."""
    from diffbench.data import building

    root = tmp_path_factory.mktemp("omnidiff-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(building, "cache_root", lambda: root)
        building.build_configs("omnidiff", ["default"], "sample", n=40, seed=0, image_size=(32, 32))
    return root


@pytest.fixture(scope="module")
def score_captions(omnidiff_cache, tmp_path_factory):
    """``diffbench score captions`` (BLEU only) of predictions for the OmniDiff sample's test split (each
    pair's first reference), against that build; returns the exit code."""
    from diffbench.data import building

    def run(out, *flags):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(building, "cache_root", lambda: omnidiff_cache)
            test = building.load_built("omnidiff", None, "test")
            path = tmp_path_factory.mktemp("captions") / "captions.json"
            path.write_text(json.dumps({i: c[0] for i, c in zip(test["id"], test["captions"])}))
            return main(["score", "captions", str(path), "--dataset", "omnidiff", "--metrics", "bleu", "--out",
                         str(out), *flags])

    return run


def files(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder`` (the manifest and any staging included)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    [line] = capsys.readouterr().err.strip().splitlines()
    return line


def score_vismin(submission, out, *flags):
    return main(["score", "vismin", str(submission), "--out", str(out), *flags])


def eval_vismin(out, *flags):
    return main(["eval", "vismin", "--limit", "4", "--num-workers", "0", "--no-progress", "--out", str(out), *flags])


# -- the user's own results.json ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["score vismin", "score captions", "eval"])
def test_a_users_results_json_is_never_replaced_without_overwrite(command, request, tmp_path, capsys):
    """Hostile row 2: DIR holds the user's results.json: refused (exit 2, one line naming it), untouched; with
    --overwrite it is replaced, and the result is ours from then on (a rerun needs no --overwrite)."""
    run = {"score vismin": lambda *f: score_vismin(request.getfixturevalue("submission"), out, *f),
           "score captions": lambda *f: request.getfixturevalue("score_captions")(out, *f),
           "eval": lambda *f: eval_vismin(out, *f)}[command]
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(USERS)
    assert run() == 2
    prefix = f"diffbench {command}: error: "
    assert one_error_line(capsys) == (
        f"{prefix}{out} holds results.json, which diffbench did not write (or which changed since): refusing to "
        "replace it; pass --overwrite (overwrite=True in Python) to replace it, or choose another --out")
    assert files(out) == {"results.json": hashlib.sha256(USERS.encode()).hexdigest()}, "nothing else written"
    assert run("--overwrite") == 0
    capsys.readouterr()
    assert "mine" not in (out / "results.json").read_text()
    written = files(out)
    assert set(result_files.recorded(out).items()) <= set(written.items())
    assert run() == 0, capsys.readouterr().err  # a rerun over its own files
    assert not (out / result_files.STAGING).exists()


def test_a_result_file_changed_since_it_was_written_is_the_users(submission, tmp_path, capsys):
    out = tmp_path / "out"
    assert score_vismin(submission, out) == 0
    with open(out / "results.md", "a") as handle:
        handle.write("\nMy comment on these numbers.\n")
    edited = files(out)
    assert score_vismin(submission, out, "--name", "again") == 2
    assert "holds results.md, which diffbench did not write (or which changed since)" in one_error_line(capsys)
    assert files(out) == edited


def test_a_caption_scoring_after_a_vismin_scoring_leaves_no_vismin_figure(submission, score_captions, tmp_path):
    """One set: the figure of the earlier (VisMin) result is replaced by the caption result's own, as it is
    ours; a user's file stays."""
    out = tmp_path / "out"
    assert score_vismin(submission, out) == 0
    (out / "my-figure.png").write_bytes(b"\x89PNG mine")
    assert score_captions(out) == 0
    assert sorted(files(out)) == [result_files.MANIFEST, "my-figure.png", "results.json", "results.md",
                                  "results.png", "results.svg", "samples.jsonl"]
    figure = (out / "results.svg").read_text()
    assert "Bleu_4" in figure and "VisMin" not in figure  # the caption result's figure, not the old one
    assert sorted(result_files.recorded(out)) == ["results.json", "results.md", "results.png", "results.svg",
                                                  "samples.jsonl"]


def test_eval_resumes_over_its_own_files(vismin_built, tmp_path, capsys):
    """An eval rerun over its finished run re-scores it (no --overwrite needed); its own files are recorded."""
    out = tmp_path / "run"
    assert eval_vismin(out) == 0
    first = files(out)
    assert {"vismin_scores.csv", "results.json", "results.md", "results.png", "results.svg", "run.json"} <= \
        set(result_files.recorded(out))
    capsys.readouterr()
    assert eval_vismin(out) == 0
    assert "resuming: 4 of 4" in capsys.readouterr().err
    assert files(out)["vismin_scores.csv"] == first["vismin_scores.csv"]
    assert json.loads((out / "results.json").read_text())["submission"] == str(out / "vismin_scores.csv")


# -- one set: a full disk, a kill between two moves -------------------------------------------------------


def namespace_prefix() -> list[str]:
    """How to run a command that mounts a tmpfs: a user and mount namespace of its own (``unshare -rm``), or
    as root a mount namespace (``unshare -m``); skipped, saying why, where neither is allowed."""
    if shutil.which("unshare") is None:
        pytest.skip("a real full disk needs a small tmpfs: `unshare` is not installed")
    for prefix in (["unshare", "-rm"], ["unshare", "-m"]):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    pytest.skip("a real full disk needs a small tmpfs: neither `unshare -rm` (user namespaces) nor, as root, "
                "`unshare -m` is allowed here")


# Mounts a 4 MB tmpfs at argv[1], writes a VisMin result there, fills the disk to leave room for results.json
# and results.md but not the figure, writes another result (refused by the disk) over it and one into a new
# folder, frees the space and writes a third. Prints what each step returned and left.
FULL_DISK = r"""
import contextlib, hashlib, io, json, os, subprocess, sys
from pathlib import Path

disk, submission = Path(sys.argv[1]), sys.argv[2]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
from diffbench.cli import main

out = disk / "out"
def state():
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(out.rglob("*"))}
def score(name, folder=out):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["score", "vismin", submission, "--out", str(folder), "--name", name])
    return code, err.getvalue()

report = {"first": score("first")}
report["before"] = state()
with open(disk / "filler", "wb") as filler:
    try:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()
    except OSError:
        pass
    os.truncate(disk / "filler", os.path.getsize(disk / "filler") - 48 * 1024)
report["free"] = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
report["second"] = score("second")
report["after_full"] = state()
report["fresh"] = score("fresh", disk / "fresh")
report["fresh_left"] = (disk / "fresh").exists()
(disk / "filler").unlink()
report["third"] = score("third")
report["after_third"] = state()
report["third_md"] = (out / "results.md").read_text()
print(json.dumps(report))
"""


def test_a_full_disk_leaves_the_old_set_whole(submission, tmp_path):
    """Hostile row 3, on a real full disk (a 4 MB tmpfs): the new results.json and .md would fit, the figure
    would not; the old set stays as it was, no staging folder is left (nor a new --out folder), and once
    there is space the next result is written whole."""
    prefix = namespace_prefix()
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run([*prefix, sys.executable, "-c", FULL_DISK, str(disk), str(submission)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["first"] == [0, ""]
    assert sorted(report["before"]) == [result_files.MANIFEST, "results.json", "results.md", "results.png",
                                        "results.svg", "samples.jsonl"]
    assert 0 < report["free"] <= 64 * 1024
    code, err = report["second"]
    assert code == 2 and err.startswith("diffbench score vismin: error: the disk is full") and err.count("\n") == 1
    assert report["after_full"] == report["before"], "the old set, whole: no new file beside the old figure"
    assert report["fresh"][0] == 2 and not report["fresh_left"], "a new --out that could not be written is not left"
    assert report["third"] == [0, ""]
    assert sorted(report["after_third"]) == sorted(report["before"])
    assert all(report["after_third"][n] != report["before"][n] for n in ("results.md", "results.png", "results.svg"))
    assert "| third |" in report["third_md"]


# Writes a VisMin result over OUT and kills itself (SIGKILL: no clean-up runs) after the first file of the set
# is moved into place.
KILL_BETWEEN_MOVES = """
import os, signal, sys
from diffbench import files as result_files
from diffbench.cli import main

def kill(name):
    os.kill(os.getpid(), signal.SIGKILL)
result_files._move_point = kill
main(["score", "vismin", sys.argv[2], "--out", sys.argv[1], "--name", "killed"])
"""


def test_a_set_cut_between_two_moves_is_completed_by_the_next_writer(submission, tmp_path, capsys):
    out = tmp_path / "out"
    assert score_vismin(submission, out, "--name", "first") == 0
    (out / "NOTES.md").write_text("mine")
    first = files(out)
    done = subprocess.run([sys.executable, "-c", KILL_BETWEEN_MOVES, str(out), str(submission)],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == -9, done.stderr[-2000:]
    cut = files(out)
    journals = [n for n in cut if n.endswith(result_files.JOURNAL)]
    assert len(journals) == 1, cut
    staged = {n.rsplit("/", 1)[1]: h for n, h in cut.items() if "/new/" in n}
    assert sorted(staged) == ["results.md", "results.png", "results.svg", "samples.jsonl"], \
        "killed after moving results.json"
    assert all(cut[n] == first[n] for n in staged), "a mixed set on disk: the old report beside it"
    # the same submission gives the same samples.jsonl; the reports carry the run's name
    assert all(first[n] != staged[n] for n in staged if n != "samples.jsonl")
    # the user's own file put where the killed writer had yet to move one: never replaced by the completion
    (out / "results.svg").write_text("<svg>mine</svg>")
    with pytest.raises(result_files.NotOursError, match=r"results\.svg changed while diffbench was completing"):
        result_files.prepare(out)
    assert (out / "results.svg").read_text() == "<svg>mine</svg>"
    (out / "results.svg").unlink()  # moved away

    result_files.prepare(out)  # what every writer does first
    completed = files(out)
    assert sorted(completed) == sorted(first), "no staging folder left"
    assert {n: completed[n] for n in staged} == staged, "rolled forward: the killed writer's set, whole"
    assert completed["results.json"] == cut["results.json"] and completed["NOTES.md"] == first["NOTES.md"]
    assert "| killed |" in (out / "results.md").read_text()
    assert result_files.recorded(out) == {n: h for n, h in completed.items()
                                          if n.startswith("results.") or n == "samples.jsonl"}
    assert score_vismin(submission, out, "--name", "next") == 0, capsys.readouterr().err


# -- damaged progress files -----------------------------------------------------------------------------


def _record(sample_id: str) -> str:
    return json.dumps({"id": sample_id, "T0_I0": 1.0, "T0_I1": 0.0, "T1_I0": 0.0, "T1_I1": 1.0})


BAD_LINES = [("a list", "[]"), ("no id", '{"no_id": 1}'), ("a string", '"object/0"'),
             ("garbage", "this is not json"), ("a record cut short", '{"id": "object/1", "T0_')]


@pytest.mark.parametrize("bad", [pytest.param(line, id=name) for name, line in BAD_LINES])
def test_a_bad_line_inside_a_progress_file_is_one_line_naming_it(vismin_built, tmp_path, capsys, bad):
    """Hostile row 5: a line that is not a saved prediction, before the last one: exit 2 naming file and line."""
    from diffbench.data.building import load_built

    ids = load_built("vismin", "bench", "test")["id"][:4]
    out = tmp_path / "run"
    (out / "progress").mkdir(parents=True)
    progress = out / "progress" / "rank-0.jsonl"
    progress.write_text(f"{_record(ids[0])}\n{bad}\n{_record(ids[1])}\n")
    assert eval_vismin(out) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"diffbench eval: error: {progress}, line 2: not a saved prediction"), line
    assert progress.read_text() == f"{_record(ids[0])}\n{bad}\n{_record(ids[1])}\n"


def test_a_cut_last_line_stays_an_interruption(vismin_built, tmp_path, capsys):
    """The last line cut short (no newline) is ignored as today: the run resumes from the whole lines."""
    from diffbench.data.building import load_built
    from diffbench.harness.draws import draw

    ids = draw(load_built("vismin", "bench", "test"), 4, "category")["id"]  # the rows --limit 4 takes
    out = tmp_path / "run"
    (out / "progress").mkdir(parents=True)
    (out / "progress" / "rank-0.jsonl").write_text("".join(f"{_record(i)}\n" for i in ids) + _record(ids[0])[:25])
    assert eval_vismin(out) == 0
    assert "resuming: 4 of 4" in capsys.readouterr().err


def test_appending_after_a_cut_line_drops_it(tmp_path):
    """A resumed run appends after dropping the cut line (not ending it with a newline, which would turn it
    into a bad line inside the file the next time)."""
    from diffbench.harness.outputs import ProgressStore

    store = ProgressStore(tmp_path, 0)
    store.path.write_text(_record("object/0") + "\n" + _record("object/1")[:25])
    store.append([{"id": "object/2", "T0_I0": 0.5}])
    store.close()
    assert store.path.read_text() == _record("object/0") + "\n" + json.dumps({"id": "object/2", "T0_I0": 0.5}) + "\n"
    assert sorted(ProgressStore(tmp_path, 0).load()) == ["object/0", "object/2"]
    whole = ProgressStore(tmp_path, 1)
    whole.path.write_text(_record("object/3"))  # cut just before its newline: a whole record, kept
    whole.append([{"id": "object/4"}])
    whole.close()
    assert sorted(ProgressStore(tmp_path, 1).load()) == ["object/0", "object/2", "object/3", "object/4"]


def test_module_doctests():
    import doctest

    from diffbench.commands import publish

    for module in (result_files, publish):
        assert doctest.testmod(module).failed == 0
