"""``diffbench score captions PREDICTIONS.json --dataset NAME --out DIR``: COCO caption metrics per group.

    diffbench score captions preds.json --dataset spot_the_diff --out runs/spot
    diffbench score captions sc_nsc_results.json --dataset clevr_change --out runs/rcc   # official parts
    diffbench score captions preds.json --dataset omnidiff --metrics bleu cider --allow-missing --out runs/o

PREDICTIONS.json maps the dataset's ``id`` to a generated caption: an object ``{"id": "caption"}`` or
a list of ``{"id" | "image_id": ..., "caption": ...}`` (CLEVR-Change's official ``"000123.png"`` /
``"000123.png_n"`` keys work too). The dataset is the one ``diffbench build NAME`` put in the cache.
Writes ``DIR/results.json`` (layout v1, :mod:`diffbench.report.layout`: every metric x 100 with its 95%
bootstrap interval, ``--resamples`` resamples from ``--seed``, overall and per group, and the data's
provenance), ``DIR/results.md``, ``DIR/samples.jsonl`` (one line a pair: its prediction, references and
per-pair metrics) and the figure ``DIR/results.png`` / ``.svg`` (:mod:`diffbench.captions.report`) and
prints the table: the total, then one row a group (CLEVR-Change: the official evaluation's parts). The
files are one set (:mod:`diffbench.files`): over files of those names that diffbench did not write only
with ``--overwrite``. The work is :func:`diffbench.captions.scoring.score`.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.commands._arguments import add_uncertainty_arguments

DEFAULT_OUT = "caption-results"


def add_parser(targets) -> None:
    parser = targets.add_parser("captions", help="COCO caption metrics (BLEU, METEOR, ROUGE-L, CIDEr) per change type")
    parser.add_argument("predictions", type=Path, help="JSON: {id: caption} or [{id or image_id, caption}]")
    parser.add_argument("--dataset", required=True, help="a dataset built with `diffbench build NAME`")
    parser.add_argument("--config", default=None, help="dataset configuration (default: the default one)")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument("--metrics", nargs="+", default=None, metavar="METRIC",
                        help="bleu meteor rouge cider (default: all four); spice needs Stanford CoreNLP 3.6.0")
    parser.add_argument("--allow-missing", action="store_true", help="score the rows that have a prediction")
    add_uncertainty_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), metavar="DIR",
                        help=f"folder for results.json and results.md (default: ./{DEFAULT_OUT})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace results files in --out that diffbench did not write (or that changed since)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from diffbench import files
    from diffbench.captions.inputs import max_predictions_bytes, normalize_metrics, read_predictions
    from diffbench.captions.report import format_table, write_report
    from diffbench.captions.scoring import MissingPredictionsError, score
    from diffbench.report.layout import SAMPLES_FILE
    from diffbench.captions.spice import check_available
    from diffbench.data import building

    metrics = normalize_metrics(args.metrics)  # a bad or unavailable metric fails before any work
    if "spice" in metrics:
        check_available()
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder")
    if args.resamples < 1:
        raise ValueError(f"--resamples must be at least 1, got {args.resamples}")
    files.prepare(args.out, (*files.REPORT_FILES, SAMPLES_FILE), args.overwrite)  # before the scoring's minutes
    if not args.predictions.is_file():
        raise FileNotFoundError(f"no predictions file {args.predictions}")
    dataset = building.load_built(args.dataset, args.config, args.split)
    predictions = read_predictions(args.predictions, max_bytes=max_predictions_bytes(len(dataset)))
    # no Java: exit 2, one line; a METEOR or tokenizer failure: exit 1, one line (diffbench.cli.main)
    try:
        scored = score(predictions, dataset, metrics=metrics, allow_missing=args.allow_missing,
                       source=str(args.predictions), benchmark=args.dataset, config=args.config, split=args.split,
                       resamples=args.resamples, seed=args.seed)
    except MissingPredictionsError as err:
        raise ValueError(f"{err}; --allow-missing scores the others") from None
    results = {**scored.results, "predictions": str(args.predictions)}
    title = f"{args.dataset} ({args.split}): {args.predictions.name}"
    written = write_report(args.out, results, title, overwrite=args.overwrite, samples=scored.samples)
    print(format_table(results))
    print(f"\nwrote {', '.join(str(path) for path in written)}")
    return 0
