"""The CLI's shell: how every command ends (exit codes, one line, tracebacks only on request)."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys

import pytest

from diffbench import cli


def _run(*argv, env=None, code=None):
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "diffbench", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_version():
    from diffbench import __version__

    done = _run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"diffbench {__version__}"


def test_a_user_error_is_one_line_and_exit_2(tmp_path):
    done = _run("score", "vismin", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"diffbench score vismin: error: no submission file at {tmp_path / 'nope.csv'}"
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2_without_a_traceback():
    done = _run("scroe")
    assert done.returncode == 2 and "invalid choice: 'scroe'" in done.stderr and "Traceback" not in done.stderr
    assert cli.main(["score", "vismin"]) == 2  # argparse's own exit, returned rather than raised


def _with_command(monkeypatch, func):
    """The real parser plus one command whose body is ``func`` (how an internal fault looks to main)."""
    real = cli.build_parser

    def build_parser():
        parser = real()
        sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
        sub.add_parser("boom").set_defaults(func=lambda args: func())
        return parser

    monkeypatch.setattr(cli, "build_parser", build_parser)


def test_an_internal_error_is_one_line_exit_1_and_debug_shows_the_traceback(monkeypatch, capsys):
    def fail():
        raise RuntimeError("index out of step\nsecond line")

    _with_command(monkeypatch, fail)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("diffbench boom: internal error: RuntimeError: index out of step; second line "
                           "(run with --debug or DIFFBENCH_DEBUG=1 for the traceback)")
    assert cli.main(["--debug", "boom"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise RuntimeError("index out of step' in err
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    assert cli.main(["boom"]) == 1 and "Traceback" in capsys.readouterr().err


def test_a_multi_line_user_error_is_joined(monkeypatch, capsys):
    def fail():
        raise ValueError("2 bad images:\n  object/3: truncated\n  object/9: not an image\n")

    _with_command(monkeypatch, fail)
    assert cli.main(["boom"]) == 2
    assert capsys.readouterr().err == ("diffbench boom: error: 2 bad images:; object/3: truncated; "
                                       "object/9: not an image\n")


def test_a_missing_optional_dependency_names_the_extra():
    code = ("import sys; sys.modules['gradio'] = None\n"  # as if gradio were not installed
            "from diffbench.cli import main; sys.exit(main(['space']))")
    done = _run(code=code)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("diffbench space: error: `diffbench space` needs the [space] extra: "
                                   "pip install 'diffbench[space]'")


def test_a_missing_module_of_no_extra_is_internal(monkeypatch, capsys):
    def fail():
        import diffbench_no_such_module  # noqa: F401

    _with_command(monkeypatch, fail)
    assert cli.main(["boom"]) == 1
    assert "internal error: ModuleNotFoundError" in capsys.readouterr().err


def test_interrupted(monkeypatch, capsys):
    def fail():
        raise KeyboardInterrupt

    _with_command(monkeypatch, fail)
    assert cli.main(["boom"]) == 130 and capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("command", ["eval", "score", "publish", "train"])
def test_every_command_that_writes_takes_out(command):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    target = sub.choices[command]
    if command == "score":
        targets = next(a for a in target._actions if a.__class__.__name__ == "_SubParsersAction")
        parsers = list(targets.choices.values())
    else:
        parsers = [target]
    for p in parsers:
        flags = {f for a in p._actions for f in a.option_strings}
        assert "--out" in flags and "--output-dir" not in flags, (p.prog, sorted(flags))


def test_doctests():
    failures, attempted = doctest.testmod(cli)
    assert attempted and not failures


def test_the_library_never_imports_the_commands():
    """Layers point one way: commands/ and the CLI import the library, never the reverse (issue 15 item 7)."""
    import ast
    from pathlib import Path

    import diffbench

    root = Path(diffbench.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if relative.parts[0] == "commands" or relative.name in ("cli.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == "diffbench.commands" or n.startswith("diffbench.commands.") or n == "diffbench.cli"
                   for n in names):
                offenders.append(f"{relative}:{node.lineno}")
    assert not offenders, offenders
