"""Hostile inputs to the builds and the input readers (issue 23): each is refused in one line naming the
file (and row, entry, field where there is one), and nothing hangs.

What each row of the issue's table feeds, and where its test is:

- a FIFO, a socket or a device where a source file is read (a VisMin data file, a difference-captioning image
  or annotation file, the build's fingerprint): refused from its ``stat``, unopened (here);
- ``diffbench build vismin --source sample --image-size 30000x30000``: refused up front (here);
- blank lines and quoted line breaks before a bad CSV cell: ``tests/vismin/test_vismin_submission_reader.py``;
- uint64, negative and 5,000-digit VisMin ids, text that is no UTF-8: ``tests/data/test_build_hostile_vismin.py``;
- 5,000-digit JSON integers: ``tests/captions/test_caption_inputs.py`` (predictions),
  ``tests/data/test_caption_integrity.py`` (difference-captioning releases), and the ``score captions`` command (here);
- caption coverage errors naming the predictions file, ``eval --data-files`` naming the file (here).

A case that used to hang runs under :func:`deadline`, so without the fix it fails instead of hanging.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from diffbench import cli
from diffbench.data import building
from diffbench.captions.scoring import score_predictions
from diffbench.harness.data import load_rows
from diffbench.data.synth import captions as synth_captions
from diffbench.data.synth import vismin as synth_vismin

KINDS = {"fifo": "a FIFO", "socket": "a socket", "device": "a character device"}


@contextlib.contextmanager
def deadline(seconds: float = 60):
    """Fail, rather than hang, when the block is still running after ``seconds`` (SIGALRM interrupts a
    blocked ``open`` of a FIFO, or a read loop over ``/dev/zero``)."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)  # pytest-timeout's own alarm, if it set one
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # given back, less the time spent here
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))


@contextlib.contextmanager
def memory_cap(extra: int = 2 << 30):
    """At most ``extra`` more bytes of address space for the block (``RLIMIT_AS``), so that a check that
    is missing fails fast with a MemoryError instead of rendering gigabytes (30000x30000 images took
    4.5 GB before the run failed)."""
    import resource

    used = int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmSize:")).split()[1]) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + extra if hard == resource.RLIM_INFINITY else min(used + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture
def make_special(monkeypatch):
    """``make(kind, path)``: a FIFO, a listening Unix socket or a device (a link to ``/dev/zero``) at ``path``."""
    sockets = []

    def make(kind: str, path: Path) -> Path:
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "socket":
            monkeypatch.chdir(path.parent)  # bound by its relative name: Unix socket paths are short
            server = socket.socket(socket.AF_UNIX)
            server.bind(path.name)
            sockets.append(server)
        else:
            os.symlink("/dev/zero", path)
        return path

    yield make
    for server in sockets:
        server.close()


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    return root


def _one_error_line(capsys, command: str) -> str:
    """The one line the CLI wrote to stderr, checked to be an error of ``command``."""
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"diffbench {command}: error: "), line
    return line.removeprefix(f"diffbench {command}: error: ")


def _vismin_source(folder: Path) -> Path:
    """A VisMin release whose parquet file is not named by split: the builder reads every data file."""
    (folder / "data").mkdir(parents=True)
    rows = list(synth_vismin.generate_bench(n=8, seed=3, image_size=(48, 32)))
    pq.write_table(pa.Table.from_pylist(rows), folder / "data" / "a.parquet")
    return folder


# -- FIFOs, sockets and devices --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_cli_refuses_a_special_file_in_a_vismin_source(kind, tmp_path, private_cache, make_special, capsys):
    source = _vismin_source(tmp_path / "src")
    special = make_special(kind, source / "data" / "x.parquet")
    with deadline():
        assert cli.main(["build", "vismin", "--source", str(source), "--overwrite"]) == 2
    assert _one_error_line(capsys, "build") == (f"{special}: not a regular file ({KINDS[kind]}); a source holds only "
                                                "regular files and folders")


@pytest.mark.parametrize("kind", KINDS)
def test_the_vismin_builder_refuses_a_special_data_file_unopened(kind, tmp_path, make_special):
    """The builder on its own (``load_dataset`` runs it so, with no fingerprint before it)."""
    source = _vismin_source(tmp_path / "src")
    special = make_special(kind, source / "data" / "x.parquet")
    builder = building.builder_class("vismin")(config_name="bench", source=str(source), cache_dir=str(tmp_path / "c"))
    with deadline(), pytest.raises(ValueError) as raised:
        builder.download_and_prepare()
    assert type(raised.value).__name__ == "VisminSourceError"
    assert str(raised.value) == f"{special}: not a regular file ({KINDS[kind]})"


@pytest.mark.parametrize("fingerprint", building.FINGERPRINT_KINDS)
@pytest.mark.parametrize("kind", KINDS)
def test_the_source_fingerprint_refuses_a_special_file_unopened(kind, fingerprint, tmp_path, make_special):
    source = _vismin_source(tmp_path / "src")
    special = make_special(kind, source / "data" / "x.parquet")
    with deadline(), pytest.raises(ValueError) as raised:
        building.folder_fingerprint(source, fingerprint)
    assert str(raised.value) == (f"{special}: not a regular file ({KINDS[kind]}); a source holds only regular files "
                                 "and folders")


def _spot_the_diff(folder: Path) -> tuple[Path, Path, str]:
    """A Spot-the-Diff sample, the after image of its first test pair, and where that pair is annotated."""
    source = synth_captions.WRITERS["spot_the_diff"](folder, 12, 0, (32, 32))
    annotations = source / "data/annotations/test.json"
    img_id = json.loads(annotations.read_text())[0]["img_id"]
    image = source / "data/resized_images" / f"{img_id}_2.png"
    image.unlink()
    return source, image, f"{annotations}, entry 0, column 'image_after' (upstream 'img_id')"


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_caption_set_image_that_is_a_special_file_is_refused_unopened(kind, tmp_path, make_special):
    source, image, where = _spot_the_diff(tmp_path / "std")
    make_special(kind, image)
    builder = building.builder_class("spot_the_diff")(config_name="default", source=str(source),
                                                      cache_dir=str(tmp_path / "c"))
    with deadline(), pytest.raises(ValueError) as raised:
        builder.download_and_prepare()
    assert str(raised.value) == f"{image}: image file not a regular file ({KINDS[kind]}) (referenced by {where})"


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_cli_content_fingerprint_refuses_a_caption_set_image_that_is_a_special_file(kind, tmp_path, private_cache,
                                                                                    make_special, capsys):
    """``--fingerprint content`` reads every byte of the source before the build: a FIFO blocked it,
    ``/dev/zero`` never ended."""
    source, image, _ = _spot_the_diff(tmp_path / "std")
    make_special(kind, image)
    with deadline():
        assert cli.main(["build", "spot_the_diff", "--source", str(source), "--fingerprint", "content"]) == 2
    assert _one_error_line(capsys, "build") == (f"{image}: not a regular file ({KINDS[kind]}); a source holds only "
                                                "regular files and folders")


@pytest.mark.parametrize("name, annotation", [("spot_the_diff", "data/annotations/test.json"),
                                              ("omnidiff", "test.jsonl")])
def test_a_caption_set_annotation_file_that_is_a_fifo_is_refused_never_skipped(name, annotation, tmp_path, make_special):
    """Before, Spot-the-Diff said "file not found", and OmniDiff built without its test split."""
    source = synth_captions.WRITERS[name](tmp_path / name, 12, 0, (32, 32))
    (source / annotation).unlink()
    make_special("fifo", source / annotation)
    builder = building.builder_class(name)(config_name="default", source=str(source), cache_dir=str(tmp_path / "c"))
    with deadline(), pytest.raises(ValueError) as raised:
        builder.download_and_prepare()
    assert str(raised.value) == f"{source / annotation}: not a regular file (a FIFO)"


# -- the synthetic sample's image size -----------------------------------------------------------------


@pytest.mark.parametrize("size, message", [
    ("30000x30000", "image size 30000x30000 is too large for a synthetic sample: at most 4096 pixels a side"),
    ("4097x16", "image size 4097x16 is too large for a synthetic sample: at most 4096 pixels a side"),
    ("16x4097", "image size 16x4097 is too large for a synthetic sample: at most 4096 pixels a side"),
    ("8", "image size must be at least 16x16, got 8x8"),
    ("320x240x3", "image size must look like 320x240 or 96, got '320x240x3'"),
    ("9" * 5000, f"image size must look like 320x240 or 96, got {'9' * 5000!r}"),
])
def test_cli_refuses_a_sample_image_size_up_front(size, message, tmp_path, private_cache, capsys):
    with deadline(30), memory_cap():
        assert cli.main(["build", "vismin", "--source", "sample", "--image-size", size]) == 2
    assert _one_error_line(capsys, "build") == message
    assert not private_cache.exists()  # refused before anything was written


def test_the_library_refuses_it_too_and_admits_every_real_size(private_cache):
    from diffbench.commands.build import parse_size

    with deadline(30), memory_cap(), pytest.raises(ValueError, match="image size 30000x30000 is too large"):
        building.build_configs("vismin", ["bench"], "sample", n=8, image_size=(30000, 30000))
    assert not private_cache.exists()
    # COCO images (VisMin) are at most 640 a side, the difference-captioning releases' 224 to 480; the samples default to 320x240.
    assert [parse_size(s) for s in ("16", "640x480", "4096", "4096x16")] == [(16, 16), (640, 480), (4096, 4096),
                                                                                 (4096, 16)]


# -- eval --data-files ---------------------------------------------------------------------------------


def test_cli_eval_data_files_names_the_file_and_what_it_expected(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["eval", "vismin", "--data-files", "/etc/passwd", "--out", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys, "eval")
    assert line.startswith("/etc/passwd: not a parquet file (Parquet magic bytes not found in footer"), line
    assert line.endswith("; --data-files takes parquet files or one save_to_disk folder"), line
    assert not (tmp_path / "out").exists()


def _data_files(case: str, folder: Path, make_special) -> tuple[list[Path], str]:
    """``--data-files`` of one bad ``case``, and the error it must give."""
    import datasets

    table = pa.table({"id": ["a", "b"]})
    good = folder / "good.parquet"
    pq.write_table(table, good)
    expected = "--data-files takes parquet files or one save_to_disk folder"
    if case == "missing":
        return [good, folder / "absent.parquet"], f"{folder / 'absent.parquet'}: no such file ({expected})"
    if case == "fifo":
        return [make_special("fifo", folder / "x.parquet")], f"{folder / 'x.parquet'}: not a regular file (a FIFO); {expected}"
    if case == "truncated":
        (folder / "cut.parquet").write_bytes(good.read_bytes()[:-9])
        return [good, folder / "cut.parquet"], f"{folder / 'cut.parquet'}: not a parquet file ("
    if case == "plain-folder":
        (folder / "plain").mkdir()
        return [folder / "plain"], (f"{folder / 'plain'}: not a save_to_disk folder (no dataset_dict.json or "
                                    f"state.json); {expected}")
    if case == "folder-and-file":
        datasets.Dataset.from_dict({"id": ["a"]}).save_to_disk(str(folder / "saved"))
        return [folder / "saved", good], f"{good}: {expected}, not a folder ({folder / 'saved'}) and more besides"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"id": ["a"]})}).save_to_disk(str(folder / "dict"))
    return [folder / "dict"], (f"{folder / 'dict'}: no split 'test' in this save_to_disk folder (it has train); "
                               "choose one with --split")


@pytest.mark.parametrize("case", ["missing", "fifo", "truncated", "plain-folder", "folder-and-file", "no-such-split"])
def test_data_files_errors_name_the_file(case, tmp_path, make_special):
    data_files, message = _data_files(case, tmp_path, make_special)
    with deadline(), pytest.raises((ValueError, FileNotFoundError)) as raised:
        load_rows("vismin", None, "test", data_files)
    text = str(raised.value)
    assert "\n" not in text and text.startswith(message), text


def test_good_data_files_still_load(tmp_path):
    import datasets

    pq.write_table(pa.table({"id": ["a", "b"]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": ["c"]}), tmp_path / "b.parquet")
    assert load_rows("vismin", None, "test", [tmp_path / "a.parquet", tmp_path / "b.parquet"])["id"] == ["a", "b", "c"]
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"id": ["x"]})}).save_to_disk(str(tmp_path / "saved"))
    assert load_rows("vismin", None, "test", [tmp_path / "saved"])["id"] == ["x"]


# -- caption predictions: coverage names the file; a 5,000-digit id through the command ---------------------


@pytest.fixture
def tiny_captions():
    import datasets

    return datasets.Dataset.from_dict({
        "id": ["CLEVR_default_000001_semantic", "CLEVR_default_000001_nonsemantic"],
        "captions": [["the cube turned red"], ["nothing changed"]],
        "change_types": [["color"], []],
        "distractor": [False, True],
    })


@pytest.mark.parametrize("predictions, message", [
    ({"CLEVR_default_000001_semantic": "a"}, "1 of 2 dataset ids have no prediction"),
    ({"CLEVR_default_000001_semantic": "a", "CLEVR_default_000001_nonsemantic": "b", "zz": "c"},
     "1 predictions have ids not in the dataset, e.g. ['zz']"),
    ({"CLEVR_default_000001_semantic": "a", "000001.png": "b", "000001.png_n": "c"},
     "id 'CLEVR_default_000001_semantic' has two predictions (keys 'CLEVR_default_000001_semantic' and '000001.png')"),
], ids=["missing", "extra", "twice-through-an-alias"])
def test_caption_coverage_errors_name_the_predictions_file(predictions, message, tiny_captions, tmp_path):
    source = tmp_path / "model.json"
    with pytest.raises(ValueError) as raised:
        score_predictions(predictions, tiny_captions, metrics=["bleu"], source=source)
    assert str(raised.value).startswith(f"{source}: {message}"), raised.value


@pytest.fixture(scope="module")
def omnidiff_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("omnidiff-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(building, "cache_root", lambda: root)
        building.build_configs("omnidiff", ["default"], "sample", n=12, image_size=(32, 32), overwrite=True)
    return root


def test_cli_score_captions_names_a_5000_digit_id_by_file_entry_and_field(omnidiff_cache, tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.setattr(building, "cache_root", lambda: omnidiff_cache)
    predictions = tmp_path / "model.json"
    predictions.write_text('[{"id": "a", "caption": "b"}, {"id": ' + "7" * 5000 + ', "caption": "c"}]')
    assert cli.main(["score", "captions", str(predictions), "--dataset", "omnidiff", "--out", str(tmp_path / "out")]) == 2
    assert _one_error_line(capsys, "score captions") == (f"{predictions}: entry 1: the id must be a string or an "
                                                         "integer, got an integer of 5,000 digits (field 'id')")


def test_cli_score_captions_names_the_predictions_file_in_coverage_errors(omnidiff_cache, tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.setattr(building, "cache_root", lambda: omnidiff_cache)
    predictions = tmp_path / "model.json"
    predictions.write_text('{"not-an-id": "a caption"}')
    assert cli.main(["score", "captions", str(predictions), "--dataset", "omnidiff", "--out", str(tmp_path / "out")]) == 2
    assert _one_error_line(capsys, "score captions").startswith(f"{predictions}: 1 predictions have ids not in the dataset")


def test_the_vismin_folder_keeps_an_equal_copy_of_how_values_are_shown():
    """``datasets/vismin/vismin.py`` is self-contained: it copies ``caption_builder.shown``; the two agree."""
    from diffbench.data import caption_builder
    from diffbench.data.hub_folders import load_module

    vismin = load_module("datasets", "vismin")
    for value in ("7", "", "a'b", "1" * 60, "1" * 61, "é" * 5000, 7, None):
        assert vismin._shown(value) == caption_builder.shown(value)
    assert vismin.SHOWN_CHARS == caption_builder.SHOWN_CHARS
