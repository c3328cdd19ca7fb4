"""``diffbench inspect RUN [OTHER]``: a run's samples one by one, the ones it got wrong first.

    diffbench inspect runs/clip                          # a folder of score / eval (results.json, samples.jsonl)
    diffbench inspect runs/clip --wrong group --category counting
    diffbench inspect runs/clip/samples.jsonl --right text --wrong image -n 0
    diffbench inspect runs/captions --worst meteor --change-type color
    diffbench inspect runs/clip runs/siglip --only-a group    # A right, B wrong
    diffbench inspect runs/a runs/b --worst cider --json      # captions: A - B of CIDEr-D, A's worst first

One run: VisMin's samples with their category, text / image / group right or wrong (the official rule),
the 2x2 similarities or the four answers (in brackets what the lenient parser read) and the two texts
from the build; a caption run's samples with their change types, CIDEr-D and METEOR, the prediction
and the references. Two runs on the same data (refused as ``diffbench compare`` refuses them): A's and
B's verdicts, the samples A got right and B wrong first; captions: A - B, where A is ahead most first
(``--worst``: where A trails most first). ``--json`` prints every row as a JSON line (all of them unless
``-n``). The work is :mod:`diffbench.report.inspect`.
"""

from __future__ import annotations

from pathlib import Path

OUTCOMES = ("text", "image", "group")
METRICS = ("cider", "meteor", "bleu_4", "rouge_l", "spice")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="a run's samples one by one, the wrong ones first (or two runs side by side)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="RUN", type=Path,
                        help="a run's folder (results.json, samples.jsonl), its results.json, or a samples.jsonl")
    parser.add_argument("other", metavar="OTHER", type=Path, nargs="?", default=None,
                        help="a second run on the same data, shown beside RUN (A = RUN, B = OTHER)")
    parser.add_argument("--category", default=None, help="VisMin: only this category (object, attribute, relation, counting)")
    parser.add_argument("--change-type", default=None,
                        help="captions: only this change type (or CLEVR-Change part: semantic_change, distractor)")
    parser.add_argument("--wrong", choices=OUTCOMES, default=None, help="VisMin: only samples wrong on this (both runs, with OTHER)")
    parser.add_argument("--right", choices=OUTCOMES, default=None, help="VisMin: only samples right on this (both runs, with OTHER)")
    parser.add_argument("--only-a", choices=OUTCOMES, default=None, metavar="{text,image,group}",
                        help="VisMin with OTHER: only samples RUN got right and OTHER wrong")
    parser.add_argument("--only-b", choices=OUTCOMES, default=None, metavar="{text,image,group}",
                        help="VisMin with OTHER: only samples OTHER got right and RUN wrong")
    parser.add_argument("--worst", type=str.lower, choices=METRICS, default=None,
                        help="captions: order by this metric, lowest first (with OTHER: RUN - OTHER, lowest first); "
                             "default CIDEr-D")
    parser.add_argument("-n", type=int, default=None, metavar="N",
                        help="show the first N samples (default: 20 in the table, all with --json; 0: all)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines instead of a table")
    parser.add_argument("--intersect", action="store_true",
                        help="with OTHER: the samples both runs hold when their samples differ (default: refuse)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from diffbench.report import inspect

    if args.other is None and (args.only_a or args.only_b or args.intersect):
        raise ValueError("--only-a, --only-b and --intersect compare two runs: give OTHER too")
    if (args.only_a or args.only_b) and (args.right or args.wrong):
        raise ValueError("--only-a / --only-b select on both runs already: give them without --right / --wrong")
    a = inspect.load(args.run)
    if args.other is None:
        found = inspect.rows(a, category=args.category, change_type=args.change_type, wrong=args.wrong,
                             right=args.right, worst=args.worst, texts=True)
        view, heading = a.view, describe(a)
    else:
        both = inspect.pair(a, inspect.load(args.other), intersect=args.intersect)
        found = inspect.side_by_side(both, category=args.category, change_type=args.change_type, worst=args.worst,
                                     **_sides(args))
        view, heading = both.view, f"A: {describe(both.a)}\nB: {describe(both.b)}\n{len(both.ids):,} samples in both"
    limit = args.n if args.n is not None else (0 if args.json else inspect.DEFAULT_SHOWN)
    shown = found[:limit] if limit > 0 else found
    if args.json:
        print(inspect.json_lines(shown), end="")
        return 0
    print(heading)
    print(f"{len(found):,} samples {_criteria(args)}" + (f", the first {len(shown):,} shown (-n 0: all)"
                                                         if len(shown) < len(found) else ""))
    print(inspect.format_table(shown, view))
    if args.other is None and a.view.text_columns and inspect.built(a).note:
        print(f"(texts and images: {inspect.built(a).note})")
    return 0


def _sides(args) -> dict:
    """The outcome filters on A and B: ``--right/--wrong`` on both, ``--only-a/--only-b`` one right, one wrong."""
    if args.only_a or args.only_b:
        return {"a_right": args.only_a, "b_wrong": args.only_a, "a_wrong": args.only_b, "b_right": args.only_b}
    return {"a_right": args.right, "b_right": args.right, "a_wrong": args.wrong, "b_wrong": args.wrong}


def describe(found) -> str:
    """``name (path): benchmark config/split, N samples``, printable."""
    from diffbench.text import printable

    data = "/".join(str(part) for part in (found.config, found.split) if part)
    return printable(f"{found.name} ({found.path}): {found.benchmark or 'unknown benchmark'} {data}, "
                     f"{len(found.records):,} samples")


def _criteria(args) -> str:
    parts = [f"{name.replace('_', ' ')} {value}" for name, value in
             (("category", args.category), ("change type", args.change_type), ("wrong on", args.wrong),
              ("right on", args.right), ("A right, B wrong on", args.only_a), ("B right, A wrong on", args.only_b))
             if value]
    if args.other is None:
        order = f"by {args.worst}, lowest first" if args.worst else "the wrong or worst first"
    else:
        order = f"by {args.worst} of A - B, lowest first" if args.worst else "where A is ahead of B first"
    return f"({', '.join(parts + [order])})"
