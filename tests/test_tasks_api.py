"""``diffbench eval vismin --api-base URL``: the task layer asking a real OpenAI-compatible server.

``transformers serve`` (the ``transformers[serving]`` extra) serves a tiny LLaVA built by
``diffbench.tiny_models`` on 127.0.0.1; the harness sends each official question with its image(s) as
data URIs, reads the answers with the lenient parser, caches every answer under ``--out`` (a rerun asks
nothing), and stops on a request the server refuses with the server's reason, keeping what it has.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base_url, model name) of ``transformers serve`` running a tiny LLaVA on loopback."""
    pytest.importorskip("fastapi", reason="transformers serve needs transformers[serving]")
    pytest.importorskip("uvicorn", reason="transformers serve needs transformers[serving]")
    found = Path(sys.executable).with_name("transformers")
    cli = str(found) if found.exists() else shutil.which("transformers")
    if cli is None:
        pytest.skip("the transformers CLI is not installed")
    from diffbench.tiny_models import build_tiny_image_text_to_text

    root = tmp_path_factory.mktemp("served")
    model_dir = str(build_tiny_image_text_to_text(root / "tiny-llava", seed=0))
    port = free_port()
    log = open(root / "serve.log", "wb")
    process = subprocess.Popen([cli, "serve", model_dir, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "warning"})
    try:
        import httpx

        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited: {(root / 'serve.log').read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not answer /health within 180 s")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", model_dir
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            try:
                os.killpg(process.pid, sig)  # its own session: only what it started
                process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        log.close()


def test_vismin_through_an_openai_compatible_server(served, vismin_built, tmp_path, capsys, monkeypatch, caplog):
    from diffbench.cli import main
    from diffbench.vismin_schema import ANSWER_COLUMNS

    base_url, model = served
    secret = "sk-diffbench-test-secret"
    monkeypatch.setenv("DIFFBENCH_TEST_KEY", secret)
    out = tmp_path / "api"
    args = ["eval", "vismin", "--api-base", base_url, "--model", model, "--api-key-env", "DIFFBENCH_TEST_KEY",
            "--max-new-tokens", "3", "--limit", "2", "--batch-size", "1", "--concurrency", "2", "--num-workers", "0",
            "--out", str(out), "--no-progress"]
    with caplog.at_level(logging.INFO, logger="diffbench.backends.openai_chat"):
        assert main(args) == 0
    assert [r for r in caplog.records if r.getMessage().startswith("asking")]  # the server was asked
    caplog.clear()
    err = capsys.readouterr().err
    assert "2 samples, 2 requests in flight" in err
    with open(out / "vismin_answers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and all(r[c] for r in rows for c in ANSWER_COLUMNS)  # served text, parsed when scored
    run = json.loads((out / "run.json").read_text())
    assert run["weights"] == {"source": "api", "api_base": base_url, "model": model} and run["dtype"] is None
    assert run["answer"] == "generate" and run["max_new_tokens"] == 3
    lines = (out / "generations.jsonl").read_text().splitlines()
    assert len(lines) == 8
    cached = list((out / "api-cache").rglob("*.json"))
    assert len(cached) == 8  # one answer a question
    written = [p for p in out.rglob("*") if p.is_file()]
    assert not any(secret in p.read_text(errors="replace") for p in written)  # the key is never written
    # Predictions lost, answers cached: the rerun asks the server nothing and writes the same answers.
    for name in ("vismin_answers.csv", "generations.jsonl", "results.json"):
        (out / name).unlink()
    with caplog.at_level(logging.INFO, logger="diffbench.backends.openai_chat"):
        assert main(args) == 0
    assert not [r for r in caplog.records if r.getMessage().startswith("asking")]
    with open(out / "vismin_answers.csv", newline="") as handle:
        assert list(csv.DictReader(handle)) == rows
    assert len(list((out / "api-cache").rglob("*.json"))) == 8
    # A request the server refuses (a model it does not serve: 400) stops the run in one line.
    capsys.readouterr()
    bad = ["eval", "vismin", "--api-base", base_url, "--model", "not-the-served-model", "--max-new-tokens", "3",
           "--limit", "1", "--num-workers", "0", "--out", str(tmp_path / "refused"), "--no-progress"]
    assert main(bad) == 2
    message = capsys.readouterr().err.strip().splitlines()
    assert message[-1].startswith("diffbench eval: error: the API refused a request (HTTP 400)")
    assert "not-the-served-model" in message[-1]
