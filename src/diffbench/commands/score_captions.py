"""``diffbench score captions PREDICTIONS.json --dataset NAME [--split test]``: COCO caption metrics.

PREDICTIONS.json maps the dataset's ``id`` to a generated caption, as an object ``{"id": "caption"}``
or a list of ``{"id": ..., "caption": ...}`` (``prediction`` is accepted for ``caption``). The dataset
is the one ``diffbench build NAME`` put in the datasets cache (columns ``id``, ``captions`` and,
when it has them, ``change_types``). Writes ``<stem>.scores.json`` and ``<stem>.scores.md`` beside the
predictions (or in ``--output-dir``) and prints the table: all samples, then one row a change type.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_predictions(path: Path) -> dict[str, str]:
    """``{id: caption}`` from either accepted layout; a ValueError says what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items()}
    if isinstance(data, list):
        out = {}
        for n, row in enumerate(data):
            if not isinstance(row, dict) or "id" not in row or not ({"caption", "prediction"} & set(row)):
                raise ValueError(f"{path}: entry {n} must be an object with 'id' and 'caption'")
            key = str(row["id"])
            if key in out:
                raise ValueError(f"{path}: id {key!r} appears twice")
            out[key] = row["caption"] if "caption" in row else row["prediction"]
        return out
    raise ValueError(f"{path}: expected an object {{id: caption}} or a list of {{id, caption}}")


def add_parser(targets) -> None:
    parser = targets.add_parser("captions", help="COCO caption metrics (BLEU, METEOR, ROUGE-L, CIDEr) per change type")
    parser.add_argument("predictions", type=Path, help="JSON: {id: caption} or [{id, caption}]")
    parser.add_argument("--dataset", required=True, help="a dataset built with `diffbench build NAME`")
    parser.add_argument("--config", default=None, help="dataset configuration (default: the default one)")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument(
        "--metrics", nargs="+", default=None, metavar="METRIC", help="bleu meteor rouge cider (default) and/or spice"
    )
    parser.add_argument("--output-dir", type=Path, default=None, help="where to write the results (default: beside PREDICTIONS)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from diffbench import building
    from diffbench.caption_scoring import format_table, score_predictions, write_results

    if not args.predictions.is_file():
        raise FileNotFoundError(f"no predictions file {args.predictions}")
    predictions = read_predictions(args.predictions)
    dataset = building.load_built(args.dataset, args.config, args.split)
    results = score_predictions(predictions, dataset, metrics=args.metrics)
    results = {"dataset": args.dataset, "split": args.split, **results}
    out_dir = args.output_dir or args.predictions.resolve().parent
    json_path, md_path = write_results(results, out_dir, stem=f"{args.predictions.stem}.scores")
    print(format_table(results))
    print(f"\nwrote {json_path} and {md_path}")
    return 0
