"""``diffbench score TARGET ...``: score a submission file against a built dataset.

Each target (``vismin``, ``captions``) is a module under ``diffbench.commands`` named
``score_<target>`` with its own ``add_parser(subparsers)``; they are found by scanning the package.
"""

from __future__ import annotations

import importlib



def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("score", help="score a submission file")
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    import pkgutil

    from diffbench import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("score_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").add_parser(targets)
