"""The demo Space, launched as `diffbench space` in a subprocess and driven through gradio_client and
a real browser (Debian's Chromium via Playwright; never `playwright install`).

One server serves the whole module: it builds the difference-captioning samples on start (the VisMin
sample comes from the session fixture), so the first requests also test "not built yet -> build".
The default model is diffbench's embedded one when it is installed, else a tiny CLIP built here.
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


def _default_model_env(tmp_dir: Path) -> dict:
    """Nothing when diffbench's default model is installed; else a tiny CLIP as the default."""
    try:
        from diffbench.default_model import default_model_path

        if default_model_path() and Path(default_model_path()).exists():
            return {}
    except (ImportError, OSError, ValueError):
        pass
    from diffbench.tiny_models import build_tiny_clip
    from diffbench.synth.vismin import generate_pairs

    words = {w for pair in generate_pairs(n=40) for text in pair[-2:] for w in text.split()}
    return {"DIFFBENCH_SPACE_MODEL": str(build_tiny_clip(tmp_dir / "tiny-clip", words=sorted(words), seed=0))}


@pytest.fixture(scope="module")
def space_url(vismin_built, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("space")
    port = _free_port()
    env = {**os.environ, **_default_model_env(tmp), "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(tmp / "gradio")}
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
        # The server and what it started (the METEOR JVM) share a process group: end them all, by that id.
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


def _friendly(message: str, *needles: str) -> None:
    assert message.startswith("⚠"), message
    assert "Traceback" not in message and "File \"" not in message, message
    for needle in needles:
        assert needle.lower() in message.lower(), message


def _official_verdict(s) -> dict:
    text = s[0][0] > s[1][0] and s[1][1] > s[0][1]
    image = s[0][0] > s[0][1] and s[1][1] > s[1][0]
    return {"text": text, "image": image, "group": text and image}


def test_backend_doctests():
    from diffbench import space_backend

    failures, attempted = doctest.testmod(space_backend)
    assert attempted and not failures


# -- Explore --------------------------------------------------------------------------------------


def test_explore_vismin_by_category(client):
    from diffbench.building import load_built

    test = load_built("vismin", "bench", "test")
    counting = test.features["category"].int2str(test["category"]).count("counting")
    image_a, image_b, caption, position = client.predict("vismin", "counting", 3, api_name="/explore")
    assert "category **counting**" in caption and f"pair 3 of {counting}" in caption
    assert position == 3 and Path(image_a).is_file() and Path(image_b).is_file()
    # A position past the end shows the last pair instead of failing.
    *_, caption, position = client.predict("vismin", "counting", 999, api_name="/explore")
    assert position == counting and f"pair {counting} of {counting}" in caption


def test_explore_captioning_set_by_change_type(client):
    from diffbench.building import load_built

    # The filter dropdown's new choices: "all", then the set's change types (the Space built the set if need be).
    labels = client.predict("clevr_change", api_name="/explore_labels")
    built = load_built("clevr_change")
    types = sorted({t for split in built.values() for ts in split["change_types"] for t in ts})
    assert [c[0] for c in labels["choices"]] == ["all", *types] and "color" in types
    _, _, caption, _ = client.predict("clevr_change", "color", 1, api_name="/explore")
    assert "change types **" in caption and "color" in caption and "What changed" in caption
    _, _, message, _ = client.predict("omnidiff", "no-such-type", 1, api_name="/explore")
    _friendly(message, "no pairs")


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


# -- Score a submission ---------------------------------------------------------------------------


def _vismin_rows():
    from diffbench.building import load_built

    return load_built("vismin", "bench", "test")["id"]


def _write_csv(path: Path, ids, scores=(0.9, 0.1, 0.2, 0.8)) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "T0_I0", "T0_I1", "T1_I0", "T1_I1"])
        for i in ids:
            writer.writerow([i, *scores])
    return path


def test_score_vismin_submission(client, tmp_path):
    from gradio_client import handle_file

    ids = _vismin_rows()
    path = _write_csv(tmp_path / "perfect.csv", ids)
    message, table, chart, results_path, board = client.predict(
        handle_file(str(path)), False, "perfect model", api_name="/score_vismin")
    assert message.startswith("✓") and "40 samples" in message and "100.00" in message, message
    assert table.startswith("| Model |") and "| perfect model | 100.00 |" in table
    assert chart is not None
    results = json.loads(Path(results_path).read_text())
    assert results["scores"]["group_score"] == 100.0 and results["submission"] == "perfect.csv"
    assert "perfect model" in [row[0] for row in board["data"]]


def test_bad_submissions_are_messages(client, tmp_path):
    from gradio_client import handle_file

    def score(path, allow_missing=False):
        return client.predict(handle_file(str(path)), allow_missing, "", api_name="/score_vismin")

    ids = _vismin_rows()
    malformed = tmp_path / "malformed.csv"
    malformed.write_text("id;score\nobject/0;0.5;0.7\n\"unclosed,1,2\n")
    _friendly(score(malformed)[0], "malformed.csv", "not a readable CSV file")
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
    _friendly(message, "partial.csv", "10 of 40 dataset samples missing")
    assert "/tmp/" not in message  # the server's upload path is not shown
    message, table, *_ = score(missing, allow_missing=True)
    assert message.startswith("✓") and "30 samples" in message and "Scored 30 of 40 samples" in table


def test_score_difference_captions(client, tmp_path):
    from gradio_client import handle_file

    from diffbench.building import load_built

    client.predict("omnidiff", "all", 1, api_name="/explore")  # the Space builds it on first use
    test = load_built("omnidiff", None, "test")
    predictions = {row["id"]: row["captions"][0] for row in test.select_columns(["id", "captions"])}
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(predictions))
    message, table, chart, results_path, board = client.predict(
        handle_file(str(path)), "omnidiff", "test", api_name="/score_captions")
    assert message.startswith("✓") and "CIDEr" in message, message
    assert table.startswith("| subset | samples |") and "METEOR" in table and chart is not None
    results = json.loads(Path(results_path).read_text())
    assert results["num_samples"] == len(test) and results["Bleu_1"] > 0.5
    assert board["data"][-1][0] == "captions.json"

    bad = tmp_path / "bad.json"
    bad.write_text('{"oops": ')
    _friendly(client.predict(handle_file(str(bad)), "omnidiff", "test", api_name="/score_captions")[0],
              "bad.json", "not valid JSON")
    wrong_ids = tmp_path / "wrong_ids.json"
    wrong_ids.write_text(json.dumps({"nope": "a caption"}))
    _friendly(client.predict(handle_file(str(wrong_ids)), "omnidiff", "test", api_name="/score_captions")[0],
              "wrong_ids.json", "no prediction")


def test_leaderboard_published_rows_and_sorting(client):
    board, _ = client.predict("Model", api_name="/leaderboard")
    names = [row[0] for row in board["data"]]
    assert "MTurk Human" in names and "Random Chance" in names
    assert names == sorted(names)
    board, _ = client.predict("AVG", api_name="/leaderboard")
    avg = [row[board["headers"].index("AVG")] for row in board["data"]]
    assert avg[0] == max(a for a in avg if a is not None)


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
