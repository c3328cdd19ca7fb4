"""``diffbench score vismin PREDICTIONS.csv``: score an official VisMin submission.

    diffbench score vismin clip_scores.csv                   # id,T0_I0,T0_I1,T1_I0,T1_I1
    diffbench score vismin answers.csv --parser strict       # id,Text_Q0,Text_Q1,Image_Q0,Image_Q1
    diffbench score vismin clip_scores.csv --compare "CLIP (ViT-B/32)" --output-dir runs/clip

Prints the paper's table and writes ``results.json`` and ``results.md`` to ``--output-dir``.
"""

from __future__ import annotations


def add_parser(targets) -> None:
    parser = targets.add_parser("vismin", help="score a VisMin submission CSV (similarity scores or chat answers)")
    parser.add_argument("predictions", help="submission CSV: id,T0_I0,T0_I1,T1_I0,T1_I1 or id,Text_Q0,Text_Q1,Image_Q0,Image_Q1")
    parser.add_argument("--config", default="bench", help="built configuration to score against (default: bench)")
    parser.add_argument("--parser", choices=("lenient", "strict"), default="lenient",
                        help="how chat answers are read: the official lenient parser (default) or exact labels")
    parser.add_argument("--allow-missing", action="store_true", help="score a submission that lacks some samples")
    parser.add_argument("--output-dir", default=".", help="where results.json and results.md go (default: .)")
    parser.add_argument("--model", default=None, help="row label in the table (default: the file name)")
    parser.add_argument("--compare", action="append", default=[], metavar="MODEL",
                        help="add a published model's row, e.g. 'CLIP (ViT-B/32)' (repeatable)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from diffbench.vismin_submission import format_table, score_submission, write_results

    results = score_submission(args.predictions, config=args.config, parser=args.parser, allow_missing=args.allow_missing)
    table = format_table(results, model=args.model, compare=args.compare)  # checks --compare before writing
    json_path, _ = write_results(results, args.output_dir, table)
    print(table)
    print(f"\nwrote {json_path} and {json_path.with_name('results.md')}")
    return 0
