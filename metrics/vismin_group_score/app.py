"""The `vismin_group_score` widget: paste or upload VisMin predictions and get the scores.

Written with Gradio 6 directly (evaluate 0.4.6's `launch_gradio_widget` fails on Gradio 4 and later).
The scoring function, `score_table`, needs no Gradio, so it can be tested and reused as it is. The
metric is loaded from the file beside this one, so the folder works as a Hub Space and in the repository.

    python app.py        # serves the widget on http://127.0.0.1:7860
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

import evaluate

HERE = Path(__file__).resolve().parent


def _metric_module():
    """``vismin_rule.py`` beside this file (the rule the metric computes with), as a module: the columns and
    categories are written there once."""
    spec = importlib.util.spec_from_file_location("vismin_group_score_definitions", HERE / "vismin_rule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_definitions = _metric_module()
SCORE_COLUMNS = list(_definitions.SCORE_FIELDS)
ANSWER_COLUMNS = list(_definitions.ANSWER_FIELDS)
CATEGORIES = list(_definitions.CATEGORIES)
EXAMPLE = pd.DataFrame(
    [
        [0.31, 0.22, 0.19, 0.28, "object"],
        [0.27, 0.25, 0.26, 0.24, "attribute"],
        [0.24, 0.24, 0.21, 0.30, "relation"],
        [0.30, 0.18, 0.25, 0.29, "counting"],
    ],
    columns=SCORE_COLUMNS + ["category"],
)

_metric = None


def metric():
    """The metric, loaded once from ``vismin_group_score.py`` beside this file."""
    global _metric
    if _metric is None:
        _metric = evaluate.load(str(HERE / "vismin_group_score.py"))
    return _metric


def _drop_blank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    # An editable table grows empty rows; they are not samples.
    blank = frame.apply(lambda row: all(pd.isna(v) or str(v).strip() == "" for v in row), axis=1)
    return frame.loc[~blank].reset_index(drop=True)


def score_table(frame: pd.DataFrame, parser: str = "lenient") -> tuple[str, dict]:
    """Score a table in either official submission format (plus an optional ``category`` column).

    Returns the scores as markdown and the metric's result; bad input raises a ValueError naming the
    row (counted from 0) and the column.
    """
    frame = _drop_blank_rows(frame.rename(columns=lambda c: str(c).strip()))
    if frame.empty:
        raise ValueError("no rows to score")
    if set(SCORE_COLUMNS) <= set(frame.columns):
        inputs = {}
        for column in SCORE_COLUMNS:
            values = pd.to_numeric(frame[column], errors="coerce")
            if values.isna().any():
                row = int(values.isna().idxmax())
                raise ValueError(f"row {row}, column {column}: {frame.at[row, column]!r} is not a number")
            inputs[column] = values.to_numpy(dtype="float64")
    elif set(ANSWER_COLUMNS) <= set(frame.columns):
        inputs = {column: frame[column].fillna("").astype(str).tolist() for column in ANSWER_COLUMNS}
    else:
        raise ValueError(f"the table needs the columns {', '.join(SCORE_COLUMNS)} or {', '.join(ANSWER_COLUMNS)}")
    if "category" in frame.columns and frame["category"].astype(str).str.strip().ne("").any():
        inputs["categories"] = frame["category"].astype(str).str.strip().tolist()
    results = metric().compute(**inputs, parser=parser)
    return to_markdown(results), results


def to_markdown(results: dict) -> str:
    """Per-category rows (when there are categories) and the overall scores, rounded for display."""
    lines = ["| | Text | Image | Group | Samples |", "|---|---:|---:|---:|---:|"]
    for category, cell in results.get("per_category", {}).items():
        lines.append(f"| {category} | {cell['text_score']:.2f} | {cell['image_score']:.2f} | "
                     f"{cell['group_score']:.2f} | {cell['num_samples']:,} |")
    lines.append(f"| **all samples** | {results['text_score']:.2f} | {results['image_score']:.2f} | "
                 f"{results['group_score']:.2f} | {results['num_samples']:,} |")
    if "category_mean" in results:
        mean = results["category_mean"]
        lines.append(f"| **mean of categories** | {mean['text_score']:.2f} | {mean['image_score']:.2f} | "
                     f"{mean['group_score']:.2f} | |")
        lines += ["", f"AVG as published (mean of the {3 * len(results['per_category'])} category cells): "
                      f"**{results['avg_as_published']:.2f}**"]
    return "\n".join(lines)


def _score(table, upload, parser):
    import gradio as gr

    try:
        frame = pd.read_csv(upload, dtype=str, keep_default_na=False) if upload else table
        return score_table(frame, parser)
    except ValueError as err:
        raise gr.Error(str(err)) from None


def build_demo():
    import gradio as gr

    with gr.Blocks(title="VisMin group score") as demo:
        gr.Markdown(
            "# VisMin group score\n"
            "Text, image and group scores of [VisMin](https://vismin.net), as the official code computes "
            "them. Give similarity scores (`T0_I0, T0_I1, T1_I0, T1_I1`: text t against image i) or a chat "
            "model's answers (`Text_Q0, Text_Q1, Image_Q0, Image_Q1`), with an optional `category` column. "
            "Ties count as wrong."
        )
        table = gr.Dataframe(value=EXAMPLE, label="Predictions (edit, or upload a CSV below)", interactive=True,
                             type="pandas")
        upload = gr.File(label="…or a CSV in either format", file_types=[".csv"], type="filepath")
        parser = gr.Radio(["lenient", "strict"], value="lenient", label="Answer parser (answers only)",
                          info="lenient: the official parser; strict: the answer must be the label itself")
        button = gr.Button("Score", variant="primary")
        scores = gr.Markdown()
        raw = gr.JSON(label="Full-precision result")
        button.click(_score, inputs=[table, upload, parser], outputs=[scores, raw])
    return demo


if __name__ == "__main__":
    build_demo().launch()
