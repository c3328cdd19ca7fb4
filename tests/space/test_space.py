"""The demo Space, launched as `diffbench space` in a subprocess and driven through gradio_client and
a real browser (Debian's Chromium via Playwright; never `playwright install`).

One server serves the whole module: it builds the difference-captioning samples on start (the VisMin
sample comes from the session fixture), so the first requests also test "not built yet -> build".
The default model is diffbench's embedded one (the module fails when it is not packaged).
"""

from __future__ import annotations

import csv
import doctest
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT = 120
DEFAULT = "diffbench default (embedded, offline)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _packaged_default_model() -> Path:
    """The embedded default model the Space offers; the module fails if it is not packaged (a packaging
    regression must not hide behind a stand-in model)."""
    from diffbench.models.embedded import default_model_path

    return default_model_path()  # FileNotFoundError when the package lacks it


@pytest.fixture(scope="module")
def space_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("space")


@pytest.fixture(scope="module")
def space_url(vismin_built, space_tmp):
    tmp = space_tmp
    port = _free_port()
    (tmp / "tmp").mkdir()
    _packaged_default_model()
    env = {key: value for key, value in os.environ.items() if key != "DIFFBENCH_SPACE_MODEL"}  # the packaged one
    env.update({"GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp / "gradio"),
                "DIFFBENCH_DATA_DIR": str(tmp / "data"), "TMPDIR": str(tmp / "tmp")})
    log_path = tmp / "space.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "diffbench", "space", "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the Space exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the Space did not answer within {START_TIMEOUT} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        # The caption worker runs in its own process group (so that a time bound can kill it with its
        # JVMs); the server stops it as it exits.
        workers = _caption_workers_of(proc.pid)
        # The server and what it started share a process group: end them all, by that id.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        log_text = log_path.read_text(errors="replace")
        # Visitors' mistakes are answered, not logged as crashes.
        assert "unexpected error in a Space handler" not in log_text, log_text[-3000:]
        # Stopped by SIGTERM, the server removed its result folders; the leaderboard stays.
        assert not list((tmp / "tmp").glob("diffbench-space-results-*")), list((tmp / "tmp").iterdir())
        assert (tmp / "data" / "leaderboard.sqlite3").is_file()
        assert workers, "the Space started no caption worker"
        assert all(_process_group(pid, settle_s=5) == [] for pid in workers), workers


@pytest.fixture(scope="module")
def client(space_url):
    from gradio_client import Client

    return Client(space_url, verbose=False)


@pytest.fixture(scope="module")
def sample_pair(client):
    """Two images and two captions of the built VisMin sample, as the Space hands them out."""
    image_0, image_1, text_0, text_1 = client.predict(0, api_name="/load_sample")
    return image_0, image_1, text_0, text_1


def _compare(client, image_0, image_1, text_0, text_1, model=DEFAULT):
    from gradio_client import handle_file

    return client.predict(handle_file(str(image_0)), handle_file(str(image_1)), text_0, text_1, model,
                          api_name="/compare")


def _unescaped(markdown: str) -> str:
    """What a Markdown message says (the Space escapes the visitor's text in it)."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown)


def _friendly(message: str, *needles: str) -> None:
    assert message.startswith("⚠"), message
    assert "Traceback" not in message and "File \"" not in message and "\n" not in message, message
    text = _unescaped(message)
    for needle in needles:
        assert needle.lower() in text.lower(), message


def _official_verdict(s) -> dict:
    text = s[0][0] > s[1][0] and s[1][1] > s[0][1]
    image = s[0][0] > s[0][1] and s[1][1] > s[1][0]
    return {"text": text, "image": image, "group": text and image}


@pytest.mark.parametrize("module", ["backend", "leaderboard", "caption_worker", "tables", "runs"])
def test_doctests(module):
    import importlib

    failures, attempted = doctest.testmod(importlib.import_module(f"diffbench.space.{module}"))
    assert attempted and not failures


def test_gradio_is_imported_only_by_the_app():
    code = ("import sys, diffbench.space.backend, diffbench.space.leaderboard, diffbench.space.runs, diffbench.cli;"
            "import diffbench.cli as c; c.build_parser(); print('gradio' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


# -- Explore --------------------------------------------------------------------------------------


def test_explore_vismin_by_category(client):
    from diffbench.data.building import load_built

    test = load_built("vismin", "bench", "test")
    counting = test.features["category"].int2str(test["category"]).count("counting")
    image_a, image_b, caption, position, note = client.predict("vismin", "counting", 3, "all", api_name="/explore")
    assert "category **counting**" in caption and f"pair 3 of {counting}" in caption
    from diffbench.data.provenance import is_synthetic, of_dataset

    assert ("*Data: the synthetic sample (n=" in caption) == is_synthetic(of_dataset(test))
    assert position == 3 and Path(image_a).is_file() and Path(image_b).is_file() and note == ""
    assert "(left)" not in caption and "| image 0 |" in caption  # side by side or stacked: named by number
    # A position out of range shows the nearest pair and says so beside the field.
    *_, caption, position, note = client.predict("vismin", "counting", 999, "all", api_name="/explore")
    assert position == counting and f"pair {counting} of {counting}" in caption
    assert note == f"⚠ pair numbers run from 1 to {counting}: showing pair {counting}"
    *_, caption, position, note = client.predict("vismin", "all", 0, "all", api_name="/explore")
    assert position == 1 and "pair 1 of" in caption and "showing pair 1" in note
    # The split filter: only that split's pairs.
    train = load_built("vismin", "bench").get("train")
    if train is not None:
        *_, caption, _, _ = client.predict("vismin", "all", 1, "train", api_name="/explore")
        assert f"pair 1 of {len(train)}" in caption and "split train" in caption
    _, _, message, _, _ = client.predict("vismin", "all", 1, "nope", api_name="/explore")
    _friendly(message, "no split 'nope'")


def test_explore_captioning_set_by_change_type(client):
    from diffbench.data.building import load_built

    # The filter dropdown's new choices: "all", then the set's change types (the Space built the set if need be).
    labels, splits = client.predict("clevr_change", api_name="/explore_labels")
    built = load_built("clevr_change")
    types = sorted({t for split in built.values() for ts in split["change_types"] for t in ts})
    assert [c[0] for c in labels["choices"]] == ["all", *types] and "color" in types
    assert [c[0] for c in splits["choices"]] == ["all", *sorted(built, key=lambda s: (s != "test", s))]
    _, _, caption, _, _ = client.predict("clevr_change", "color", 1, "test", api_name="/explore")
    assert "change types **" in caption and "color" in caption and "What changed" in caption
    _, _, message, _, _ = client.predict("omnidiff", "no-such-type", 1, "all", api_name="/explore")
    _friendly(message, "no pairs")
    # A set without change types says nothing of them; a synthetic build's rows are not called "real".
    from diffbench.data.provenance import is_synthetic, of_dataset

    labels, _ = client.predict("image_editing_request", api_name="/explore_labels")
    _, _, caption, _, _ = client.predict("image_editing_request", "all", 1, "all", api_name="/explore")
    assert "change types" not in caption and [c[0] for c in labels["choices"]] == ["all"]
    if is_synthetic(of_dataset(load_built("image_editing_request", None, "test"))):
        assert "· real ·" not in caption and "synthetic sample" in caption


# -- Try a model ----------------------------------------------------------------------------------


def test_compare_gives_verdict_and_heatmap(client, sample_pair):
    verdict, heatmap, details = _compare(client, *sample_pair)
    assert details["model"] == DEFAULT and len(details["similarities"]) == 2
    expected = _official_verdict(details["similarities"])
    assert {k: details[k] for k in expected} == expected
    for key in ("text", "image", "group"):
        assert f"{key.capitalize()}: {'right' if expected[key] else 'wrong'}" in verdict
    assert heatmap is not None


def test_hub_model_offline_is_a_message(client, sample_pair):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    verdict, _, details = _compare(client, *sample_pair, model="google/siglip-base-patch16-224")
    _friendly(verdict, "needs the network", "offline")
    assert details == {}


def test_bad_image_uploads_are_messages(client, sample_pair, tmp_path):
    from PIL import Image

    image_0, image_1, text_0, text_1 = sample_pair
    not_image = tmp_path / "holiday.png"
    not_image.write_text("this is a text file with an image's name\n")
    _friendly(_compare(client, not_image, image_1, text_0, text_1)[0], "holiday.png", "not an image")

    big = tmp_path / "big.bmp"  # an uncompressed 4200x4200 bitmap: 52.9 MB
    Image.new("RGB", (4200, 4200), (200, 30, 30)).save(big)
    assert big.stat().st_size > 50_000_000
    _friendly(_compare(client, image_0, big, text_0, text_1)[0], "big.bmp", "MB")

    _friendly(_compare(client, image_0, image_1, text_0, "")[0], "both captions")
    # Still serving, and still right.
    assert "Text:" in _compare(client, *sample_pair)[0]


def _data_url(path) -> dict:
    """An image as a browser pastes it: a data URL, no uploaded file."""
    import base64

    url = "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()
    return {"path": None, "url": url, "orig_name": "pasted.png", "meta": {"_type": "gradio.FileData"}}


def test_concurrent_compares_of_one_pasted_image(client, sample_pair):
    """Issue 14: 30 concurrent requests with the same pasted image gave 2-8 "not an image file"."""
    image_0, image_1, text_0, text_1 = sample_pair
    pasted = [_data_url(image_0), _data_url(image_1)]
    jobs = [client.submit(*pasted, text_0, text_1, DEFAULT, api_name="/compare") for _ in range(30)]
    verdicts = [job.result(timeout=120)[0] for job in jobs]
    assert all(v.startswith("**Text:") for v in verdicts), [v for v in verdicts if not v.startswith("**Text:")][:3]
    assert len(set(verdicts)) == 1 and verdicts[0] == _compare(client, *sample_pair)[0]


def test_truncated_and_pasted_garbage_images_are_messages(client, sample_pair, tmp_path):
    image_0, image_1, text_0, text_1 = sample_pair
    cut = tmp_path / "cut.png"
    data = Path(image_0).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    _friendly(_compare(client, cut, image_1, text_0, text_1)[0], "cut.png", "cannot be decoded")
    garbage = {**_data_url(image_0), "url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA"}
    verdict = client.predict(garbage, _data_url(image_1), text_0, text_1, DEFAULT, api_name="/compare")[0]
    _friendly(verdict, "pasted.png", "cannot be decoded")


# -- Score a submission ---------------------------------------------------------------------------


def _vismin_rows():
    from diffbench.data.building import load_built

    return load_built("vismin", "bench", "test")["id"]


def _write_csv(path: Path, ids, scores=(0.9, 0.1, 0.2, 0.8)) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "T0_I0", "T0_I1", "T1_I0", "T1_I1"])
        for i in ids:
            writer.writerow([i, *scores])
    return path


def _vismin_run(folder: Path, csv_path: Path) -> Path:
    """A run folder as ``diffbench score vismin`` writes it (results.json and samples.jsonl), of the
    build the Space reads."""
    from diffbench.data.building import load_built
    from diffbench.vismin import scoring

    scored = scoring.score(csv_path, dataset=load_built("vismin", "bench", "test"))
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(scored.results))
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scored.samples))
    return folder


def _board_rows(board) -> list[dict]:
    return [dict(zip(board["headers"], row)) for row in board["data"]]


def test_score_vismin_submission_once_escaped_and_not_ranked_when_synthetic(client, tmp_path):
    from gradio_client import handle_file

    from diffbench.data.building import load_built
    from diffbench.data.provenance import SYNTHETIC_NOTE, is_synthetic, of_dataset

    synthetic = is_synthetic(of_dataset(load_built("vismin", "bench", "test")))
    ids = _vismin_rows()
    path = _write_csv(tmp_path / "perfect.csv", ids)
    name = "<b>perfect</b> | **model**"
    message, table, chart, caption_chart, results_path, _ = client.predict(
        handle_file(str(path)), False, name, api_name="/score_vismin")
    board, _ = client.predict("AVG", api_name="/leaderboard")
    assert message.startswith("✓") and "40 samples" in message and "100.00" in message, message
    assert table.startswith("| Model |") and "| &lt;b&gt;perfect&lt;/b&gt; \\| \\*\\*model\\*\\* | 100.00 ±0.00 |" in table
    assert chart is not None
    results = json.loads(Path(results_path).read_text())
    assert results["scores"]["group"] == 100.0 and results["submission"] == "perfect.csv"
    assert results["provenance"]["dataset"] == "vismin" and results["content_hash"].startswith("sha256:")
    rows = _board_rows(board)
    run = next(n for n, row in enumerate(rows) if row["Model"].endswith(name))  # stored as typed, shown as text
    published = [n for n, row in enumerate(rows) if row["Source"].startswith("published")]
    assert rows[run]["AVG"] == 100.0
    if synthetic:
        assert SYNTHETIC_NOTE in message and rows[run]["Model"] == f"[synthetic sample] {name}"
        assert SYNTHETIC_NOTE in rows[run]["Source"] and run > max(published)  # never above a published row
    # The same file again, under another name: counted once, and the message says under which name.
    message, *_ = client.predict(handle_file(str(path)), False, "again", api_name="/score_vismin")
    assert "already scored" in message and "counted once" in message, message
    board, _ = client.predict("AVG", api_name="/leaderboard")
    assert len(board["data"]) == len(rows) and "again" not in [r["Model"] for r in _board_rows(board)]


def test_leaderboard_api_gives_numbers_and_the_setting(client):
    board, captions = client.predict("AVG", api_name="/leaderboard")
    assert board["headers"][:4] == ["Model", "Setting", "AVG", "AVG ±"] and "Source" in captions["headers"]
    rows = _board_rows(board)
    human = next(row for row in rows if row["Model"] == "MTurk Human")
    assert human["AVG"] == pytest.approx(86.545)  # the mean of its cells (published 86.54); the page shows 86.55
    # The two Idefics2 rows of the paper, told apart by their setting.
    assert sorted(row["Setting"] for row in rows if row["Model"] == "Idefics2") == ["fine-tuned", "zero-shot"]


def test_bad_submissions_are_messages(client, tmp_path):
    from gradio_client import handle_file

    def score(path, allow_missing=False):
        return client.predict(handle_file(str(path)), allow_missing, "", api_name="/score_vismin")

    ids = _vismin_rows()
    malformed = tmp_path / "malformed.csv"
    malformed.write_text("id,T0_I0,T0_I1,T1_I0,T1_I1\nobject/0,0.5,0.7,0,1\n\"unclosed,1,2\n")
    _friendly(score(malformed)[0], "malformed.csv", "not a readable CSV file")
    twice = tmp_path / "twice.csv"
    twice.write_text("id,T0_I0,T0_I1,T1_I0,T1_I1,T0_I0\nobject/0,1,0,0,1,0\n")
    _friendly(score(twice)[0], "twice.csv", "column 'T0_I0' appears twice")
    huge = tmp_path / "huge.csv"
    with open(huge, "wb") as f:
        f.write(b"id,T0_I0,T0_I1,T1_I0,T1_I1\n")
        f.truncate(10 * 2**20)
    _friendly(score(huge)[0], "huge.csv", "MB", "accepted here")
    markup = tmp_path / "markup.csv"
    markup.write_text("id,T0_I0,T0_I1,T1_I0,T1_I1\nobject/0,<img src=x onerror=alert(1)>,0,0,1\n")
    message = score(markup)[0]
    _friendly(message, "not a finite number")
    assert "<img" not in message and "&lt;img" in message  # shown as text, never as HTML
    wrong_columns = tmp_path / "wrong_columns.csv"
    wrong_columns.write_text("id,score\nobject/0,0.5\n")
    _friendly(score(wrong_columns)[0], "wrong_columns.csv", "missing columns", "T0_I0")

    not_numbers = _write_csv(tmp_path / "words.csv", ids, scores=("high", 0.1, 0.2, 0.8))
    _friendly(score(not_numbers)[0], "words.csv", "line 2", "not a finite number")

    binary = tmp_path / "scores.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    _friendly(score(binary)[0], "binary")

    missing = _write_csv(tmp_path / "partial.csv", ids[:30])
    message = score(missing)[0]
    _friendly(message, "partial.csv", "10 of 40 dataset samples missing", "tick “Score even if some samples are missing”")
    assert "/tmp/" not in message and "--allow-missing" not in message  # the UI's words, not the CLI's
    message, table, *_ = score(missing, allow_missing=True)
    assert message.startswith("✓") and "30 samples" in message and "Scored 30 of 40 samples" in table


def test_score_difference_captions(client, tmp_path):
    from gradio_client import handle_file

    from diffbench.data.building import load_built

    client.predict("omnidiff", "all", 1, api_name="/explore")  # the Space builds it on first use
    test = load_built("omnidiff", None, "test")
    rows = list(test.select_columns(["id", "captions"]))
    # Each pair gets the next pair's caption: no score is perfect by construction.
    predictions = {row["id"]: rows[(i + 1) % len(rows)]["captions"][0] for i, row in enumerate(rows)}
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(predictions))
    message, table, _, chart, results_path, _ = client.predict(
        handle_file(str(path)), "omnidiff", "test", api_name="/score_captions")
    _, board = client.predict("AVG", api_name="/leaderboard")
    assert message.startswith("✓") and "CIDEr" in message, message
    assert "| subset | samples |" in table and "METEOR" in table and chart is not None
    results = json.loads(Path(results_path).read_text())
    # The Space's numbers are the library's (and so pycocoevalcap's), overall and per change type.
    from diffbench.captions.scoring import score_predictions

    expected = score_predictions(predictions, test)
    assert results["samples"] == len(test) and set(results["groups"]) == set(expected["groups"])
    assert results["benchmark"] == "omnidiff" and results["ci95"] == expected["ci95"]  # the same seed: the same interval
    for scores, wanted in [(results["scores"], expected["scores"]),
                           *((results["groups"][g]["scores"], expected["groups"][g]["scores"]) for g in expected["groups"])]:
        assert all(scores[m] == pytest.approx(wanted[m], rel=1e-12, abs=1e-13) for m in ("Bleu_1", "METEOR", "ROUGE_L", "CIDEr"))
    # Two decimals wherever the Space shows a score (percent, as the leaderboard); full precision in results.json.
    assert f"CIDEr **{results['scores']['CIDEr']:.2f}**" in message and "95% interval" in message, message
    total = next(line for line in table.splitlines() if line.startswith("| all |"))
    cells = [c.strip() for c in total.strip("|").split("|")][2:]
    assert cells and all(len(c.split(" ±")[0].split(".")[-1]) == 2 for c in cells), total
    assert any(c.startswith(f"{results['scores']['METEOR']:.2f} ±") for c in cells), cells
    values = [v for scores in (results["scores"], *(g["scores"] for g in results["groups"].values()))
              for v in scores.values()]
    assert any(round(v, 4) != v for v in values), values  # not rounded in the file
    assert board["data"][-1][0].endswith("captions.json")
    assert results["provenance"]["dataset"] == "omnidiff"

    # Bounded per request: a file far larger than the split could need is refused before it is read
    # (issue 14: a 40 MB caption JSON took 119 s and 1.5 GB), and so is an overlong caption.
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({i: "word " * 60_000 for i in predictions}))
    assert huge.stat().st_size > 2_000_000
    _friendly(client.predict(handle_file(str(huge)), "omnidiff", "test", api_name="/score_captions")[0],
              "huge.json", "accepted here")
    long = tmp_path / "long.json"
    long.write_text(json.dumps({**predictions, next(iter(predictions)): "x" * 3000}))
    _friendly(client.predict(handle_file(str(long)), "omnidiff", "test", api_name="/score_captions")[0],
              "long.json", "3,000 characters", "captions up to 2,000 characters")

    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(dict(list(predictions.items())[1:])))
    message = client.predict(handle_file(str(partial)), "omnidiff", "test", api_name="/score_captions")[0]
    _friendly(message, "partial.json", "have no prediction", "caption for every pair")
    assert "allow" not in message.lower()  # no option this tab lacks

    bad = tmp_path / "bad.json"
    bad.write_text('{"oops": ')
    _friendly(client.predict(handle_file(str(bad)), "omnidiff", "test", api_name="/score_captions")[0],
              "bad.json", "not valid JSON")
    wrong_ids = tmp_path / "wrong_ids.json"
    wrong_ids.write_text(json.dumps({"nope": "a caption"}))
    _friendly(client.predict(handle_file(str(wrong_ids)), "omnidiff", "test", api_name="/score_captions")[0],
              "wrong_ids.json", "ids not in the dataset")


def _caption_workers_of(parent: int) -> list[int]:
    """The pids of ``parent``'s child processes running ``diffbench.space.caption_worker`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"diffbench.space.caption_worker" in command:
            found.append(int(stat.parent.name))
    return found


def _process_group(pgid: int, settle_s: float = 0.0) -> list[str]:
    """The command names of the live (not zombie) processes in a process group (Linux /proc); with
    ``settle_s``, polled until the group is empty or that time has passed (a kill is asynchronous)."""
    deadline = time.monotonic() + settle_s
    while True:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                name, fields = stat.read_text().rsplit(")", 1)
            except OSError:
                continue
            state, _, group = fields.split()[:3]
            if int(group) == pgid and state != "Z":
                found.append(name.split("(", 1)[1])
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_caption_scoring_time_is_bounded(client, tmp_path):
    """The per-request time bound, in the backend the handler calls (in this process): a scoring past
    its bound is stopped, its worker process and JVMs killed; the next request gets a fresh worker."""
    from diffbench.data.building import load_built
    from diffbench.space import backend

    client.predict("omnidiff", "all", 1, api_name="/explore")  # built by the Space if need be
    store = backend.DataStore()
    test = load_built("omnidiff", None, "test")
    path = tmp_path / "c.json"
    path.write_text(json.dumps({row["id"]: row["captions"][0] for row in test.select_columns(["id", "captions"])}))
    worker = backend.caption_worker()
    try:
        warm = backend.score_caption_run(path, "omnidiff", store).results  # the worker and its JVMs started
        pid = worker.pid
        assert pid and any(name == "java" for name in _process_group(pid)), _process_group(pid)
        with pytest.raises(backend.UserError, match=r"c\.json: scoring took longer than 0\.001 s here \(stopped\)"):
            backend.score_caption_run(path, "omnidiff", store, timeout_s=0.001)
        assert worker.pid is None and _process_group(pid, settle_s=5) == []  # nothing of it still runs
        again = backend.score_caption_run(path, "omnidiff", store).results  # results and samples
        assert worker.pid not in (None, pid) and again["scores"]["CIDEr"] == warm["scores"]["CIDEr"]
    finally:
        worker.close()


def test_caption_worker_busy_past_the_bound_is_said_so():
    """A request that waited its whole bound for another one never ran: it says so, nothing is stopped."""
    from diffbench.space.caption_worker import CaptionWorker, WorkerTimeout

    worker = CaptionWorker()
    worker._lock.acquire()  # another request scoring
    try:
        with pytest.raises(WorkerTimeout, match="another scoring held the worker") as caught:
            worker.score({"x": "a caption"}, None, timeout_s=0.05)
        assert caught.value.busy and worker.pid is None  # nothing was started or stopped
    finally:
        worker._lock.release()
        worker.close()


def test_a_rebuild_is_noticed(vismin_built):
    """``diffbench build ... --overwrite`` while the Space runs: the next request reads the new build."""
    from diffbench.data import building
    from diffbench.space import backend

    store = backend.DataStore(names=("vismin",))
    before = store.vismin_bench()
    assert store.vismin_bench() is before  # loaded once while nothing changes
    stamp = building.build_stamp("vismin")
    building.build_configs("vismin", ["bench"], "sample", n=len(before), seed=0, image_size=(96, 72), overwrite=True)
    assert building.build_stamp("vismin") != stamp
    after = store.vismin_bench()
    assert after is not before and after["id"] == before["id"]


def test_hub_model_fails_fast_when_the_hub_is_unreachable(monkeypatch):
    from diffbench.space import backend

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    models = backend.ModelCache()
    started = time.monotonic()
    with pytest.raises(backend.UserError, match="cannot be reached right now"):
        models.get(backend.HUB_MODELS[0])
    with pytest.raises(backend.UserError, match="cannot be reached right now"):  # remembered: no new probe
        models.get(backend.HUB_MODELS[1])
    assert time.monotonic() - started < 2 * backend.HUB_PROBE_TIMEOUT_S + 30  # not tens of seconds of retries


def test_leaderboard_published_rows_and_sorting(client):
    def ranked(board):
        rows = _board_rows(board)
        return [r for r in rows if r["Source"].startswith("published") or "not" not in r["Source"]]

    board, _ = client.predict("Model", api_name="/leaderboard")
    names = [row["Model"] for row in ranked(board)]
    assert "MTurk Human" in names and "Random Chance" in names
    assert names == sorted(names, key=str.lower)
    board, _ = client.predict("AVG", api_name="/leaderboard")
    avg = [row["AVG"] for row in ranked(board)]
    assert avg == sorted(avg, reverse=True) and avg[0] == pytest.approx(86.545)  # MTurk Human: its cells' mean


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def test_browser_upload_type_click_verdict(space_url, client, chromium, sample_pair, tmp_path):
    from playwright.sync_api import expect

    image_0, image_1, text_0, text_1 = sample_pair
    uploads = []
    for n, image in enumerate((image_0, image_1)):  # copies with plain names, as a visitor's files
        uploads.append(shutil.copy(image, tmp_path / f"pair_{n}.png"))
    page = chromium.new_page(viewport={"width": 1280, "height": 1100})
    try:
        page.goto(space_url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Try a model").click()
        page.locator("#image-0 input[type=file]").set_input_files(uploads[0])
        page.locator("#image-1 input[type=file]").set_input_files(uploads[1])
        expect(page.locator("#image-0 img")).to_be_visible(timeout=20_000)
        expect(page.locator("#image-1 img")).to_be_visible(timeout=20_000)
        page.locator("#caption-0 textarea").fill(text_0)
        page.locator("#caption-1 textarea").fill(text_1)
        page.locator("#compare").click()
        verdict = page.locator("#verdict")
        expect(verdict).to_contain_text("Group:", timeout=30_000)
        shown = verdict.inner_text()
        page.screenshot(path=str(tmp_path / "space_try_a_model.png"), full_page=True)
        # A file that is no image: a message on the page (and a toast), and the page keeps working.
        not_image = tmp_path / "notes.png"
        not_image.write_text("not an image\n")
        page.locator("#image-0 input[type=file]").set_input_files(str(not_image))
        page.locator("#compare").click()
        expect(verdict).to_contain_text("notes.png: not an image file", timeout=30_000)
        expect(page.get_by_text("Warning").first).to_be_visible()
        shots = os.environ.get("DIFFBENCH_SCREENSHOT_DIR")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp_path / "space_try_a_model.png", Path(shots) / "space_try_a_model.png")
    finally:
        page.close()
    # The page shows what the official rule says about the similarities the API gives for the same pair.
    _, _, details = _compare(client, *sample_pair)
    expected = _official_verdict(details["similarities"])
    for key in ("text", "image", "group"):
        assert f"{key.capitalize()}: {'right' if expected[key] else 'wrong'}" in shown, shown
    assert (tmp_path / "space_try_a_model.png").stat().st_size > 10_000
