"""The ``diffbench`` command line.

Each sub-command lives in its own module under ``diffbench.commands`` and exposes
``add_parser(subparsers)``, which registers the command and sets ``func`` on its parser.
Every such module is found by scanning the package, so adding a command means adding one
file; modules without ``add_parser`` (helpers, ``score_*`` targets) are skipped.

How a command ends (the same for every command):

- exit 0: done;
- exit 2, one line on stderr: the user's input or set-up is wrong (a bad file, a missing build, an
  unknown name, a missing optional dependency: the line names the extra to install), or the machine
  refused (a full disk, a read-only folder, an unreachable server: :func:`environment_problem`);
- exit 1, one line on stderr: a fault of ours; ``--debug`` (or ``DIFFBENCH_DEBUG=1``) prints the
  traceback as well;
- exit 130: interrupted (Ctrl-C).

Every line printed passes :func:`diffbench.text.one_line`: an escape sequence in a file name, an id
or a server's message is shown as text, never run by the terminal.

    >>> main(["--version"])  # doctest: +ELLIPSIS
    diffbench 0...
    0
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
import traceback

from diffbench import __version__, commands
from diffbench.captions.java import JavaNotFoundError
from diffbench.extras import missing_extra_message
from diffbench.text import one_line

DEBUG_ENV = "DIFFBENCH_DEBUG"
#: the user's to fix: their files and folders, their options (ValueError covers the library's checks)
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError)


def command_modules() -> list[str]:
    """Names of the modules under ``diffbench.commands`` that define a top-level command."""
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
    parser.add_argument("--version", action="version", version=f"diffbench {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an internal error (also: {DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in command_modules():
        module = importlib.import_module(module_name)
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser


def _debug(args) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


#: what the machine says when it refuses a write: the user's to fix (free space, a writable folder)
ENVIRONMENT_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                      errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                      errno.EPERM: "operation not permitted", errno.EMFILE: "too many open files",
                      errno.ENAMETOOLONG: "a file name is too long",
                      errno.EFBIG: "a file is larger than this process may write (ulimit -f)"}


def _transport_error(err: BaseException) -> bool:
    """A network failure of httpx (or huggingface_hub's httpx2): nothing answered, or the answer broke off."""
    return any(cls.__name__ == "TransportError" and cls.__module__.split(".")[0] in ("httpx", "httpx2")
               for cls in type(err).__mro__)


def environment_problem(err: BaseException) -> str | None:
    """One line saying what the machine or the network refused, or ``None`` when ``err`` is something else.

    >>> environment_problem(OSError(errno.ENOSPC, "No space left on device", "/out/results.json"))
    'the disk is full: /out/results.json (No space left on device); free some space and run it again'
    >>> environment_problem(KeyError("x")) is None
    True
    """
    if _transport_error(err):
        return (f"the network failed ({type(err).__name__}: {err}); this step needs the server to answer: "
                "check the address and your connection, or run it where the network is reachable")
    if type(err).__name__ == "OfflineModeIsEnabled" or (isinstance(err, ConnectionError)):
        return f"{err}; this step needs the network (HF_HUB_OFFLINE is set, or no connection)"
    if isinstance(err, OSError) and err.errno is None and str(err).startswith("Not enough disk space"):
        # datasets' own free-space check before a build (no errno, no path): the datasets cache is full
        return f"the disk is full ({err}) in the datasets cache (HF_DATASETS_CACHE / HF_HOME); free some space and run it again"
    if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:
        where = f": {err.filename}" if err.filename else ""
        fix = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
               errno.EROFS: "choose a writable folder (or cache: HF_HOME)", errno.EFBIG: "raise the limit (ulimit -f)",
               errno.EMFILE: "raise the limit (ulimit -n)",
               errno.ENAMETOOLONG: "choose a shorter path"}.get(err.errno, "check the folder's permissions")
        return f"{ENVIRONMENT_ERRNOS[err.errno]}{where} ({err.strerror}); {fix} and run it again"
    return None


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
    except Exception as err:  # noqa: BLE001 -- every failure: one line, the traceback on request
        if _debug(args):
            traceback.print_exc()
        problem = user_problem(err, args.command)
        if problem is not None:  # the user's to fix: one clear line, no traceback
            print(f"{prefix}: error: {one_line(problem)}", file=sys.stderr)
            return 2
        hint = "" if _debug(args) else f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"
        print(f"{prefix}: internal error: {type(err).__name__}: {one_line(err)}{hint}", file=sys.stderr)
        return 1


def user_problem(err: BaseException, command: str | None = None) -> str | None:
    """What the user can fix, said in one line (exit 2), or ``None`` for a fault of ours (exit 1):
    a missing extra, the machine or the network refusing, bad input, no Java."""
    if isinstance(err, ModuleNotFoundError):
        return missing_extra_message(err, command)
    environment = environment_problem(err)
    if environment is not None:
        return environment
    if isinstance(err, (*USER_ERRORS, JavaNotFoundError)):
        return str(err)
    return None


if __name__ == "__main__":
    sys.exit(main())
