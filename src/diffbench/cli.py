"""The ``diffbench`` command line.

Each sub-command lives in its own module under ``diffbench.commands`` and exposes
``add_parser(subparsers)``, which registers the command and sets ``func`` on its parser.
Every such module is found by scanning the package, so adding a command means adding one
file; modules without ``add_parser`` (helpers, ``score_*`` targets) are skipped.

How a command ends (the same for every command):

- exit 0: done;
- exit 2, one line on stderr: the user's input or set-up is wrong (a bad file, a missing build, an
  unknown name, a missing optional dependency: the line names the extra to install);
- exit 1, one line on stderr: a fault of ours; ``--debug`` (or ``DIFFBENCH_DEBUG=1``) prints the
  traceback as well;
- exit 130: interrupted (Ctrl-C).

    >>> main(["--version"])  # doctest: +ELLIPSIS
    diffbench 0...
    0
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

DEBUG_ENV = "DIFFBENCH_DEBUG"
#: the user's to fix: their files and folders, their options (ValueError covers the library's checks)
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError)


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
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an internal error (also: {DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in command_modules():
        module = importlib.import_module(module_name)
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser


def one_line(message: object) -> str:
    """A message on one line: its lines joined with ``; ``.

    >>> one_line("bad file\\n  row 3: empty id\\n")
    'bad file; row 3: empty id'
    """
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return "; ".join(lines)


def _debug(args) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


def _is_setup_error(err: BaseException) -> bool:
    """Errors of the user's machine set-up rather than of our code (no Java for the caption metrics)."""
    try:
        from diffbench.caption_tokenizer import JavaNotFoundError
    except ImportError:  # pragma: no cover -- the library is importable wherever the CLI is
        return False
    return isinstance(err, JavaNotFoundError)


def _missing_extra(err: ModuleNotFoundError, command: str | None) -> str | None:
    try:
        from diffbench.extras import missing_extra_message
    except ImportError:  # pragma: no cover -- extras.py ships with the package
        return None
    return missing_extra_message(err, command)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version (0) and usage errors (2): argparse has printed them
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
    prefix = " ".join(["diffbench", args.command, *([args.target] if getattr(args, "target", None) else [])])
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `diffbench ... | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except ModuleNotFoundError as err:
        message = _missing_extra(err, args.command)
        if message is None:
            return _internal(prefix, err, args)
        print(f"{prefix}: error: {message}", file=sys.stderr)
        return 2
    except USER_ERRORS as err:
        # Bad input is the user's to fix: one clear line, no traceback.
        if _debug(args):
            traceback.print_exc()
        print(f"{prefix}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 -- every other failure: one line, the traceback on request
        if _is_setup_error(err):
            print(f"{prefix}: error: {one_line(err)}", file=sys.stderr)
            return 2
        return _internal(prefix, err, args)


def _internal(prefix: str, err: BaseException, args) -> int:
    if _debug(args):
        traceback.print_exc()
        hint = ""
    else:
        hint = f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"
    print(f"{prefix}: internal error: {type(err).__name__}: {one_line(err)}{hint}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
