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


def test_an_unknown_dataset_is_named_never_advised_to_be_built(tmp_path):
    predictions = tmp_path / "predictions.json"
    predictions.write_text("{}")
    done = _run("score", "captions", str(predictions), "--dataset", "nope", "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith("diffbench score captions: error: unknown dataset 'nope'; known: ")
    assert "spot_the_diff" in done.stderr and "diffbench build nope" not in done.stderr


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


# -- issue 23: the machine's refusals are the user's to fix; text from users never runs in a terminal -----


def _mount_tmpfs(path, options: str) -> bool:
    """A tmpfs at ``path`` (tests run as root on CI; elsewhere the test is skipped, saying why)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


def _umount(path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_full_disk_is_exit_2_saying_so(tmp_path):
    full = tmp_path / "full"
    if not _mount_tmpfs(full, "size=64k"):
        pytest.skip("mounting a 64 KB tmpfs needs root")
    try:
        (full / "filler").write_bytes(b"\0" * 60_000)
        try:  # fill the last blocks
            (full / "rest").write_bytes(b"\0" * 65_536)
        except OSError:
            pass
        done = _run("build", "omnidiff", "--source", "sample", "--n", "12", "--image-size", "32",
                    env={"HF_DATASETS_CACHE": str(full / "cache")})
    finally:
        _umount(full)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "internal error" not in line, line
    assert "the disk is full" in line and "free some space" in line, line


def test_a_read_only_cache_is_exit_2_saying_so(tmp_path):
    read_only = tmp_path / "ro"
    if not _mount_tmpfs(read_only, "ro,size=64k"):
        pytest.skip("mounting a read-only tmpfs needs root")
    try:
        done = _run("build", "omnidiff", "--source", "sample", "--n", "12", "--image-size", "32",
                    env={"HF_DATASETS_CACHE": str(read_only / "cache")})
    finally:
        _umount(read_only)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "internal error" not in line, line
    assert "read-only" in line and str(read_only) in line, line


def test_an_unreachable_server_is_exit_2(monkeypatch, capsys):
    import httpx

    def fail():
        httpx.get("http://127.0.0.1:9/", timeout=2)  # the discard port: nothing listens

    _with_command(monkeypatch, fail)
    assert cli.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert "the network failed (ConnectError" in err and "internal error" not in err


ESCAPES = "\x1b]0;pwned\x07\x1b[2J\u202egnp.exe"


def test_escape_sequences_in_a_submission_never_reach_the_terminal(tmp_path, capsys, vismin_built):
    """A submission id holding ANSI/OSC sequences and a bidi override: the error line shows them as text."""
    submission = tmp_path / "scores.csv"
    submission.write_text(f"id,T0_I0,T0_I1,T1_I0,T1_I1\nobject/0{ESCAPES},1,0,0,1\n", encoding="utf-8")
    assert cli.main(["score", "vismin", str(submission), "--allow-missing", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert "\\x1b]0;pwned\\x07" in err and "\\u202egnp.exe" in err


def test_escape_sequences_in_a_label_never_reach_the_terminal_or_the_table(tmp_path, capsys, vismin_built):
    from diffbench.data.building import load_built

    bench = load_built("vismin", "bench", "test")
    submission = tmp_path / "scores.csv"
    rows = "".join(f"{i},0.9,0.1,0.2,0.8\n" for i in bench["id"])
    submission.write_text("id,T0_I0,T0_I1,T1_I0,T1_I1\n" + rows, encoding="utf-8")
    out = tmp_path / "out"
    assert cli.main(["score", "vismin", str(submission), "--name", f"my{ESCAPES}", "--out", str(out)]) == 0
    shown = capsys.readouterr().out + (out / "results.md").read_text(encoding="utf-8")
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "my\\\\x1b" in shown  # the escape, itself escaped for Markdown
