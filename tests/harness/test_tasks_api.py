"""``diffbench eval vismin --api-base URL``: the task layer asking a real OpenAI-compatible server.

``transformers serve`` (the ``transformers[serving]`` extra) serves a tiny LLaVA built by
``diffbench.models.tiny`` on 127.0.0.1; the harness sends each official question with its image(s) as
data URIs, reads the answers with the lenient parser, caches every answer under ``--out`` (a rerun asks
nothing), and stops on a request the server refuses with the server's reason, keeping what it has.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def served(transformers_server):
    """The session's ``transformers serve`` (tests/conftest.py: ``transformers_server``)."""
    return transformers_server


def test_vismin_through_an_openai_compatible_server(served, vismin_built, tmp_path, capsys, monkeypatch, caplog):
    from diffbench.cli import main
    from diffbench.vismin.schema import ANSWER_COLUMNS

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


#: run in a subprocess: the [eval] extra's packages made unimportable, as where only ``pip install diffbench[api]``
#: was done
NO_TORCH = """
import sys
EVAL_EXTRA = ("torch", "torchvision", "transformers", "accelerate")
for name in EVAL_EXTRA:
    sys.modules[name] = None  # `import torch` raises ImportError
from diffbench.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in EVAL_EXTRA and sys.modules[m] is not None)
assert not loaded, loaded
sys.exit(code)
"""


def test_an_api_run_imports_no_torch(served, vismin_built, tmp_path):
    """--api-base needs no torch (nor transformers, accelerate): the run answers, scores and writes its files
    with them unimportable."""
    from diffbench.vismin.schema import ANSWER_COLUMNS

    base_url, model = served
    out = tmp_path / "no-torch"
    args = ["eval", "vismin", "--api-base", base_url, "--model", model, "--max-new-tokens", "3", "--limit", "2",
            "--num-workers", "2", "--out", str(out), "--no-progress"]
    done = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OPENAI_API_KEY": "unused", "TRANSFORMERS_VERBOSITY": "error"})
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "vismin_answers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and all(r[c] for r in rows for c in ANSWER_COLUMNS)
    assert json.loads((out / "results.json").read_text())["unparseable_answers"] >= 0
