"""The demo Space in Gradio 6 Blocks: Explore, Try a model, Score a submission, Leaderboard.

``space/app.py`` (the Hugging Face Space) and ``diffbench space`` (local) both call :func:`build_demo`
and :func:`launch`; the work itself is in :mod:`diffbench.space.backend` and
:mod:`diffbench.space.leaderboard`, the tables of a scored submission are the benchmarks' reports
(:mod:`diffbench.vismin.report`, :mod:`diffbench.captions.report`). This is the one module of
diffbench that imports Gradio.

:func:`build_demo` makes the state the tabs share (the datasets, the models, the leaderboard, the
downloadable results) and one function a tab lays the tab out with its handlers and events:
:func:`explore_tab`, :func:`try_model_tab`, :func:`score_tab`, :func:`leaderboard_tab`.

Every handler answers a visitor's mistake with a message (a ``gr.Warning`` toast and a Markdown line
in the tab), never a traceback; an unexpected error is logged on the server with its traceback and
shown as one line. Whatever a visitor typed or uploaded is escaped wherever it is shown (Markdown,
HTML toasts). API names (for ``gradio_client``): ``/explore``, ``/explore_labels``, ``/load_sample``,
``/compare``, ``/score_vismin`` (file, allow_missing, name), ``/score_captions``, ``/leaderboard`` (sort),
``/leaderboard_notes`` (what the board says above its tables: a damaged file, rows that cannot be read).
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
from diffbench.space.leaderboard import CAPTION_COLUMNS, SORTS, VISMIN_COLUMNS, Leaderboard
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
# Leaderboard headers stay whole (no "Objec t I", no "Attri..."): wide enough columns, no wrapping; the
# first two columns (Model, AVG) are pinned, so AVG stays in view while the table scrolls sideways.
CSS = """
#vismin-board th, #vismin-board th *, #caption-board th, #caption-board th * {
  white-space: nowrap !important; word-break: keep-all !important; overflow-wrap: normal !important; }
"""
LEADERBOARD_INTRO = (
    f"The published VisMin results (project page; the full benchmark, {PUBLISHED_SAMPLES:,} samples) and "
    "every submission scored here, kept across restarts. Runs on real benchmark data are ranked with the "
    "published rows; runs on the synthetic sample (or data of unknown source) are listed after them and "
    f"never ranked: *{SYNTHETIC_NOTE}*. A file scored twice counts once. T / I / G: text, image and group "
    "score (%); AVG: the mean of the 12 cells, as published."
)
VISMIN_WIDTHS = ["260px", "72px", "72px", *["112px"] * 12, "210px", "100px", "150px", "440px"]


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

    fig = Figure(figsize=(4.4, 3.4), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(similarities, cmap="viridis")
    ax.set_xticks([0, 1], ["image 0", "image 1"])
    ax.set_yticks([0, 1], ["caption 0", "caption 1"])
    for (t, i), value in np.ndenumerate(similarities):
        ax.text(i, t, f"{value:.3f}", ha="center", va="center", color="white" if value < similarities.mean() else "black")
    ax.set_title("cosine similarity (caption × image)", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
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
        with gr.Tabs():
            explore_tab(demo, store)
            try_model_tab(store, models)
            score_tab(store, board, result_files)
            leaderboard_tab(demo, board)
    return demo


# -- Explore ----------------------------------------------------------------------------------------


def explore_tab(demo: gr.Blocks, store: backend.DataStore) -> None:
    """The pairs of a dataset one at a time, filtered by VisMin category or change type."""

    def explore(name, label, position):
        try:
            item = store.explore_item(name, label, position)
        except Exception as err:  # noqa: BLE001
            return None, None, _problem(err), 1
        return item.image_a, item.image_b, item.caption_md + f"\n\n*pair {item.position} of {item.count}*", item.position

    def explore_labels(name):
        try:
            labels = store.labels(name)
        except Exception as err:  # noqa: BLE001
            _problem(err)
            labels = [backend.ALL_LABELS]
        title = "category" if name == backend.VISMIN else "change type"
        return gr.Dropdown(choices=labels, value=backend.ALL_LABELS, label=f"Filter by {title}")

    def step(name, label, position, delta):
        count = len(store.rows(name, label)) or 1
        return (int(position or 1) - 1 + delta) % count + 1

    with gr.Tab("Explore", id="explore"):
        with gr.Row():
            ex_name = gr.Dropdown(list(backend.EXPLORE_SETS), value=backend.VISMIN, label="Dataset")
            ex_label = gr.Dropdown([backend.ALL_LABELS], value=backend.ALL_LABELS, label="Filter by category",
                                   allow_custom_value=True)  # choices follow the dataset
            ex_pos = gr.Number(value=1, precision=0, minimum=1, label="Pair number")
        with gr.Row():
            ex_prev = gr.Button("◀ Previous", size="sm")
            ex_next = gr.Button("Next ▶", size="sm")
        with gr.Row():
            ex_a = gr.Image(label="image 0 / before", interactive=False, type="pil", format="png", height=320)
            ex_b = gr.Image(label="image 1 / after", interactive=False, type="pil", format="png", height=320)
        ex_md = gr.Markdown()

    chosen, shown = [ex_name, ex_label, ex_pos], [ex_a, ex_b, ex_md, ex_pos]
    # Named endpoints first: a later event with the same function would otherwise take the name.
    ex_pos.submit(explore, chosen, shown, api_name="explore")
    ex_name.change(explore_labels, ex_name, ex_label, api_name="explore_labels").then(
        lambda: 1, None, ex_pos, api_visibility="private").then(explore, chosen, shown, api_visibility="private")
    ex_label.input(lambda: 1, None, ex_pos, api_visibility="private").then(
        explore, chosen, shown, api_visibility="private")
    for button, delta in ((ex_prev, -1), (ex_next, 1)):
        button.click(lambda n, l, p, d=delta: step(n, l, p, d), chosen, ex_pos, api_visibility="private").then(
            explore, chosen, shown, api_visibility="private")
    demo.load(explore_labels, ex_name, ex_label, api_visibility="private").then(
        explore, chosen, shown, api_visibility="private")


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
            heatmap = gr.Plot(label="Similarity heatmap")
            details = gr.JSON(label="Details")

    sample_button.click(load_sample, sample_pos, [image_0, image_1, text_0, text_1, sample_pos],
                        api_name="load_sample")
    compare_button.click(compare, [image_0, image_1, text_0, text_1, model_choice], [verdict_md, heatmap, details],
                         api_name="compare", concurrency_limit=2)


# -- Score a submission -----------------------------------------------------------------------------


def score_tab(store: backend.DataStore, board: BoardView, result_files: backend.ResultFiles) -> None:
    """An official VisMin CSV or a difference-caption JSON scored as the CLI scores it: the report's table,
    a chart, results.json to download; the run goes on the leaderboard."""

    # Each handler writes results.json before it adds the run to the board: a run the visitor was told
    # failed is not on the board.
    def score_vismin(file, allow_missing, model_name):
        try:
            results = backend.score_vismin_csv(file, store.vismin_bench(), allow_missing=bool(allow_missing))
            path = result_files.write(results)
            entry = board.leaderboard.add_vismin(results, name=model_name)
            table = vismin_report.format_table(results, model=entry.name, compare=())
            shown = (_vismin_message(results, entry), table, _vismin_chart(results), str(path))
        except Exception as err:  # noqa: BLE001
            return _problem(err), "", None, None, board.vismin()
        return *shown, board.vismin()

    def score_captions(file, dataset_name, split):
        try:
            results = backend.score_caption_json(file, dataset_name, store, split=split or "test")
            path = result_files.write(results)
            entry = board.leaderboard.add_captions(results)
            shown = (_caption_message(results, entry), backend.caption_table(results), _caption_chart(results), str(path))
        except Exception as err:  # noqa: BLE001
            return _problem(err), "", None, None, board.captions()
        return *shown, board.captions()

    def caption_splits(dataset_name):
        try:
            splits = list(store.dataset(dataset_name))
        except Exception as err:  # noqa: BLE001
            _problem(err)
            splits = ["test"]
        return gr.Dropdown(choices=splits, value="test" if "test" in splits else splits[0])

    with gr.Tab("Score a submission", id="score"):
        with gr.Row():
            with gr.Column():
                vismin_inputs, vismin_button = _vismin_upload()
            with gr.Column():
                caption_inputs, caption_button = _caption_upload()
        score_message = gr.Markdown(elem_id="score-message")
        score_table = gr.Markdown()
        with gr.Row():
            score_chart = gr.BarPlot(label="Scores", x="bar", y="value")
            results_file = gr.File(label="results.json")

    shown = [score_message, score_table, score_chart, results_file]
    vismin_button.click(score_vismin, vismin_inputs, [*shown, board.vismin_table],
                        api_name="score_vismin", concurrency_limit=CONCURRENCY, concurrency_id="score")
    caption_set, caption_split = caption_inputs[1:]
    caption_set.change(caption_splits, caption_set, caption_split, api_visibility="private")
    caption_button.click(score_captions, caption_inputs, [*shown, board.caption_table],
                         api_name="score_captions", concurrency_limit=1, concurrency_id="captions")


def _vismin_upload() -> tuple[list, gr.Button]:
    """The VisMin column of the Score tab: its inputs (file, allow missing, name) and its button."""
    gr.Markdown("**VisMin**: the official CSV, `id,T0_I0,T0_I1,T1_I0,T1_I1` (a contrastive "
                "model's similarities) or `id,Text_Q0,Text_Q1,Image_Q0,Image_Q1` (a chat model's "
                "answers); ids as `<category>/<id>` or upstream integers.")
    vismin_file = gr.File(label="VisMin submission (.csv)", type="filepath")
    vismin_name = gr.Textbox(label="Name on the leaderboard (optional)")
    allow_missing = gr.Checkbox(label="Score even if some samples are missing")
    button = gr.Button("Score VisMin submission", variant="primary")
    return [vismin_file, allow_missing, vismin_name], button


def _caption_upload() -> tuple[list, gr.Button]:
    """The captions column of the Score tab: its inputs (file, dataset, split) and its button. It has no
    "score even if some pairs are missing": see :func:`diffbench.space.backend.score_caption_json`."""
    gr.Markdown("**Difference captions**: JSON `{\"<id>\": \"caption\"}` or "
                "`[{\"id\": ..., \"caption\": ...}]`, scored with BLEU, METEOR, ROUGE-L and CIDEr "
                "(pycocoevalcap's numbers), overall and per change type.")
    caption_file = gr.File(label="Difference captions (.json)", type="filepath")
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
    return gr.BarPlot(frame, x="bar", y="value", color="score", sort=list(frame["bar"]), y_lim=[0, 100],
                      title=backend.chart_title("VisMin scores (%)", results), x_title="category and score",
                      y_title="%", x_label_angle=-40)


def _caption_chart(results: dict) -> gr.BarPlot:
    frame = backend.caption_chart_frame(results)
    return gr.BarPlot(frame, x="subset", y="value", sort=list(frame["subset"]),
                      title=backend.chart_title("CIDEr (×100) by change type", results),
                      x_title="subset", y_title="CIDEr ×100", x_label_angle=-40)


# -- Leaderboard ------------------------------------------------------------------------------------


class BoardView:
    """The leaderboard as the page shows it: its two tables and the notes above them.

    The tables are made here unrendered (``render=False``): the Score tab, before the Leaderboard tab
    on the page, updates them when it adds a run; :func:`leaderboard_tab` places them.
    """

    def __init__(self, leaderboard: Leaderboard):
        self.leaderboard = leaderboard
        self.vismin_table = gr.Dataframe(value=self.vismin(), headers=list(VISMIN_COLUMNS), label="VisMin",
                                         interactive=False, column_widths=VISMIN_WIDTHS, pinned_columns=2,
                                         elem_id="vismin-board", max_height=900, render=False)
        self.caption_table = gr.Dataframe(value=self.captions(), headers=list(CAPTION_COLUMNS),
                                          label="Difference captioning runs (metrics ×100)", interactive=False,
                                          elem_id="caption-board", render=False)

    def vismin(self, sort_by: str = "AVG"):
        return Leaderboard.styled(self.leaderboard.vismin_table(sort_by))

    def captions(self):
        return Leaderboard.styled(self.leaderboard.caption_table())

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

    with gr.Tab("Leaderboard", id="leaderboard"):
        gr.Markdown(LEADERBOARD_INTRO)
        sort_by = gr.Dropdown(list(SORTS), value="AVG", label="Sort by")
        notes = gr.Markdown(board.notes(), elem_id="board-notes")  # above the tables: seen first
        board.vismin_table.render()
        board.caption_table.render()
        refresh = gr.Button("Refresh", size="sm")
        tables = [board.vismin_table, board.caption_table]
        sort_by.change(show_leaderboard, sort_by, tables, api_name="leaderboard")
        gr.api(board.notes, api_name="leaderboard_notes")  # a block: in the tab (gr.Tabs holds only tabs)

    refresh.click(show_board_and_notes, sort_by, [*tables, notes], api_visibility="private")
    demo.load(show_board_and_notes, sort_by, [*tables, notes], api_visibility="private")


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
