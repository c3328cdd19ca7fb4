"""The OpenAI-compatible backend against hostile servers, keys and addresses (issue 23).

Every case is fed for real: a scripted HTTP server on 127.0.0.1 (``Script`` in tests/backends/test_openai_chat.py)
answers with what a broken or hostile server sends (keys echoed back, a day of Retry-After, one byte at
a time, 20 MB, 200k-deep JSON, content that is not text), or nothing listens at all; the client and
``diffbench eval --api-base`` must end in one line, never show or write the key, and count a malformed
answer instead of dropping it silently.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
import time
import tracemalloc
import traceback

import pytest
from test_openai_chat import SECRET, Script, files_under, free_port, ok, prompt_of, scripted  # noqa: F401

from diffbench.backends.openai_chat import (MALFORMED_WARNINGS, MAX_ANSWER_BYTES, MAX_RETRY_AFTER_S, RETRY_BUDGET_S,
                                            ChatAPIError, ChatRequest, OpenAIChatClient)
from diffbench.cli import main

KEY_ENV = "DIFFBENCH_HOSTILE_KEY"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


def no_key_prefix(text: str) -> bool:
    """Neither the key nor any run of its first 8 or more characters is in ``text``."""
    return SECRET[:8] not in text


def leaked_anywhere(err: BaseException) -> bool:
    return not no_key_prefix("".join(traceback.format_exception(err)))


def eval_args(base_url: str, out, *extra: str) -> list[str]:
    return ["eval", "vismin", "--api-base", base_url, "--model", "m", "--api-key-env", KEY_ENV, "--limit", "2",
            "--batch-size", "2", "--num-workers", "0", "--out", str(out), "--no-progress", *extra]


def raw_answer(head: bytes, body_chunks, pause: float = 0.0):
    """A handler writer: ``head`` (status line and headers) at once, then each body chunk, ``pause`` apart."""
    def write(handler):
        handler.wfile.write(head)
        handler.wfile.flush()
        for chunk in body_chunks:
            time.sleep(pause)
            handler.wfile.write(chunk)
            handler.wfile.flush()
    return write


# -- the key -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [SECRET + "\r", SECRET + "\n", "\t" + SECRET, SECRET[:10] + "é" + SECRET[10:],
                                 SECRET + " ", "sk-\u202eevil"])
def test_a_key_with_a_control_or_non_ascii_character_is_refused_naming_the_variable(scripted, monkeypatch, bad):
    script = Script(lambda n, body, headers: ok("A"))
    base = scripted(script)
    monkeypatch.setenv(KEY_ENV, bad)
    with pytest.raises(ValueError) as err:
        with OpenAIChatClient(base, "m", api_key_env=KEY_ENV, timeout=5) as client:
            client.generate([ChatRequest("q")])
    message = str(err.value)
    assert KEY_ENV in message and len(message.splitlines()) == 1
    assert SECRET[:8] not in message and "evil" not in message
    assert not leaked_anywhere(err.value)
    assert script.requests == []  # refused when read, before anything is sent


def test_the_cli_refuses_a_key_read_from_a_file_with_its_line_break(scripted, vismin_built, tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv(KEY_ENV, SECRET + "\r\n")
    assert main(eval_args(scripted(Script(lambda n, body, headers: ok("A"))), tmp_path / "out")) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("diffbench eval: error: ") and KEY_ENV in last and "line break" in last
    assert no_key_prefix(err)


@pytest.mark.parametrize("offset", [450, 458, 464, 468, 474, 480, 484, 490])
def test_an_error_quoting_the_key_near_the_cut_is_redacted_before_it_is_cut(scripted, key, offset):
    """The key, or the run of its first characters a cut leaves, is never in the message: plain-text and
    JSON bodies (both cut to 500 characters: the cut falls in the key for some offsets of each), and a
    server that cut the key itself."""
    quoted = "x" * offset + f" Bearer {SECRET} rejected"
    bodies = [quoted.encode(), {"unexpected": quoted}, {"error": {"message": f"key {SECRET[:13]}... rejected"}}]
    for body in bodies:
        base = scripted(Script(lambda n, b, headers: (400, {}, body)))
        with OpenAIChatClient(base, "m", api_key_env=KEY_ENV, timeout=5) as client:
            with pytest.raises(ChatAPIError) as err:
                client.generate([ChatRequest("q")])
        assert err.value.status == 400 and no_key_prefix(str(err.value)), str(err.value)[-60:]
        assert not leaked_anywhere(err.value)
    assert "key ***... rejected" in str(err.value)


def test_a_server_echoing_the_key_in_its_answer_never_gets_it_written(scripted, key, tmp_path, caplog):
    def echo(n, body, headers):
        status, extra, payload = ok(f"A, and your key is {headers['Authorization']}")
        payload["model"] = headers["Authorization"]  # in every field the cache keeps
        payload["choices"][0]["finish_reason"] = SECRET
        payload["usage"] = {"completion_tokens": 1, SECRET: 2, "details": {"x": SECRET}}
        return status, extra, payload

    caplog.set_level(logging.DEBUG)  # httpx and httpcore log at DEBUG too
    with OpenAIChatClient(scripted(Script(echo)), "m", api_key_env=KEY_ENV, cache_dir=tmp_path, timeout=5) as client:
        answers = client.generate([ChatRequest("q")])
        assert no_key_prefix(repr(client))
    assert answers == ["A, and your key is Bearer ***"]
    assert files_under(tmp_path) and not any(SECRET[:8] in p.read_text() for p in files_under(tmp_path))
    assert no_key_prefix(caplog.text)


def test_eval_never_writes_a_key_the_server_echoes(scripted, key, vismin_built, tmp_path, caplog, capsys):
    script = Script(lambda n, body, headers: ok(f"A {headers['Authorization']}"))
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG)
    assert main(eval_args(scripted(script), out)) == 0
    assert script.requests and all(h["Authorization"] == f"Bearer {SECRET}" for _, h in script.requests)
    generations = (out / "generations.jsonl").read_text()
    assert "Bearer ***" in generations
    written = files_under(out)
    assert {"vismin_answers.csv", "generations.jsonl", "run.json"} <= {p.name for p in written}
    assert any(p.parent.parent.name == "api-cache" for p in written)
    assert not any(SECRET[:8] in p.read_text(errors="replace") for p in written)
    assert no_key_prefix(caplog.text) and no_key_prefix(capsys.readouterr().err)


# -- waiting: Retry-After, the retry budget, a whole-request deadline ---------------------------------------

@pytest.mark.timeout(30)
def test_a_retry_after_of_a_day_fails_at_once_in_one_line(scripted, tmp_path):
    script = Script(lambda n, body, headers: (429, {"Retry-After": "86400"}, {"error": {"message": "quota\nused"}}))
    with OpenAIChatClient(scripted(script), "m", cache_dir=tmp_path, timeout=5) as client:
        started = time.monotonic()
        with pytest.raises(ChatAPIError) as err:
            client.generate([ChatRequest("q")])
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "86400" in message and f"{RETRY_BUDGET_S:.0f} s" in message
    assert err.value.status == 429 and len(script.requests) == 1


@pytest.mark.timeout(30)
def test_retry_after_is_capped_and_a_request_retries_for_a_bounded_time(scripted):
    assert MAX_RETRY_AFTER_S == 60 and RETRY_BUDGET_S == 600  # the documented constants
    # Asked to wait 20 s, within the budget: waited only the cap (0.2 s here), then answered.
    capped = Script(lambda n, body, headers: (503, {"Retry-After": "20"}, {}) if n == 0 else ok("A"))
    with OpenAIChatClient(scripted(capped), "m", retry_after_max=0.2, timeout=5) as client:
        started = time.monotonic()
        assert client.generate([ChatRequest("q")]) == ["A"]
        assert time.monotonic() - started < 3
    # Always busy: retried (max_retries allows 100) until the budget (1.5 s) is spent, then one line.
    busy = Script(lambda n, body, headers: (429, {"Retry-After": "0.3"}, {"error": {"message": "busy"}}))
    with OpenAIChatClient(scripted(busy), "m", max_retries=100, retry_budget=1.5, timeout=5) as client:
        started = time.monotonic()
        with pytest.raises(ChatAPIError, match="busy.*1.5 s") as err:
            client.generate([ChatRequest("q")])
        took = time.monotonic() - started
    assert 1.0 < took < 3 and 3 <= len(busy.requests) <= 7
    assert len(str(err.value).splitlines()) == 1


def dribbled_body(n, body, headers):
    """Headers at once, then a 200-byte body one byte every 0.2 s (40 s in all)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    return 200, {}, raw_answer(head, [b" "] * 200, pause=0.2)


def dribbled_headers(n, body, headers):
    """The status line, then one header byte every 0.2 s."""
    return 200, {}, raw_answer(b"HTTP/1.1 200 OK\r\n", [bytes([c]) for c in b"X-Slow: " + b"y" * 200], pause=0.2)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("respond", [dribbled_body, dribbled_headers])
def test_a_server_dribbling_bytes_meets_a_whole_request_deadline(scripted, respond):
    script = Script(respond)
    with OpenAIChatClient(scripted(script), "m", timeout=2, max_retries=0) as client:
        started = time.monotonic()
        with pytest.raises(ChatAPIError, match="within 2 s") as err:
            client.generate([ChatRequest("q")])
        took = time.monotonic() - started
    assert took < 3.5, took
    assert len(str(err.value).splitlines()) == 1
    # Retried, each try cut at its deadline: the request ends within tries * timeout (+ backoff).
    with OpenAIChatClient(scripted(Script(respond)), "m", timeout=1, max_retries=1, backoff_base=0.01) as client:
        started = time.monotonic()
        with pytest.raises(ChatAPIError, match="gave up after 1 retries"):
            client.generate([ChatRequest("q")])
        assert time.monotonic() - started < 3.5


# -- malformed answers: counted, warned, empty, not cached -------------------------------------------

def huge_answer(declared: bool):
    """A valid answer of 20 MB, streamed in 64 KB pieces, with or without a Content-Length."""
    size = 20 * 2**20
    head = b'{"choices": [{"message": {"content": "'
    tail = b'"}}]}'
    piece = b"a" * 2**16
    pieces = [head, *[piece] * (size // len(piece)), tail]
    length = sum(len(p) for p in pieces)
    framing = f"Content-Length: {length}\r\n" if declared else "Connection: close\r\n"
    status = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n".encode()
    return lambda n, body, headers: (200, {}, raw_answer(status, pieces))


DEEP = b"[" * 200_000 + b"]" * 200_000


@pytest.mark.parametrize("name, respond, why", [
    ("20 MB, declared", huge_answer(declared=True), "over"),
    ("20 MB, streamed", huge_answer(declared=False), "over"),
    ("200k-deep JSON", lambda n, body, headers: (200, {}, DEEP), "deep"),
    ("content is a dict", lambda n, body, headers: (200, {}, {"choices": [{"message": {"content": {"a": 1}}}]}),
     "object"),
    ("content parts hold no text", lambda n, body, headers: (200, {}, {"choices": [{"message": {
        "content": [{"type": "text", "text": ["A"]}]}}]}), "text"),
    ("no choices", lambda n, body, headers: (200, {}, {"error": {"message": "upstream failed"}}), "upstream failed"),
    ("not JSON", lambda n, body, headers: (200, {}, b"<html>gateway</html>"), "JSON"),
])
@pytest.mark.timeout(60)
def test_a_malformed_answer_is_counted_warned_empty_and_not_cached(scripted, tmp_path, caplog, name, respond, why):
    """One bad answer among good ones: "" for it (VisMin's parser then scores it unparseable), a warning
    naming the request, the count on the client, nothing cached for it (a rerun asks it again)."""
    def answer(n, body, headers):
        return respond(n, body, headers) if prompt_of(body) == "bad" else ok(prompt_of(body).upper())

    script = Script(answer)
    requests = [ChatRequest("one"), ChatRequest("bad", label="sample object/7, turn 3"), ChatRequest("two")]
    caplog.set_level(logging.WARNING, logger="diffbench.backends.openai_chat")
    tracemalloc.start()
    try:
        with OpenAIChatClient(scripted(script), "m", cache_dir=tmp_path, concurrency=1, timeout=20) as client:
            answers = client.generate(requests)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answers == ["ONE", "", "TWO"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "request 1 (sample object/7, turn 3)" in warnings[0] and why in warnings[0]
    assert client.malformed_answers == 1
    assert len(files_under(tmp_path)) == 2  # the good two only
    assert peak < 12 * 2**20, f"{peak / 2**20:.0f} MiB held for one answer"  # bounded: never the whole 20 MB
    with OpenAIChatClient(scripted(script), "m", cache_dir=tmp_path, timeout=20) as client:
        asked = len(script.requests)
        client.generate(requests)
        assert len(script.requests) == asked + 1 and client.malformed_answers == 1  # asked again


def test_a_server_sending_only_malformed_answers_is_counted_without_flooding_the_log(scripted, caplog):
    script = Script(lambda n, body, headers: (200, {}, {"choices": [{"message": {"content": 7}}]}))
    caplog.set_level(logging.WARNING, logger="diffbench.backends.openai_chat")
    with OpenAIChatClient(scripted(script), "m", concurrency=4, timeout=5) as client:
        assert client.generate([ChatRequest(str(i)) for i in range(30)]) == [""] * 30
    assert client.malformed_answers == 30
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == MALFORMED_WARNINGS and "counted in silence" in warnings[-1]


def test_the_answer_bound_is_documented_and_an_error_body_is_bounded_too(scripted):
    assert MAX_ANSWER_BYTES == 2**20
    deep = Script(lambda n, body, headers: (400, {}, DEEP))
    with OpenAIChatClient(scripted(deep), "m", timeout=5) as client:
        with pytest.raises(ChatAPIError, match="HTTP 400") as err:
            client.generate([ChatRequest("q")])
    assert len(str(err.value)) < 700
    huge = Script(lambda n, body, headers: (500, {}, b"x" * (3 * 2**20)))
    with OpenAIChatClient(scripted(huge), "m", max_retries=0, timeout=5) as client:
        with pytest.raises(ChatAPIError, match="HTTP 500.*over 1048576 bytes"):
            client.generate([ChatRequest("q")])


def test_eval_records_how_many_answers_were_malformed(scripted, vismin_built, tmp_path, capsys):
    def answer(n, body, headers):
        if "First" in prompt_of(body):  # the image questions: content as a dict
            return 200, {}, {"choices": [{"message": {"content": {"answer": "First"}}}]}
        return ok("A")

    script = Script(answer)
    base = scripted(script)
    out = tmp_path / "out"
    assert main(eval_args(base, out)) == 0
    err = capsys.readouterr().err
    assert "4 malformed answers" in err
    run = json.loads((out / "run.json").read_text())
    assert run["environment"]["api_malformed_answers"] == 4
    results = json.loads((out / "results.json").read_text())
    assert results["unparseable_answers"] == 4
    with open(out / "vismin_answers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["Image_Q0"], r["Image_Q1"]) for r in rows] == [("", ""), ("", "")]
    # Not cached: a fresh run over the same cache asks exactly those four again.
    asked = len(script.requests)
    assert main(eval_args(base, out, "--overwrite")) == 0
    assert len(script.requests) == asked + 4


# -- addresses ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["ftp://x", "file:///etc/passwd", "127.0.0.1:8000/v1", "http://", "https://u:p@h/v1"])
def test_an_api_base_that_is_not_an_http_url_is_one_line_exit_2(url, vismin_built, tmp_path, capsys):
    assert main(["eval", "vismin", "--api-base", url, "--model", "m", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--api-base" in err[0] and "internal error" not in err[0]
    assert ("http or https" in err[0]) or ("host" in err[0]) or ("user" in err[0])
    with pytest.raises(ValueError):
        OpenAIChatClient(url, "m")


@pytest.mark.timeout(60)
def test_nothing_listening_fails_in_seconds_saying_so(vismin_built, tmp_path, capsys):
    base = f"http://127.0.0.1:{free_port()}/v1"
    with OpenAIChatClient(base, "m", timeout=5) as client:
        started = time.monotonic()
        with pytest.raises(ChatAPIError, match="nothing answers at http://127.0.0.1"):
            client.generate([ChatRequest(str(i)) for i in range(6)])
        assert time.monotonic() - started < 3
    started = time.monotonic()
    assert main(eval_args(base, tmp_path / "out")) == 2
    assert time.monotonic() - started < 30  # the dataset loads; no retrying
    err = capsys.readouterr().err.strip().splitlines()
    assert "nothing answers at" in err[-1] and "internal error" not in err[-1]


@pytest.mark.timeout(60)
def test_a_connection_refused_after_earlier_answers_is_retried(scripted, caplog):
    """A server that answered and then went away (a restart) is worth a few retries, not a stop at once."""
    base = scripted(Script(lambda n, body, headers: ok("A")))
    caplog.set_level(logging.WARNING, logger="diffbench.backends.openai_chat")
    with OpenAIChatClient(base, "m", max_retries=2, backoff_base=0.05, timeout=5) as client:
        assert client.generate([ChatRequest("q")]) == ["A"]
        scripted.stop(base)
        with pytest.raises(ChatAPIError, match="gave up after 2 retries") as err:
            client.generate([ChatRequest("r")])
    assert "nothing answers" not in str(err.value)
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 2


# -- the connections ---------------------------------------------------------------------------------

def test_requests_reuse_their_connections(scripted):
    """A try's deadline is kept per connection (a connection per worker thread, kept alive): twelve
    requests, three in flight, open at most three connections."""
    script = Script(lambda n, body, headers: ok(prompt_of(body)), delay=0.05)
    with OpenAIChatClient(scripted(script), "m", concurrency=3, timeout=5) as client:
        assert client.generate([ChatRequest(str(i)) for i in range(12)]) == [str(i) for i in range(12)]
    assert script.connections <= 3 and script.max_in_flight == 3


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (the openssl command): (certificate file, key file)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


@pytest.mark.timeout(60)
def test_over_https_a_dribbling_server_meets_the_deadline_and_a_refused_certificate_says_so(scripted, certificate,
                                                                                             monkeypatch):
    base = scripted(Script(lambda n, body, headers: dribbled_body(n, body, headers) if prompt_of(body) == "slow"
                           else ok("A")), tls=certificate)
    with OpenAIChatClient(base, "m", timeout=5) as client:  # a certificate nobody vouches for: said at once
        with pytest.raises(ChatAPIError, match=r"cannot connect to https://127.0.0.1:\d+/v1 securely"):
            client.generate([ChatRequest("q")])
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])  # httpx trusts it (as a company's CA bundle)
    with OpenAIChatClient(base, "m", timeout=2, max_retries=0) as client:
        assert client.generate([ChatRequest("fast")]) == ["A"]
        started = time.monotonic()
        with pytest.raises(ChatAPIError, match="within 2 s"):
            client.generate([ChatRequest("slow")])
        assert time.monotonic() - started < 3.5
        assert client.generate([ChatRequest("fast again")]) == ["A"]  # the cut connection is replaced
