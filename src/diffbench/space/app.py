"""The demo Space in Gradio 6 Blocks: Explore, Try a model, Score, Leaderboard, Inspect.

``space/app.py`` (the Hugging Face Space) and ``diffbench space`` (local) both call :func:`build_demo`
and :func:`launch`; the work itself is in :mod:`diffbench.space.backend`,
:mod:`diffbench.space.leaderboard`, :mod:`diffbench.space.runs` (Inspect) and
:mod:`diffbench.space.tables` (the result tables as HTML), the tables of a scored submission are the
benchmarks' reports (:mod:`diffbench.vismin.report`, :mod:`diffbench.captions.report`). This is the one
module of diffbench that imports Gradio.

:func:`build_demo` makes the state the tabs share (the datasets, the models, the leaderboard, the
downloadable results) and one function a tab lays the tab out with its handlers and events:
:func:`explore_tab`, :func:`try_model_tab`, :func:`score_tab`, :func:`leaderboard_tab`, :func:`inspect_tab`.

Read on a phone as on a desktop: the tabs wrap onto a second row rather than hide behind a menu, the
tables scroll sideways (headers and numbers on one line; the leaderboard's Model, Setting and AVG stay in
view), an input out of range is answered beside it. Every handler answers a visitor's mistake with a
message (a ``gr.Warning`` toast, dismissed when the next request starts, and a Markdown line in the
tab), never a traceback; an unexpected error is logged on the server with its traceback and shown as one
line. Whatever a visitor typed or uploaded is escaped wherever it is shown (Markdown, HTML, toasts).

API names (for ``gradio_client``): ``/explore`` (dataset, label, pair number, split), ``/explore_labels``,
``/load_sample``, ``/compare``, ``/score_vismin`` (file, allow_missing, name), ``/score_captions``,
``/leaderboard`` (sort; ``{"headers", "data"}`` of each table, numbers as numbers), ``/leaderboard_notes``
(what the board says above its tables: a damaged file, rows that cannot be read), ``/inspect_load`` and
``/inspect`` (the Inspect tab).
"""

from __future__ import annotations

import html
import logging
import signal
import sys
import threading
import types

import gradio as gr
import numpy as np
from gradio_client import utils as client_utils

from diffbench.data.provenance import SYNTHETIC_NOTE
from diffbench.space import backend
from diffbench.space import runs as inspect_runs
from diffbench.space import tables
from diffbench.space.leaderboard import SORTS, Leaderboard
from diffbench.text import markdown_text
from diffbench.vismin import report as vismin_report
from diffbench.vismin import scoring as vismin_scoring
from diffbench.vismin.schema import PUBLISHED_SAMPLES

log = logging.getLogger("diffbench.space")

TITLE = "diffbench: VisMin and image-difference captioning"
INTRO = (
    "Fine-grained vision-language benchmarks on the Hugging Face stack. **Explore** the datasets, "
    "**try a model** on two images and two captions, **score a submission** (an official VisMin CSV or "
    "difference captions as JSON), and compare on the **leaderboard**."
)
MAX_UPLOAD = "100mb"  # the server refuses bigger uploads outright; handlers refuse smaller bad ones politely
CONCURRENCY = 4  # scoring requests run at once (the rest queue)
# Tables scroll sideways and never break a header or a number (tables.CSS: the leaderboard's HTML tables; the
# rules below: the reports' Markdown tables of a scored run); a Markdown table of captions (Explore) wraps its
# text, but not its first column.
CSS = tables.CSS + """
#score-table table { display: block; overflow-x: auto; max-width: 100%; }
#score-table th, #score-table td { white-space: nowrap; }
#explore-pair td:first-child, #explore-pair th:first-child { white-space: nowrap; }
#inspect-sample th, #inspect-sample td:not(:first-child) { white-space: nowrap; }
.db-message:empty { display: none; }
"""
# Before each request a tab's earlier warning toasts are dismissed: a warning stays only beside the request
# that earned it (the tab's own message line says it again, next to the input).
CLEAR_TOASTS = "() => { document.querySelectorAll('[data-testid=\"toast-close\"]').forEach(b => b.click()); }"
LEADERBOARD_INTRO = (
    f"The published VisMin results (project page; the full benchmark, {PUBLISHED_SAMPLES:,} samples) and "
    "every submission scored here, kept across restarts. Runs on real benchmark data are ranked with the "
    "published rows; runs on the synthetic sample (or data of unknown source) are listed after them and "
    f"never ranked: *{SYNTHETIC_NOTE}*. A file scored twice counts once. T / I / G: text, image and group "
    "score (%); AVG: the mean of the 12 cells, as published."
)
PINNED = 3  # the leaderboard's Model, Setting and AVG stay in view while the table scrolls sideways


def _path_unopened(image: gr.Image, payload):
    """``preprocess`` of :func:`uploaded_image`: the uploaded file's path, not opened; a pasted (data
    URL) image decoded to bytes in memory, never through Gradio's shared cache file."""
    if payload is None:
        return None
    url = payload.url or ""
    if url.startswith("data:"):
        try:
            data, _ = client_utils.decode_base64_to_binary(url)
        except Exception:  # noqa: BLE001 -- whatever is wrong with the data URL, the visitor gets one line
            raise gr.Error("the pasted image could not be read; upload a PNG, JPEG or WebP file") from None
        return backend.Upload(payload.orig_name or "pasted image", data)
    if payload.path is None:
        raise gr.Error("the image could not be read; upload a PNG, JPEG or WebP file")
    return str(payload.path)


def uploaded_image(**kwargs) -> gr.Image:
    """A ``gr.Image`` that hands the handler the uploaded file's path (or a pasted image's bytes)
    without opening it: the handler checks size and decodability itself and answers a bad upload with
    a message, where a plain ``gr.Image`` would fail before the handler runs. (An instance override
    rather than a subclass: Gradio writes a ``.pyi`` stub beside the module of every Component subclass.)"""
    image = gr.Image(type="filepath", **kwargs)
    image.preprocess = types.MethodType(_path_unopened, image)
    return image


def _problem(err: Exception) -> str:
    """A message for the UI: a UserError as it is; anything else logged, shown as one line."""
    if isinstance(err, backend.UserError):
        message = " ".join(str(err).split())
    else:
        log.exception("unexpected error in a Space handler")
        message = f"Something went wrong on our side ({type(err).__name__}); the app is still running, please try again."
    gr.Warning(html.escape(message))  # toasts render HTML; the message may quote the visitor's text
    return f"⚠ {markdown_text(message)}"


def _heatmap(similarities):
    """The 2×2 similarities as a figure (matplotlib: imported at the first Compare, not at every start)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4, 3.6), dpi=100, layout="constrained")  # tight_layout cut "caption 0" beside a colorbar
    ax = fig.add_subplot()
    image = ax.imshow(similarities, cmap="viridis")
    ax.set_xticks([0, 1], ["image 0", "image 1"])
    ax.set_yticks([0, 1], ["caption 0", "caption 1"], rotation=90, va="center")  # narrow: whole beside the colorbar
    for (t, i), value in np.ndenumerate(similarities):
        ax.text(i, t, f"{value:.3f}", ha="center", va="center", color="white" if value < similarities.mean() else "black")
    ax.set_title("cosine similarity (caption × image)", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def build_demo(store: backend.DataStore | None = None, models: backend.ModelCache | None = None,
               leaderboard: Leaderboard | None = None, warm: bool = True,
               result_files: backend.ResultFiles | None = None) -> gr.Blocks:
    """The Space: the state its tabs share (made here unless given), then one function a tab.
    ``warm`` loads (or builds) the datasets and the metric in the background right away."""
    store = store if store is not None else backend.DataStore()
    models = models if models is not None else backend.ModelCache()
    leaderboard = leaderboard if leaderboard is not None else Leaderboard()
    result_files = result_files if result_files is not None else backend.ResultFiles()
    if warm:
        threading.Thread(target=_warm, args=(store,), name="diffbench-space-warm", daemon=True).start()
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:  # Gradio's copies of files: an hour
        gr.Markdown(f"# {TITLE}\n\n{INTRO}")
        board = BoardView(leaderboard)
        with gr.Tabs(overflow_behavior="wrap"):  # every tab in view on a phone: a second row, no "⋯" menu
            explore_tab(demo, store)
            try_model_tab(store, models)
            score_tab(store, board, result_files)
            leaderboard_tab(demo, board)
            inspect_tab(result_files, inspect_runs.LoadedRuns())
    return demo


# -- Explore ----------------------------------------------------------------------------------------


def explore_tab(demo: gr.Blocks, store: backend.DataStore) -> None:
    """The pairs of a dataset one at a time, filtered by split and by VisMin category or change type; a
    pair number out of range shows the nearest pair and says so beside the field."""

    def explore(name, label, position, split):
        try:
            item = store.explore_item(name, label, position, split)
        except Exception as err:  # noqa: BLE001
            return None, None, _problem(err), 1, ""
        note = f"⚠ {item.note}" if item.note else ""
        return item.image_a, item.image_b, item.caption_md + f"\n\n*pair {item.position} of {item.count}*", item.position, note

    def image_labels(name):
        """What the two images are: VisMin's image 0 and 1, a captioning pair's before and after."""
        labels = ("image 0", "image 1") if name == backend.VISMIN else ("before", "after")
        return gr.Image(label=labels[0]), gr.Image(label=labels[1])

    def explore_filters(name):
        try:
            labels, splits = store.labels(name), store.splits(name)
        except Exception as err:  # noqa: BLE001
            _problem(err)
            labels, splits = [backend.ALL_LABELS], []
        title = "category" if name == backend.VISMIN else "change type"
        has_labels = len(labels) > 1
        return (gr.Dropdown(choices=labels, value=backend.ALL_LABELS, label=f"Filter by {title}", interactive=has_labels,
                            info=None if has_labels else f"this set has no {title}s"),
                gr.Dropdown(choices=[backend.ALL_LABELS, *splits], value=backend.ALL_LABELS))

    def step(name, label, position, split, delta):
        try:
            count = len(store.rows(name, label, split)) or 1
        except Exception:  # noqa: BLE001 -- the explore call that follows says what is wrong
            return 1
        current, _ = backend.clamp_position(position, count)
        return (current - 1 + delta) % count + 1

    with gr.Tab("Explore", id="explore"):
        with gr.Row():
            ex_name = gr.Dropdown(list(backend.EXPLORE_SETS), value=backend.VISMIN, label="Dataset", min_width=140,
                                  elem_id="explore-dataset")
            ex_split = gr.Dropdown([backend.ALL_LABELS], value=backend.ALL_LABELS, label="Split", min_width=120,
                                   elem_id="explore-split",
                                   allow_custom_value=True)  # choices follow the dataset
            ex_label = gr.Dropdown([backend.ALL_LABELS], value=backend.ALL_LABELS, label="Filter by category",
                                   allow_custom_value=True, min_width=140)
        with gr.Row(equal_height=True):
            ex_pos = gr.Number(value=1, precision=0, label="Pair number", elem_id="pair-number", min_width=120)
            with gr.Column(min_width=160):
                ex_prev = gr.Button("◀ Previous", size="sm")
                ex_next = gr.Button("Next ▶", size="sm")
        ex_note = gr.Markdown(elem_id="pair-note", elem_classes="db-message")  # beside the field it is about
        with gr.Row():
            ex_a = gr.Image(label="image 0", interactive=False, type="pil", format="png", height=320)
            ex_b = gr.Image(label="image 1", interactive=False, type="pil", format="png", height=320)
        ex_md = gr.Markdown(elem_id="explore-pair")

    chosen, shown = [ex_name, ex_label, ex_pos, ex_split], [ex_a, ex_b, ex_md, ex_pos, ex_note]
    private = {"api_visibility": "private"}
    # Named endpoints first: a later event with the same function would otherwise take the name.
    ex_pos.submit(explore, chosen, shown, api_name="explore")
    ex_name.change(image_labels, ex_name, [ex_a, ex_b], **private)
    ex_name.change(explore_filters, ex_name, [ex_label, ex_split], api_name="explore_labels").then(
        lambda: 1, None, ex_pos, **private).then(explore, chosen, shown, **private)
    for dropdown in (ex_label, ex_split):
        dropdown.input(lambda: 1, None, ex_pos, **private).then(explore, chosen, shown, **private)
    for button, delta in ((ex_prev, -1), (ex_next, 1)):
        button.click(lambda n, l, p, s, d=delta: step(n, l, p, s, d), chosen, ex_pos, **private).then(
            explore, chosen, shown, **private)
    demo.load(explore_filters, ex_name, [ex_label, ex_split], **private).then(explore, chosen, shown, **private)


# -- Try a model ------------------------------------------------------------------------------------


def try_model_tab(store: backend.DataStore, models: backend.ModelCache) -> None:
    """Two images, two captions, one model: the 2×2 similarities and VisMin's verdict on them."""

    def load_sample(position):
        try:
            bench = store.vismin_bench()
            index = int(position or 0) % len(bench)
            row = bench[index]
            return row["image_0"], row["image_1"], row["text_0"], row["text_1"], (index + 1) % len(bench)
        except Exception as err:  # noqa: BLE001
            _problem(err)
            return None, None, "", "", position

    def compare(image_0, image_1, text_0, text_1, model_choice):
        try:
            texts = backend.check_captions([text_0, text_1])
            images = [backend.open_image(image_0), backend.open_image(image_1)]
            model, processor = models.get(model_choice)
            sims = backend.similarity_matrix(model, processor, images, texts)
            result = backend.verdict(sims)
        except Exception as err:  # noqa: BLE001
            return _problem(err), None, {}
        details = {"model": model_choice, "similarities": sims.round(6).tolist(), **result}
        return backend.verdict_markdown(result), _heatmap(sims), details

    with gr.Tab("Try a model", id="try"):
        gr.Markdown("Upload (or load) two images and type one caption for each. The model scores all four "
                    "caption–image pairs; VisMin counts the sample right when each caption prefers its own "
                    "image (**text**), each image prefers its own caption (**image**), and both (**group**).")
        with gr.Row():
            with gr.Column():
                image_0 = uploaded_image(label="Image 0", format="png", elem_id="image-0", height=280)
                text_0 = gr.Textbox(label="Caption 0 (describes image 0)", elem_id="caption-0")
            with gr.Column():
                image_1 = uploaded_image(label="Image 1", format="png", elem_id="image-1", height=280)
                text_1 = gr.Textbox(label="Caption 1 (describes image 1)", elem_id="caption-1")
        with gr.Row():
            model_choice = gr.Dropdown(list(backend.MODEL_CHOICES), value=backend.DEFAULT_MODEL, label="Model",
                                       info="Hub models need the network; the default works offline.")
            sample_button = gr.Button("Load a VisMin sample pair")
            compare_button = gr.Button("Compare", variant="primary", elem_id="compare")
        sample_pos = gr.State(0)
        verdict_md = gr.Markdown(elem_id="verdict")
        with gr.Row():
            heatmap = gr.Plot(label="Similarity heatmap", show_label=False, elem_id="heatmap")  # the figure has its title
            details = gr.JSON(label="Details")

    sample_button.click(load_sample, sample_pos, [image_0, image_1, text_0, text_1, sample_pos],
                        api_name="load_sample")
    compare_button.click(compare, [image_0, image_1, text_0, text_1, model_choice], [verdict_md, heatmap, details],
                         api_name="compare", concurrency_limit=2)
    compare_button.click(None, js=CLEAR_TOASTS)


# -- Score a submission -----------------------------------------------------------------------------


def score_tab(store: backend.DataStore, board: BoardView, result_files: backend.ResultFiles) -> None:
    """An official VisMin CSV or a difference-caption JSON scored as the CLI scores it: the report's table,
    a chart, results.json to download; the run goes on the leaderboard.

    Each kind of result has its own chart, drawn afresh from its result and hidden while the other kind is
    shown: one chart updated from a VisMin result to a caption result kept the first one's colour field
    and legend (a red "undefined" bar)."""
    # Each handler writes results.json before it adds the run to the board: a run the visitor was told
    # failed is not on the board.
    def score_vismin(file, allow_missing, model_name):
        hidden = gr.BarPlot(visible=False)
        try:
            scored = backend.score_vismin_run(file, store.vismin_bench(), allow_missing=bool(allow_missing))
            results = scored.results
            path = result_files.write(results, scored.samples)
            entry = board.leaderboard.add_vismin(results, name=model_name)
            table = vismin_report.format_table(results, model=entry.name, compare=())
            shown = (_vismin_message(results, entry), table, _vismin_chart(results), hidden, str(path))
        except Exception as err:  # noqa: BLE001
            return _problem(err), "", hidden, hidden, None, board.vismin()
        return *shown, board.vismin()

    def score_captions(file, dataset_name, split):
        hidden = gr.BarPlot(visible=False)
        try:
            scored = backend.score_caption_run(file, dataset_name, store, split=split or "test")
            results = scored.results
            path = result_files.write(results, scored.samples)
            entry = board.leaderboard.add_captions(results)
            shown = (_caption_message(results, entry), backend.caption_table(results), hidden,
                     _caption_chart(results), str(path))
        except Exception as err:  # noqa: BLE001
            return _problem(err), "", hidden, hidden, None, board.captions()
        return *shown, board.captions()

    def caption_splits(dataset_name):
        try:
            splits = list(store.dataset(dataset_name))
        except Exception as err:  # noqa: BLE001
            _problem(err)
            splits = ["test"]
        return gr.Dropdown(choices=splits, value="test" if "test" in splits else splits[0])

    with gr.Tab("Score", id="score"):
        with gr.Row():
            with gr.Column():
                vismin_inputs, vismin_button = _vismin_upload()
                vismin_message = gr.Markdown(elem_id="vismin-message", elem_classes="db-message")  # beside its input
            with gr.Column():
                caption_inputs, caption_button = _caption_upload()
                caption_message = gr.Markdown(elem_id="caption-message", elem_classes="db-message")
        score_table = gr.Markdown(elem_id="score-table")
        vismin_chart = gr.BarPlot(label="Scores", x="bar", y="value", visible=False, elem_id="vismin-chart")
        caption_chart = gr.BarPlot(label="Scores", x="subset", y="value", visible=False, elem_id="caption-chart")
        results_file = gr.File(label="results.json")

    shown = [score_table, vismin_chart, caption_chart, results_file]
    vismin_button.click(score_vismin, vismin_inputs, [vismin_message, *shown, board.vismin_table],
                        api_name="score_vismin", concurrency_limit=CONCURRENCY, concurrency_id="score")
    caption_set, caption_split = caption_inputs[1:]
    caption_set.change(caption_splits, caption_set, caption_split, api_visibility="private")
    caption_button.click(score_captions, caption_inputs, [caption_message, *shown, board.caption_table],
                         api_name="score_captions", concurrency_limit=1, concurrency_id="captions")
    for button, other in ((vismin_button, caption_message), (caption_button, vismin_message)):
        button.click(None, js=CLEAR_TOASTS)
        # one message, the latest result's: the other one cleared in the browser, as Inspect clears a side's input
        button.click(None, None, other, js="() => ''", api_visibility="private")


def _vismin_upload() -> tuple[list, gr.Button]:
    """The VisMin column of the Score tab: its inputs (file, allow missing, name) and its button."""
    gr.Markdown("**VisMin**: the official CSV, `id,T0_I0,T0_I1,T1_I0,T1_I1` (a contrastive "
                "model's similarities) or `id,Text_Q0,Text_Q1,Image_Q0,Image_Q1` (a chat model's "
                "answers); ids as `<category>/<id>` or upstream integers.")
    vismin_file = gr.File(label="VisMin submission (.csv)", type="filepath", elem_id="vismin-file")
    vismin_name = gr.Textbox(label="Name on the leaderboard (optional)")
    allow_missing = gr.Checkbox(label="Score even if some samples are missing")
    button = gr.Button("Score VisMin submission", variant="primary")
    return [vismin_file, allow_missing, vismin_name], button


def _caption_upload() -> tuple[list, gr.Button]:
    """The captions column of the Score tab: its inputs (file, dataset, split) and its button. It has no
    "score even if some pairs are missing": see :func:`diffbench.space.backend.score_caption_run`."""
    gr.Markdown("**Difference captions**: JSON `{\"<id>\": \"caption\"}` or "
                "`[{\"id\": ..., \"caption\": ...}]`, scored with BLEU, METEOR, ROUGE-L and CIDEr "
                "(pycocoevalcap's numbers), overall and per change type.")
    caption_file = gr.File(label="Difference captions (.json)", type="filepath", elem_id="caption-file")
    with gr.Row():
        caption_set = gr.Dropdown(list(backend.CAPTION_SETS), value=backend.CAPTION_SETS[0], label="Dataset")
        caption_split = gr.Dropdown(["test"], value="test", label="Split", allow_custom_value=True)
    button = gr.Button("Score captions", variant="primary")
    return [caption_file, caption_set, caption_split], button


def _board_note(entry) -> str:
    """What the message adds when the file was already on the leaderboard ("" when it was just added)."""
    if entry.added:
        return ""
    return (f" This file was already scored: it stands on the leaderboard as "
            f"**{markdown_text(entry.name)}** (scored {entry.scored_at}), counted once.")


def _vismin_message(results: dict, entry) -> str:
    scores, (low, high) = results["scores"], results["ci95"]["group"]
    return (f"✓ Scored **{markdown_text(results['submission'])}**: {results['samples']:,} samples "
            f"({results['kind']}), group score **{scores['group']:.2f}** (95% interval {low:.2f} to {high:.2f})."
            + _board_note(entry) + backend.synthetic_note(results))


def _caption_message(results: dict, entry) -> str:
    return (f"✓ Scored **{markdown_text(results['submission'])}** on {results['benchmark']} "
            f"({markdown_text(results['split'])}): {results['samples']:,} samples, "
            f"CIDEr **{backend.caption_value(results['scores'].get('CIDEr', 0))}** "
            f"(95% interval {_interval(results['ci95'].get('CIDEr'))}; metrics ×100, as papers print them)."
            + _board_note(entry) + backend.synthetic_note(results))


def _interval(bounds) -> str:
    return "–" if not bounds else f"{backend.caption_value(bounds[0])} to {backend.caption_value(bounds[1])}"


def _vismin_chart(results: dict) -> gr.BarPlot:
    frame = backend.vismin_chart_frame(results)
    return gr.BarPlot(frame, x="bar", y="value", color="score", sort=list(frame["bar"]), y_lim=[0, 100], visible=True,
                      title="VisMin scores (%)", caption=backend.chart_caption(results), x_title="category and score",
                      y_title="%", x_label_angle=-40)


def _caption_chart(results: dict) -> gr.BarPlot:
    frame = backend.caption_chart_frame(results)
    return gr.BarPlot(frame, x="subset", y="value", sort=list(frame["subset"]), visible=True,
                      title="CIDEr-D (×100) by subset", caption=backend.chart_caption(results),
                      x_title="subset", y_title="CIDEr ×100", x_label_angle=-40)


# -- Leaderboard ------------------------------------------------------------------------------------


class BoardView:
    """The leaderboard as the page shows it: its two tables (HTML: :mod:`diffbench.space.tables`) and the
    notes above them.

    The tables are made here unrendered (``render=False``): the Score tab, before the Leaderboard tab
    on the page, updates them when it adds a run; :func:`leaderboard_tab` places them.
    """

    def __init__(self, leaderboard: Leaderboard):
        self.leaderboard = leaderboard
        self.vismin_table = gr.HTML(self.vismin(), elem_id="vismin-board", apply_default_css=False, render=False)
        self.caption_table = gr.HTML(self.captions(), elem_id="caption-board", apply_default_css=False, render=False)

    def vismin(self, sort_by: str = "AVG") -> str:
        return tables.html_table(self.leaderboard.vismin_table(sort_by), pinned=PINNED, table_id="vismin-table")

    def captions(self) -> str:
        return tables.html_table(self.leaderboard.caption_table(), pinned=1, table_id="caption-table")

    def data(self, sort_by: str = "AVG") -> tuple[dict, dict]:
        """Both tables for the API (``/leaderboard``): headers and rows, numbers as numbers."""
        return (tables.table_data(self.leaderboard.vismin_table(sort_by)),
                tables.table_data(self.leaderboard.caption_table()))

    def notes(self) -> str:
        """What the board says above its tables (a damaged file kept aside, rows it cannot read), one
        warning a line; empty when all is well."""
        return "\n\n".join(f"⚠ {markdown_text(note)}" for note in self.leaderboard.notes())


def leaderboard_tab(demo: gr.Blocks, board: BoardView) -> None:
    """The published VisMin rows and every run scored here, sortable, with the board's notes above."""

    def show_leaderboard(sort_by):
        return board.vismin(sort_by), board.captions()

    def show_board_and_notes(sort_by):
        return *show_leaderboard(sort_by), board.notes()

    def leaderboard(sort_by: str = "AVG") -> tuple[dict, dict]:
        """The VisMin table sorted by ``sort_by`` and the caption table: ``{"headers", "data"}`` each."""
        return board.data(sort_by)

    with gr.Tab("Leaderboard", id="leaderboard"):
        gr.Markdown(LEADERBOARD_INTRO)
        sort_by = gr.Dropdown(list(SORTS), value="AVG", label="Sort by")
        notes = gr.Markdown(board.notes(), elem_id="board-notes")  # above the tables: seen first
        gr.Markdown("### VisMin")
        board.vismin_table.render()
        gr.Markdown("### Difference captioning runs (metrics ×100)")
        board.caption_table.render()
        refresh = gr.Button("Refresh", size="sm")
        tables_shown = [board.vismin_table, board.caption_table]
        sort_by.change(show_leaderboard, sort_by, tables_shown, api_visibility="private")
        gr.api(leaderboard, api_name="leaderboard")  # blocks: in the tab (gr.Tabs holds only tabs)
        gr.api(board.notes, api_name="leaderboard_notes")

    refresh.click(show_board_and_notes, sort_by, [*tables_shown, notes], api_visibility="private")
    demo.load(show_board_and_notes, sort_by, [*tables_shown, notes], api_visibility="private")


# -- Inspect a run ----------------------------------------------------------------------------------

INSPECT_INTRO = (
    "Open a run and read its samples: upload the **samples.jsonl** that `diffbench score` or `diffbench eval` "
    "wrote (with its **results.json**, which says what data it was scored on), or pick a run scored on this "
    "page. Filter by category or change type and by outcome, then step through the samples with their images. "
    "Give a second run (B) to put the two side by side, e.g. where A is right and B wrong. (The leaderboard "
    "keeps scores, not samples.)"
)
FROM_RESULTS = "named by results.json"


def _run_source(label: str, side: str):
    """One run's inputs: a run scored on this page, or uploaded files."""
    gr.Markdown(label)
    scored = gr.Dropdown([], value=None, label="A run scored on this page", elem_id=f"inspect-{side}-scored")
    uploaded = gr.File(label="or upload samples.jsonl (and its results.json)", file_count="multiple",
                       type="filepath", elem_id=f"inspect-{side}-files", height=120)
    return scored, uploaded


def _open_run(loaded, result_files, choice, uploaded, dataset):
    """The run the visitor gave (uploaded files first), or None when nothing was given."""
    if uploaded:
        benchmark = None if dataset in (None, "", FROM_RESULTS) else dataset
        return inspect_runs.load_upload(uploaded, loaded.folder(), benchmark)
    if choice:
        folder = inspect_runs.scored_runs(result_files.runs).get(choice)
        if folder is None:
            raise inspect_runs.UserError(f"{str(choice)[:80]!r} is no longer here; score it again or upload it")
        return inspect_runs.load_scored(folder, choice)
    return None


def inspect_tab(result_files: backend.ResultFiles, loaded: inspect_runs.LoadedRuns) -> None:
    """A run's samples (and another run's beside them): filtered, listed, one at a time with its images."""

    def scored_menus():
        choices = list(inspect_runs.scored_runs(result_files.runs))
        return gr.Dropdown(choices=choices, value=None), gr.Dropdown(choices=choices, value=None)

    def load(a_choice, a_files, b_choice, b_files, dataset):
        try:
            a = _open_run(loaded, result_files, a_choice, a_files, dataset)
            if a is None:
                raise inspect_runs.UserError("give run A: upload its samples.jsonl or pick a run scored on this page")
            b = _open_run(loaded, result_files, b_choice, b_files, dataset)
            if b is not None:
                inspect_runs.selected(a, b, inspect_runs.ALL, inspect_runs.outcomes(a.view.kind, True)[0])  # same data?
            keys = (loaded.add(a), loaded.add(b) if b is not None else "")
        except Exception as err:  # noqa: BLE001
            return ("", ""), _problem(err), gr.Dropdown(), gr.Dropdown(), gr.Image(), gr.Image()
        kind = a.view.kind
        title = "category" if kind == "vismin" else "change type"
        outcomes = inspect_runs.outcomes(kind, b is not None)
        labels = ("image 0", "image 1") if kind == "vismin" else ("before", "after")
        said = f"✓ **A**: {markdown_text(a.name)}, {len(a.records):,} samples ({markdown_text(str(a.benchmark))})"
        if b is not None:
            said += f" · **B**: {markdown_text(b.name)}, {len(b.records):,} samples"
        return (keys, said, gr.Dropdown(choices=inspect_runs.groups(a), value=inspect_runs.ALL, label=f"Filter by {title}"),
                gr.Dropdown(choices=outcomes, value=outcomes[0]), gr.Image(label=labels[0]), gr.Image(label=labels[1]))

    def show(keys, group, outcome, number):
        a, b = (loaded.get(k) for k in keys or ("", ""))
        if a is None:
            return "", 1, "", None, None, ""
        try:
            found = inspect_runs.selected(a, b, group, outcome)
            if not found:
                return inspect_runs.listing_html(found, a.view.kind, b is not None), 1, "⚠ no samples match", None, None, ""
            position, note = backend.clamp_position(number, len(found))
            row = found[position - 1]
            first, second, why = inspect_runs.images(a, row["id"])
            text = inspect_runs.sample_markdown(a, b, row) + (f"\n\n*{markdown_text(why)}*" if why else "")
        except Exception as err:  # noqa: BLE001
            return "", 1, _problem(err), None, None, ""
        listing = inspect_runs.listing_html(found, a.view.kind, b is not None)
        note = f"⚠ {note.replace('pair', 'sample')}" if note else ""
        return listing, position, note, first, second, f"*sample {position} of {len(found):,}*\n\n{text}"

    def step(number, delta):
        current = backend.clamp_position(number, 10**9)[0]
        return max(current + delta, 1)

    with gr.Tab("Inspect", id="inspect") as tab:
        gr.Markdown(INSPECT_INTRO)
        with gr.Row():
            with gr.Column():
                a_scored, a_files = _run_source("**Run A**", "a")
            with gr.Column():
                b_scored, b_files = _run_source("**Run B** (optional: beside A)", "b")
        with gr.Row(equal_height=True):
            dataset = gr.Dropdown([FROM_RESULTS, *backend.EXPLORE_SETS], value=FROM_RESULTS,
                                  label="Data of a samples.jsonl uploaded alone")
            load_button = gr.Button("Load", variant="primary", elem_id="inspect-load")
        message = gr.Markdown(elem_id="inspect-message", elem_classes="db-message")
        with gr.Row():
            group = gr.Dropdown([inspect_runs.ALL], value=inspect_runs.ALL, label="Filter by category", min_width=160)
            outcome = gr.Dropdown([], label="Outcome", min_width=280, elem_id="inspect-outcome")  # whole, on a phone too
        listing = gr.HTML(elem_id="inspect-listing", apply_default_css=False)
        with gr.Row(equal_height=True):
            number = gr.Number(value=1, precision=0, label="Sample number (in the list)", elem_id="inspect-number",
                               min_width=120)
            with gr.Column(min_width=160):
                previous = gr.Button("◀ Previous", size="sm")
                following = gr.Button("Next ▶", size="sm")
        note = gr.Markdown(elem_id="inspect-note", elem_classes="db-message")
        with gr.Row():
            image_a = gr.Image(label="image 0", interactive=False, type="pil", format="png", height=280,
                               elem_id="inspect-image-a")
            image_b = gr.Image(label="image 1", interactive=False, type="pil", format="png", height=280,
                               elem_id="inspect-image-b")
        sample = gr.Markdown(elem_id="inspect-sample")
        keys = gr.State(("", ""))

    private = {"api_visibility": "private"}
    shown = [listing, number, note, image_a, image_b, sample]
    tab.select(scored_menus, None, [a_scored, b_scored], **private)
    # A side's run is the one given last. The other input is cleared in the browser, at once: a round trip to
    # the server could still be under way when Load is clicked, and Load would then read both.
    for scored, uploaded in ((a_scored, a_files), (b_scored, b_files)):
        scored.input(None, None, uploaded, js="() => null", **private)
        uploaded.upload(None, None, scored, js="() => null", **private)
    load_button.click(load, [a_scored, a_files, b_scored, b_files, dataset],
                      [keys, message, group, outcome, image_a, image_b], api_name="inspect_load").then(
        lambda: 1, None, number, **private).then(show, [keys, group, outcome, number], shown, **private)
    load_button.click(None, js=CLEAR_TOASTS)
    number.submit(show, [keys, group, outcome, number], shown, api_name="inspect")
    for menu in (group, outcome):
        menu.input(lambda: 1, None, number, **private).then(show, [keys, group, outcome, number], shown, **private)
    for button, delta in ((previous, -1), (following, 1)):
        button.click(lambda n, d=delta: step(n, d), number, number, **private).then(
            show, [keys, group, outcome, number], shown, **private)


def _warm(store: backend.DataStore) -> None:
    """Build/load the datasets and import the VisMin metric before the first visitor needs them."""
    try:
        backend.caption_worker().start()  # the scoring process imports the scorers meanwhile
        store.warm()
        vismin_scoring.metric_module()
        log.info("datasets ready%s", f" (built the sample of {', '.join(store.built_here)})" if store.built_here else "")
    except Exception:  # noqa: BLE001 -- a failed warm-up is retried, and reported, on first use
        log.exception("warming up the Space failed")


def _exit_on_sigterm() -> None:
    """SIGTERM (how a Space, a container or ``kill`` stops the server) as a normal exit, so that the
    result folders and Gradio's cache are removed (``atexit``) as on Ctrl-C."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


def launch(demo: gr.Blocks, port: int | None = None, share: bool = False, server_name: str | None = None, **kwargs):
    """Launch with the Space's settings (queue, upload limit, CSS); ``port`` None lets Gradio choose."""
    _exit_on_sigterm()
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=256)
    return demo.launch(server_port=port, share=share, server_name=server_name, max_file_size=MAX_UPLOAD,
                       show_error=False, css=CSS, **kwargs)
