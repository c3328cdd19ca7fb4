"""``diffbench compare A B``: is B different from A? Two scored results on the same data, side by side.

    diffbench compare runs/clip runs/siglip                    # folders of score / eval (results.json, samples.jsonl)
    diffbench compare runs/clip/results.json runs/siglip --out runs/clip-vs-siglip
    diffbench compare runs/a runs/b --resamples 10000 --seed 1

Per metric, overall and per group (VisMin's categories, a caption set's change types): A, B, the difference
B - A with its 95% paired bootstrap interval and a paired test (VisMin's text / image / group: the exact
McNemar test on per-sample correctness; the AVG and caption metrics: the paired bootstrap). Prints the
table (compare.md) and, with ``--out``, writes compare.json and compare.md there as one set
(:mod:`diffbench.files`). Refuses, in one line, two results of different benchmarks, configurations,
splits or builds, or of different samples (``--intersect`` compares the samples both hold). The work is
:mod:`diffbench.report.compare` with :mod:`diffbench.vismin.compare` or :mod:`diffbench.captions.compare`.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.commands._arguments import add_uncertainty_arguments


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="compare two scored results on the same data (paired tests)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("a", metavar="A", type=Path, help="a result folder (results.json, samples.jsonl) or its results.json")
    parser.add_argument("b", metavar="B", type=Path, help="the result compared with A (differences are B - A)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="folder for compare.json and compare.md (default: print the table only)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace compare files in --out that diffbench did not write (or that changed since)")
    parser.add_argument("--intersect", action="store_true",
                        help="compare the samples both results hold when their samples differ (default: refuse)")
    add_uncertainty_arguments(parser)
    parser.set_defaults(func=run)


def comparer(benchmark: str):
    """The benchmark's comparison (VisMin, or a difference-captioning set)."""
    if benchmark == "vismin":
        from diffbench.vismin.compare import compare_vismin

        return compare_vismin
    from diffbench.captions.tasks import DATASETS

    if benchmark in DATASETS:
        from diffbench.captions.compare import compare_captions

        return compare_captions
    raise ValueError(f"no comparison for {benchmark!r} results (vismin, {', '.join(sorted(DATASETS))})")


def run(args) -> int:
    from diffbench import files
    from diffbench.report import compare

    if args.out is not None:
        files.prepare(args.out, compare.COMPARE_FILES, args.overwrite)  # before any work
    a, b = compare.load_run(args.a), compare.load_run(args.b)
    compare.check_comparable(a, b)
    comparison = compare.compare(a, b, comparer(a.results["benchmark"]), intersect=args.intersect,
                                 resamples=args.resamples, seed=args.seed)
    print(compare.format_markdown(comparison), end="")
    if args.out is not None:
        written = compare.write_comparison(args.out, comparison, overwrite=args.overwrite)
        print(f"wrote {', '.join(str(path) for path in written)}")
    return 0
