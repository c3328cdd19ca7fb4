"""Options several commands share, declared once (a module without ``add_parser``: no command of its own)."""

from __future__ import annotations

from diffbench.report.layout import DEFAULT_RESAMPLES, DEFAULT_SEED


def add_uncertainty_arguments(parser) -> None:
    """``--resamples`` and ``--seed`` of the 95% bootstrap intervals."""
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, metavar="N",
                        help=f"bootstrap resamples of the 95%% intervals (default: {DEFAULT_RESAMPLES}; the same "
                             "file and seed always give the same interval)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"the bootstrap's seed (default: {DEFAULT_SEED})")
