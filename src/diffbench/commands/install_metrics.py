"""``diffbench install-metrics [NAMES...]``: make ``evaluate.load(NAME)`` work from any directory.

``evaluate.load("vismin_group_score")`` looks for ``./vismin_group_score/vismin_group_score.py``, then
the Hub, then evaluate's module cache, where a Hub download of ``evaluate-metric/NAME`` would have put
the module:

    <HF_MODULES_CACHE>/evaluate_modules/metrics/evaluate-metric--NAME/<hash>/NAME.py

This command writes each folder under ``metrics/`` there (:mod:`diffbench.data.metric_install`).
Offline (``HF_HUB_OFFLINE=1``) the bare name then loads without a network call; online it loads after
the Hub says it has no such metric.

    diffbench install-metrics                       # every metric folder
    diffbench install-metrics vismin_group_score    # just these
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "install-metrics", help="install the metrics/ folders so that evaluate.load(NAME) works anywhere"
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="metric folders to install (default: all)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from diffbench.data.metric_install import install_metrics

    for path in install_metrics(args.names):
        name = path.stem
        print(f"{name}: evaluate.load({name!r}) -> {path.parent}")
    return 0
