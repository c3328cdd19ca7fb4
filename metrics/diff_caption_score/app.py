"""Gradio 6 widget for diff_caption_score (evaluate 0.4.6's ``launch_gradio_widget`` breaks on Gradio >= 4).

Paste (or upload) a JSON object ``{"predictions": [...], "references": [[...], ...], "groups": [...]}``,
choose the metrics, and get the table and the raw result. Requests run in Gradio's worker threads: they
share the process's one METEOR JVM, whose lock serialises only the JVM exchange.
"""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from diffbench.captions.inputs import DEFAULT_METRICS, METRICS
from diffbench.captions.report import format_table
from diffbench.captions.metrics import score_captions

HERE = Path(__file__).resolve().parent
MAX_UPLOAD_BYTES = 20 * 2**20  # per request: the widget scores one set at a time
EXAMPLE = {
    "predictions": ["the red car is gone", "a man has appeared near the door", "the blue bike moved"],
    "references": [
        ["the red car has been removed", "the red car is no longer there"],
        ["a man is standing by the door now"],
        ["the bicycle is moved to the left", "the blue bike has moved"],
    ],
    "groups": [["disappearance"], ["addition"], ["disappearance", "orientation"]],
}


def _card() -> str:
    """The metric card without its YAML front matter."""
    text = (HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").is_file() else ""
    if text.startswith("---"):
        text = text.split("---", 2)[-1]
    return text


def parse_payload(text: str | None, upload: str | None = None) -> dict:
    """The JSON object from the uploaded file if any, else from the text box."""
    if upload:
        if Path(upload).stat().st_size > MAX_UPLOAD_BYTES:
            raise ValueError(f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
        text = Path(upload).read_text(encoding="utf-8")
    if not text or not text.strip():
        raise ValueError("paste a JSON object with 'predictions' and 'references' (or upload a .json file)")
    if len(text) > MAX_UPLOAD_BYTES:
        raise ValueError(f"the JSON is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON: {err}") from None
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    if not isinstance(payload, dict) or "predictions" not in payload or "references" not in payload:
        raise ValueError("the JSON must be an object with 'predictions' and 'references' (and optionally 'groups')")
    return payload


def score(text: str | None, metrics: list[str], upload: str | None = None) -> tuple[str, dict]:
    """The widget's handler: (Markdown table, result dict). Bad input shows as a Gradio error."""
    try:
        payload = parse_payload(text, upload)
        results = score_captions(
            payload["predictions"], payload["references"], groups=payload.get("groups"), metrics=metrics or None
        )
    except (ValueError, RuntimeError, UnicodeDecodeError) as err:
        raise gr.Error(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    return format_table(results), results


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="diff_caption_score") as demo:
        gr.Markdown(
            "# diff_caption_score\nBLEU-1..4, METEOR, ROUGE-L and CIDEr for difference captions, identical to "
            "pycocoevalcap 1.2, per change type. The first request starts the METEOR JVM (a few seconds)."
        )
        with gr.Row():
            with gr.Column():
                text = gr.Code(value=json.dumps(EXAMPLE, indent=2), language="json", label="predictions / references / groups")
                upload = gr.File(label="or upload a JSON file", file_types=[".json"], type="filepath")
                metrics = gr.CheckboxGroup(choices=list(METRICS), value=list(DEFAULT_METRICS), label="metrics")
                button = gr.Button("Score", variant="primary")
            with gr.Column():
                table = gr.Markdown(label="scores")
                raw = gr.JSON(label="result")
        button.click(score, inputs=[text, metrics, upload], outputs=[table, raw], api_name="score")
        with gr.Accordion("Metric card", open=False):
            gr.Markdown(_card())
    return demo


demo = build_demo()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=4).launch()
