"""The Space as a person sees it, in real Chromium at 1280x800 and 390x844 (issue 21, items 2 and 3).

One Space process for the module (the fixtures of :mod:`test_space`), one page a screen size, reused by
every test. What is looked at: no header or short cell on two lines (the distinct tops of a cell's line
boxes), every tab in view (no "⋯" menu), no "Error" badge, the chart drawn for the result shown (its
legend and its labels), the leaderboard's Model, Setting and AVG in view after the table is scrolled
sideways, a message beside an input out of range, a warning gone once a request succeeds. A failing test
saves a screenshot into its tmp dir and prints the path.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from test_space import _vismin_rows, _vismin_run, _write_csv, chromium, client, space_tmp, space_url  # noqa: F401 -- fixtures

pytestmark = pytest.mark.slow

VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
SHORT = 20  # a cell of this many characters or fewer fits one line at either size
LONG_NAME = "a submission whose name runs well past twenty-six characters"

# The cells under `selector` whose text occupies more than one line: the distinct tops of the line boxes
# of their text (a cell's height against its line height, measured where the text is), and whether the
# cell cuts its text (scrollWidth past clientWidth where overflow hides it).
LINES_JS = """(selector) => [...document.querySelectorAll(selector)].map(cell => {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    const tops = new Set();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        for (const r of range.getClientRects()) if (r.width > 1) tops.add(Math.round(r.top));
    }
    const cut = [cell, ...cell.querySelectorAll('*')].some(el => el.scrollWidth > el.clientWidth + 1
        && getComputedStyle(el).overflowX !== 'visible' && !el.classList.contains('db-scroll'));
    return {text: cell.innerText.trim(), lines: tops.size, cut};
})"""


@pytest.fixture(scope="module", params=list(VIEWPORTS))
def page(request, chromium, space_url):  # noqa: F811 -- fixtures imported above
    width, height = VIEWPORTS[request.param]
    page = chromium.new_page(viewport={"width": width, "height": height})
    page.goto(space_url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Explore").wait_for(timeout=30_000)
    yield page
    page.close()


@contextlib.contextmanager
def looking(page, tmp_path: Path, name: str):
    """Run a look at the page; on failure, a full-page screenshot in the test's tmp dir, its path printed."""
    try:
        yield
    except BaseException:
        width = page.viewport_size["width"]
        shot = tmp_path / f"{name}-{width}px.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")
        shots = os.environ.get("DIFFBENCH_SCREENSHOT_DIR")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / shot.name), full_page=True)
        raise


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _broken_cells(page, selector: str) -> list[dict]:
    """Cells (headers included) of at most :data:`SHORT` characters on more than one line, or cut."""
    cells = page.evaluate(LINES_JS, selector)
    assert cells, f"nothing matches {selector}"
    return [c for c in cells if c["text"] and (c["cut"] or (len(c["text"]) <= SHORT and c["lines"] > 1))]


def _no_error_badge(page) -> None:
    badges = page.locator(".error:visible, [data-testid='status-tracker'] :text-is('Error'):visible")
    assert badges.count() == 0, badges.all_inner_texts()


def _beside(control, message, settle_s: float = 5.0) -> None:
    """``message`` just under ``control`` (within 120 px), where the eye is after a click, once the page
    has settled: both boxes are read in one script (a scroll between two reads would shift one of them),
    again until they agree or ``settle_s`` has passed (a result still being laid out moves things)."""
    import time

    measure = "([a, b]) => [a, b].map(e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; })"
    deadline = time.monotonic() + settle_s
    while True:
        handles = [control.element_handle(), message.element_handle()]
        (top, bottom), (below, _) = control.page.evaluate(measure, handles)
        if 0 <= below - bottom < 120 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert 0 <= below - bottom < 120, f"the message starts {below - bottom:.0f} px below the control (top {top:.0f})"


#: whether the Inspect listing's METEOR column is in ascending order (worst first)
METEOR_ASCENDING = """() => {
    const table = document.querySelector("#inspect-table");
    if (!table) return false;
    const column = [...table.querySelectorAll("th")].map(h => h.innerText.trim()).indexOf("METEOR");
    if (column < 0) return false;
    const values = [...table.querySelectorAll("tbody tr")].map(r => parseFloat(r.cells[column].innerText));
    return values.length > 1 && values.every((v, i) => i === 0 || values[i - 1] <= v);
}"""


def _uploaded(page, selector: str) -> None:
    """Wait until the file component ``selector`` holds its upload (its Clear button shows): a button
    clicked before that would be given no file."""
    from playwright.sync_api import expect

    expect(page.locator(selector).get_by_role("button", name="Clear")).to_be_visible(timeout=20_000)


def _visible_text(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def test_every_tab_is_in_view(page, tmp_path):
    with looking(page, tmp_path, "tabs"):
        tabs = page.get_by_role("tab")
        names = tabs.all_inner_texts()
        assert [n.strip() for n in names] == ["Explore", "Try a model", "Score", "Leaderboard", "Inspect"], names
        width = page.viewport_size["width"]
        for k in range(tabs.count()):
            box = tabs.nth(k).bounding_box()
            assert tabs.nth(k).is_visible() and box and 0 <= box["x"] and box["x"] + box["width"] <= width, names[k]
        assert not page.get_by_role("button", name="More tabs").is_visible()


def test_explore_answers_a_number_out_of_range_beside_the_field(page, tmp_path):
    from playwright.sync_api import expect

    with looking(page, tmp_path, "explore"):
        _tab(page, "Explore")
        expect(page.locator("#explore-pair")).to_contain_text("pair 1 of", timeout=30_000)
        field = page.locator("#pair-number input")
        field.fill("0")
        field.press("Enter")
        note = page.locator("#pair-note")
        expect(note).to_contain_text("pair numbers run from 1 to", timeout=20_000)
        expect(field).to_have_value("1")
        _no_error_badge(page)
        _beside(field, note)  # just under the field, not at the foot of the page
        shown = _visible_text(page, "#explore-pair")
        assert "image 0" in shown and "(left)" not in shown
        assert not _broken_cells(page, "#explore-pair td:first-child, #explore-pair th")
        # a good number clears the note
        field.fill("2")
        field.press("Enter")
        expect(page.locator("#explore-pair")).to_contain_text("pair 2 of", timeout=20_000)
        expect(note).to_have_text("")
        # A captioning set's pair: before and after; its validation split alone, through the split filter.
        page.locator("#explore-dataset input").click()
        page.get_by_role("option", name="clevr_change", exact=True).click()
        expect(page.locator("#explore-pair")).to_contain_text("What changed from before to after", timeout=20_000)
        expect(page.get_by_text("before", exact=True).first).to_be_visible()
        page.locator("#explore-split input").click()
        page.get_by_role("option", name="validation", exact=True).click()
        expect(page.locator("#explore-pair")).to_contain_text("split validation", timeout=20_000)
        _no_error_badge(page)


@pytest.fixture(scope="module")
def long_name_on_board(client, tmp_path_factory):  # noqa: F811
    """A submission scored under a long name (every pair right), so the board holds a run of the Space."""
    from gradio_client import handle_file

    path = _write_csv(tmp_path_factory.mktemp("board") / "long.csv", _vismin_rows())
    message, *_ = client.predict(handle_file(str(path)), False, LONG_NAME, api_name="/score_vismin")
    assert message.startswith("✓"), message
    return LONG_NAME


def test_leaderboard_keeps_model_setting_and_avg_in_view(page, tmp_path, long_name_on_board):
    from playwright.sync_api import expect

    with looking(page, tmp_path, "leaderboard"):
        _tab(page, "Leaderboard")
        page.get_by_role("button", name="Refresh").click()
        table = page.locator("#vismin-table")
        expect(table.get_by_text(long_name_on_board, exact=False)).to_be_visible(timeout=30_000)
        assert not _broken_cells(page, "#vismin-table th, #vismin-table td")  # no "Objec t T", no "81.7 5"
        assert not _broken_cells(page, "#caption-table th, #caption-table td")
        names = page.locator("#vismin-table td.db-name").all_inner_texts()
        assert any(n.endswith(long_name_on_board) for n in names), names  # whole, never cut at 26 characters
        # The two Idefics2 rows of the paper, told apart by their Setting.
        rows = page.locator("#vismin-table tbody tr")
        settings = sorted(rows.nth(k).locator("td").nth(1).inner_text() for k in range(rows.count())
                          if rows.nth(k).locator("td").first.inner_text() == "Idefics2")
        assert settings == ["fine-tuned", "zero-shot"], settings
        # Scrolled all the way right: Model, Setting and AVG still in view, on top of the other cells.
        table.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
        assert table.evaluate("el => el.scrollLeft") > 0, "the table does not scroll sideways"
        width = page.viewport_size["width"]
        row = rows.filter(has_text="MTurk Human").first
        row.scroll_into_view_if_needed()
        for k, expected in enumerate(("MTurk Human", "zero-shot", "86.55")):
            cell = row.locator("td").nth(k)
            box = cell.bounding_box()
            assert box and 0 <= box["x"] and box["x"] + box["width"] <= width, (expected, box)
            on_top = page.evaluate("([x, y]) => document.elementFromPoint(x, y).closest('td')?.innerText",
                                   [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
            assert on_top == expected, (expected, on_top)
        last = row.locator("td").last.bounding_box()
        assert last["x"] + last["width"] <= width + 1  # the far right column came into view
        _no_error_badge(page)


def _chart_texts(page, selector: str, part: str = "") -> list[str]:
    """The texts of a chart's SVG (Vega), or of one part of it (``.role-legend``: its legend)."""
    return page.evaluate("(s) => [...document.querySelectorAll(s)].map(t => t.textContent.trim())",
                         f"{selector} svg {part} text")


@pytest.fixture(scope="module")
def caption_file(tmp_path_factory):
    """A caption JSON for the omnidiff test split the Space built: the first reference of each pair."""
    from diffbench.data.building import load_built

    test = load_built("omnidiff", None, "test")
    path = tmp_path_factory.mktemp("captions") / "captions.json"
    path.write_text(json.dumps({r["id"]: r["captions"][0] for r in test.select_columns(["id", "captions"])}))
    return path


def test_score_draws_each_result_s_own_chart(page, tmp_path, caption_file, client):  # noqa: F811
    from playwright.sync_api import expect

    csv_path = _write_csv(tmp_path / "scores.csv", _vismin_rows())
    with looking(page, tmp_path, "score"):
        _tab(page, "Score")
        page.locator("#vismin-file input[type=file]").set_input_files(str(csv_path))
        _uploaded(page, "#vismin-file")
        page.get_by_role("button", name="Score VisMin submission").click()
        message = page.locator("#vismin-message")
        expect(message).to_contain_text("Scored", timeout=60_000)
        _beside(page.get_by_role("button", name="Score VisMin submission"), message)
        expect(page.locator("#vismin-chart svg text").first).to_be_visible(timeout=20_000)
        texts = _chart_texts(page, "#vismin-chart")
        assert "object T" in texts and "VisMin scores (%)" in texts, texts  # its bars, its title
        assert set(_chart_texts(page, "#vismin-chart", ".role-legend")) == {"score", "text", "image", "group"}
        assert not page.locator("#caption-chart").is_visible()
        assert not _broken_cells(page, "#score-table th, #score-table td")
        # Captions next, on the same page: the caption chart, drawn from its own result.
        page.locator("#caption-file input[type=file]").set_input_files(str(caption_file))
        _uploaded(page, "#caption-file")
        page.get_by_role("button", name="Score captions").click()
        message = page.locator("#caption-message")
        expect(message).to_contain_text("omnidiff", timeout=120_000)
        _beside(page.get_by_role("button", name="Score captions"), message)
        expect(page.locator("#vismin-message")).to_have_text("")  # the VisMin result's message went with it
        expect(page.locator("#caption-chart svg text").first).to_be_visible(timeout=20_000)
        texts = _chart_texts(page, "#caption-chart")
        assert "all" in texts and "CIDEr-D (×100) by subset" in texts, texts
        assert "undefined" not in texts and not _chart_texts(page, "#caption-chart", ".role-legend"), texts  # no legend
        assert not page.locator("#vismin-chart").is_visible()
        assert not _broken_cells(page, "#score-table th, #score-table td")
        _no_error_badge(page)


def _figure_edges(page, src: str) -> dict:
    """The darkest value (0-255, grey) along each edge of a figure the page shows (a data URL or a URL)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    data = base64.b64decode(src.split(",", 1)[1]) if src.startswith("data:") else page.request.get(src).body()
    grey = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    return {"left": int(grey[:, :2].min()), "right": int(grey[:, -2:].min()), "top": int(grey[:2].min()),
            "bottom": int(grey[-2:].min())}


def test_try_a_model_clears_a_stale_warning_and_shows_the_heatmap_title(page, tmp_path):
    from playwright.sync_api import expect

    with looking(page, tmp_path, "try"):
        _tab(page, "Try a model")
        page.get_by_role("button", name="Load a VisMin sample pair").click()
        caption = page.locator("#caption-0 textarea")
        expect(caption).not_to_have_value("", timeout=20_000)
        typed = caption.input_value()
        caption.fill("")
        page.locator("#compare").click()
        verdict = page.locator("#verdict")
        expect(verdict).to_contain_text("please type both captions", timeout=30_000)
        toast = page.get_by_text("please type both captions").filter(has_not=page.locator("#verdict"))
        expect(toast.last).to_be_visible()
        caption.fill(typed)
        page.locator("#compare").click()
        expect(verdict).to_contain_text("Group:", timeout=60_000)
        expect(page.get_by_text("please type both captions")).to_have_count(0, timeout=5_000)  # toast gone too
        # The heatmap's title is not covered: the top of the figure is the figure itself.
        figure = page.locator("#heatmap img")
        expect(figure).to_be_visible(timeout=20_000)
        figure.scroll_into_view_if_needed()
        box = figure.bounding_box()
        width = page.viewport_size["width"]
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, box
        for fraction in (0.15, 0.3, 0.5, 0.7, 0.85):
            hit = page.evaluate("([x, y]) => document.elementFromPoint(x, y)?.tagName",
                                [box["x"] + fraction * box["width"], box["y"] + 0.05 * box["height"]])
            assert hit == "IMG", (fraction, hit)
        # and nothing of the figure is cut at its edges ("aption 0"): its outermost pixels are background
        edges = _figure_edges(page, figure.get_attribute("src"))
        assert min(edges.values()) > 240, edges
        _no_error_badge(page)


# -- Inspect a run ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Run A (every pair right) and run B (every other pair's similarities swapped: wrong), as folders."""
    root = tmp_path_factory.mktemp("runs")
    ids = _vismin_rows()
    a = _vismin_run(root / "a", _write_csv(root / "a.csv", ids))
    _write_csv(root / "b-right.csv", ids[1::2])
    wrong = _write_csv(root / "b-wrong.csv", ids[::2], scores=(0.1, 0.9, 0.8, 0.2))
    lines = (root / "b-right.csv").read_text().splitlines() + wrong.read_text().splitlines()[1:]
    (root / "b.csv").write_text("\n".join(lines) + "\n")
    b = _vismin_run(root / "b", root / "b.csv")
    return a, b


def _records(folder: Path) -> dict:
    return {r["id"]: r for r in map(json.loads, (folder / "samples.jsonl").read_text().splitlines())}


def test_inspect_two_runs_side_by_side(page, tmp_path, two_runs):
    from playwright.sync_api import expect

    a, b = two_runs
    a_records, b_records = _records(a), _records(b)
    expected = sorted(i for i in a_records if a_records[i]["group_correct"] and not b_records[i]["group_correct"])
    assert expected  # the fixture made some
    with looking(page, tmp_path, "inspect-pair"):
        _tab(page, "Inspect")
        page.locator("#inspect-a-files input[type=file]").set_input_files([str(a / "samples.jsonl"), str(a / "results.json")])
        page.locator("#inspect-b-files input[type=file]").set_input_files([str(b / "samples.jsonl")])
        for side in ("a", "b"):  # both uploads done before Load reads them
            _uploaded(page, f"#inspect-{side}-files")
        page.locator("#inspect-load").click()
        expect(page.locator("#inspect-message")).to_contain_text(f"{len(a_records)} samples", timeout=30_000)
        expect(page.locator("#inspect-image-a img")).to_be_visible(timeout=30_000)  # from the build, by id
        expect(page.locator("#inspect-image-b img")).to_be_visible()
        listing = page.locator("#inspect-table")
        headers = listing.locator("th").all_inner_texts()
        assert headers[:3] == ["#", "id", "category"] and "A group" in headers and "B group" in headers, headers
        rows = [dict(zip(headers, r)) for r in
                listing.locator("tbody tr").evaluate_all("rs => rs.map(r => [...r.cells].map(c => c.innerText))")]
        shown = [r["id"] for r in rows]
        assert shown == expected[:len(shown)] and len(shown) == min(20, len(expected)), shown  # A right, B wrong
        assert all(r["A group"] == "right" and r["B group"] == "wrong" for r in rows)
        detail = page.locator("#inspect-sample")
        expect(detail).to_contain_text(f"sample 1 of {len(expected)}")
        text = detail.inner_text()
        assert expected[0] in text and "similarity" in text and "caption 0" in text and "image 1" in text, text
        assert not _broken_cells(page, "#inspect-table th, #inspect-table td")
        assert not _broken_cells(page, "#inspect-sample th, #inspect-sample td:not(:first-child)")
        # A sample number out of range: the nearest sample, and a message beside the field.
        field = page.locator("#inspect-number input")
        field.fill("0")
        field.press("Enter")
        expect(page.locator("#inspect-note")).to_contain_text(f"sample numbers run from 1 to {len(expected)}",
                                                              timeout=20_000)
        expect(field).to_have_value("1")
        _no_error_badge(page)


def test_inspect_a_caption_run_scored_on_the_page(page, tmp_path, client):  # noqa: F811
    from gradio_client import handle_file
    from playwright.sync_api import expect

    from diffbench.data.building import load_built

    # each pair's first reference less 0 to 3 leading words: METEOR varies from pair to pair, so that an order
    # by it is something to check (every caption its own reference would score 100 each)
    rows = load_built("omnidiff", None, "test").select_columns(["id", "captions"])
    captions = tmp_path / "varied-captions.json"
    captions.write_text(json.dumps({r["id"]: " ".join(r["captions"][0].split()[k % 4:]) for k, r in enumerate(rows)}))
    message, *_ = client.predict(handle_file(str(captions)), "omnidiff", "test", api_name="/score_captions")
    assert message.startswith("✓"), message
    with looking(page, tmp_path, "inspect-captions"):
        _tab(page, "Score")
        _tab(page, "Inspect")  # the menu of runs scored on this page is read when the tab opens
        clear = page.locator("#inspect-b-files").get_by_role("button", name="Clear")
        if clear.count():  # B: the upload of the test before, when it ran
            clear.click()
        expect(page.locator("#inspect-b-files")).to_contain_text("Drop File Here")
        page.locator("#inspect-a-scored input").click()
        page.get_by_role("option", name="omnidiff test · varied-captions.json").first.click()
        # A: the run picked last replaces the files uploaded by the test before (when it ran), in the browser
        expect(page.locator("#inspect-a-files")).to_contain_text("Drop File Here", timeout=5_000)
        page.locator("#inspect-load").click()
        expect(page.locator("#inspect-message")).to_contain_text("omnidiff", timeout=30_000)
        page.locator("#inspect-outcome input").click()
        page.get_by_role("option", name="worst METEOR first").click()
        listing = page.locator("#inspect-table")
        expect(listing.locator("th", has_text="METEOR")).to_be_visible(timeout=20_000)
        expect(page.locator("#inspect-sample")).to_contain_text("References", timeout=20_000)
        # the listing shows METEOR in every order: wait for the new order, not for the column
        with contextlib.suppress(Exception):  # not in 20 s: the assertion below says what it holds
            page.wait_for_function(METEOR_ASCENDING, timeout=20_000)
        headers = listing.locator("th").all_inner_texts()
        meteor = [float(row[headers.index("METEOR")]) for row in
                  listing.locator("tbody tr").evaluate_all("rs => rs.map(r => [...r.cells].map(c => c.innerText))")]
        assert meteor == sorted(meteor) and len(set(meteor)) > 1, meteor  # worst first, of varied values
        expect(page.locator("#inspect-image-a img")).to_be_visible(timeout=30_000)
        detail = page.locator("#inspect-sample").inner_text()
        assert "Prediction" in detail and "References" in detail, detail
        assert not _broken_cells(page, "#inspect-table th, #inspect-table td")
        _no_error_badge(page)
