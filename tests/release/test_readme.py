"""The README runs as written, top to bottom, offline (issue 21).

The walk-through is every ```bash and ```python block from ``## Install`` to the end of ``## On the real
data``. Its commands run in order in one fresh temporary folder (a fresh clone's root holds nothing they
read) with a private ``HF_HOME``, ``DIFFBENCH_DATA_DIR`` and ``HF_HUB_OFFLINE=1``, this environment's
``diffbench`` and ``python`` first on ``PATH``; each must exit 0. Exactly the lines whose trailing comment
says they need the network, a token or a GPU are skipped (a Python block: its first line says so), and
every line that reads the Hub, a package index or a remote model must say so.

Two stand-ins: ``make demo`` needs the network to create ``.venv`` and install into it, so what it runs once
installed, ``diffbench demo``, runs in its place (the install itself is not run here); and the line that
``serves ... until Ctrl-C`` (``diffbench space``) is started, must answer HTTP 200 at the address it prints,
and is then stopped. About 1.5 minutes on 2 cores at load ~3 (half of it ``diffbench demo``).
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO_ROOT

FIRST_SECTION, LAST_SECTION = "## Install", "## On the real data"
#: what a skipped line's trailing comment starts with
NEEDS = re.compile(r"^needs (?:the network|an? (?:Hub )?token|a GPU|\d+ GPUs)\b")
#: what reads the Hub, a package index or a remote model (a Hub id: ORG/NAME, not a folder under runs/)
REMOTE = re.compile(r"--source hub|--push|--preset|pip install|hf download|lmms-eval --model|simple_evaluate"
                    r"|--model (?!runs/)[\w.-]+/[\w.-]+|^make (?:demo|test)\b")
#: placeholders a reader would have to replace
PLACEHOLDER = re.compile(r"\b(?:DIR|NAME|MODEL|LABEL|PATH|PRESET|OUT|you)/?\b|\.\.\.|<[a-z_]+>")
#: lines that need the network here but whose offline part runs in their place
STAND_INS = {"make demo": "diffbench demo"}
SERVES = "until Ctrl-C"


@dataclass
class Step:
    kind: str  # "bash" or "python"
    code: str  # one shell command (continuations joined) or one Python block
    comment: str  # the trailing comment (bash) or the first line's comment (python), "" if none

    @property
    def needs(self) -> bool:
        return bool(NEEDS.match(self.comment))


def walkthrough() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n{FIRST_SECTION}\n")
    last = text.index(f"\n{LAST_SECTION}\n")
    end = text.find("\n## ", last + 1)
    return text[start:end if end != -1 else len(text)]


def split_comment(line: str) -> tuple[str, str]:
    """``'cmd --x "a # b"   # says'`` -> ``('cmd --x "a # b"', 'says')``: the first ``#`` after a space, outside
    quotes."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def shell_commands(block: str) -> list[Step]:
    steps, pending = [], ""
    for line in block.splitlines():
        if pending:
            line = pending + " " + line.strip()
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1].rstrip()
            continue
        pending = ""
        code, comment = split_comment(line)
        if code:
            steps.append(Step("bash", code, comment))
    return steps


def steps() -> list[Step]:
    found = []
    for kind, block in re.findall(r"```(bash|python)\n(.*?)```", walkthrough(), re.S):
        if kind == "bash":
            found += shell_commands(block)
        else:
            first = block.lstrip().splitlines()[0]
            found.append(Step("python", block, first[1:].strip() if first.startswith("#") else ""))
    return found


def test_every_walkthrough_line_runs_offline_or_says_what_it_needs():
    """The lines that read the Hub, an index or a remote model are the ones that say so; nothing else is
    skipped, and no line run holds a placeholder."""
    all_steps = steps()
    assert len(all_steps) > 25 and all_steps[0].code == "make demo"
    for step in all_steps:
        if REMOTE.search(step.code):
            assert step.needs, f"reads the network but does not say so: {step.code}"
        code = "\n".join(split_comment(line)[0] for line in step.code.splitlines())
        if not step.needs:
            assert not PLACEHOLDER.search(code), f"placeholder in a line the walk-through runs: {step.code}"
    assert [s.code for s in all_steps if s.needs and s.code in STAND_INS] == ["make demo"]
    assert sum(not s.needs for s in all_steps) > 15  # most of it runs offline


def serve_then_stop(command: str, cwd: Path, env: dict) -> None:
    """Start a command that serves until stopped, fetch the address it prints, stop it."""
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"},
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue = queue.Queue()

    def read_lines() -> None:  # on a thread: the wait for the address needs a timeout a pipe read lacks
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read_lines, daemon=True).start()
    seen, deadline = [], time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert process.poll() is None, f"{command} exited {process.returncode}: {''.join(seen)[-3000:]}"
                continue
            address = re.search(r"Running on local URL:\s+(http://\S+)", seen[-1])
            if address:
                direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
                with direct.open(address.group(1), timeout=60) as answer:
                    assert answer.status == 200
                return
        pytest.fail(f"{command} printed no address in 240 s: {''.join(seen)[-3000:]}")
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.mark.slow
def test_readme_walkthrough_runs_offline(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
           "DIFFBENCH_DATA_DIR": str(tmp_path / "data"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("HF_DATASETS_CACHE", None)
    env.pop("HF_MODULES_CACHE", None)
    work = tmp_path / "clone"
    work.mkdir()
    ran = []
    for step in steps():
        code = STAND_INS.get(step.code, None if step.needs else step.code)
        if code is None:
            continue
        started = time.monotonic()
        if SERVES in step.comment:
            serve_then_stop(code, work, env)
        else:
            argv = ["bash", "-c", code] if step.kind == "bash" else [sys.executable, "-c", code]
            done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"README step exited {done.returncode}:\n{code}\n{done.stderr[-3000:]}"
        ran.append(f"{time.monotonic() - started:6.1f} s  {code.splitlines()[0][:90]}")
    print("\n".join(ran))
    # The files later steps read are the ones earlier steps made.
    for made in ("runs/demo-vismin-diffbench-tiny-clip/vismin_scores.csv", "vismin-hub/README.md",
                 "runs/spot-captions/results.json", "runs/tiny/eval.json", "runs/embedded-vs-tiny/compare.json"):
        assert (work / made).is_file(), made
