"""The ``diffbench`` command line.

Each sub-command lives in its own module under ``diffbench.commands`` and exposes
``add_parser(subparsers)``, which registers the command and sets ``func`` on its parser.
Every such module is found by scanning the package, so adding a command means adding one
file; modules without ``add_parser`` (helpers, ``score_*`` targets) are skipped.
"""

from __future__ import annotations

import argparse
import importlib
import sys


def command_modules() -> list[str]:
    """Names of the modules under ``diffbench.commands`` that define a top-level command."""
    import pkgutil

    from diffbench import commands

    names = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_") or info.name.startswith("score_"):
            continue
        names.append(f"{commands.__name__}.{info.name}")
    return sorted(names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffbench",
        description="Load, score and demo fine-grained vision-language benchmarks.",
    )
    from diffbench import __version__

    parser.add_argument("--version", action="version", version=f"diffbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in command_modules():
        module = importlib.import_module(module_name)
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        # Bad input is the user's to fix: one clear line, no traceback.
        print(f"diffbench {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
