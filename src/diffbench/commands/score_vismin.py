"""``diffbench score vismin PREDICTIONS.csv``: score an official VisMin submission.

    diffbench score vismin clip_scores.csv --out runs/clip          # id,T0_I0,T0_I1,T1_I0,T1_I1
    diffbench score vismin answers.csv --parser strict --out runs/a   # id,Text_Q0,Text_Q1,Image_Q0,Image_Q1
    diffbench score vismin clip_scores.csv --name "my CLIP" --compare "CLIP (ViT-B/32)"

Prints the paper's table and writes ``results.json`` (the scores with 95% bootstrap intervals, the data's
provenance), ``results.md`` (the table with every published row, or those named by ``--compare``),
``samples.jsonl`` (one line a sample: its scores or answers and whether text, image and group are right)
and the figure ``results.png`` / ``results.svg`` (the result beside published rows, chance marked) to
``--out`` (default:
``./vismin-results``), as one set (:mod:`diffbench.files`): over files of those names that diffbench did
not write only with ``--overwrite``. The work is :func:`diffbench.vismin.scoring.score_submission` and
:func:`diffbench.vismin.report.write_report`.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.commands._arguments import add_uncertainty_arguments


DEFAULT_OUT = "vismin-results"


def add_parser(targets) -> None:
    parser = targets.add_parser("vismin", help="score a VisMin submission CSV (similarity scores or chat answers)")
    parser.add_argument("predictions", type=Path,
                        help="submission CSV: id,T0_I0,T0_I1,T1_I0,T1_I1 or id,Text_Q0,Text_Q1,Image_Q0,Image_Q1")
    parser.add_argument("--config", default="bench", help="built configuration to score against (default: bench)")
    parser.add_argument("--parser", choices=("lenient", "strict"), default="lenient",
                        help="how chat answers are read: the official lenient parser (default) or exact labels")
    parser.add_argument("--allow-missing", action="store_true", help="score a submission that lacks some samples")
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), metavar="DIR",
                        help=f"folder for results.json, results.md and the figure (default: ./{DEFAULT_OUT})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace results files in --out that diffbench did not write (or that changed since)")
    parser.add_argument("--name", default=None, help="the run's label in the table and figure (default: the file name)")
    parser.add_argument("--compare", action="append", default=None, metavar="MODEL",
                        help="list only these published rows, e.g. 'CLIP (ViT-B/32)' (repeatable; default: every "
                             "published row in the table, three in the figure)")
    add_uncertainty_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from diffbench import files
    from diffbench.report.layout import SAMPLES_FILE
    from diffbench.vismin.report import report_markdown, write_report
    from diffbench.vismin.scoring import score
    from diffbench.vismin.submission import CoverageError

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder")
    files.prepare(args.out, (*files.REPORT_FILES, SAMPLES_FILE), args.overwrite)  # before any work
    try:
        scored = score(args.predictions, config=args.config, parser=args.parser, allow_missing=args.allow_missing,
                       resamples=args.resamples, seed=args.seed)
    except CoverageError as err:
        if err.only_missing:
            raise ValueError(f"{err}; --allow-missing scores the others") from None
        raise
    label = args.name or args.predictions.stem
    written = write_report(args.out, scored.results, label, compare=args.compare, overwrite=args.overwrite,
                           samples=scored.samples)
    print(report_markdown(scored.results, label, compare=args.compare))
    print(f"wrote {', '.join(str(path) for path in written)}")
    return 0
