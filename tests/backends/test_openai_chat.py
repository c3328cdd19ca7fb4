"""The OpenAI-compatible chat backend against real servers on loopback.

- ``transformers serve`` serving a tiny LLaVA built by ``diffbench.models.tiny``: the real protocol,
  images as data URIs, the cache, resuming, and a real 400.
- A small ``http.server`` started here (127.0.0.1, a free port, daemon thread, shut down at the end) that
  answers what each test scripts: 429 with Retry-After, 5xx, 401, and how many requests are in flight.
"""

from __future__ import annotations

import base64
import doctest
import importlib
import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from diffbench.backends.openai_chat import ChatAPIError, ChatRequest, OpenAIChatClient

SECRET = "sk-diffbench-test-4f1d9c2b7e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def image(color) -> Image.Image:
    return Image.new("RGB", (40, 30), color)


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


# -- transformers serve ------------------------------------------------------------------------------

@pytest.fixture
def served_model(transformers_server):
    """The session's ``transformers serve`` (tests/conftest.py: ``transformers_server``)."""
    return transformers_server


def test_a_missing_serving_extra_fails_under_ci_and_skips_elsewhere(monkeypatch):
    """The served tests' dependencies: a skip with the reason locally, a failure under CI (CI=true), where a
    packaging regression must not pass as a skip."""
    from conftest import require_module

    missing = "diffbench_no_such_serving_module"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="transformers serve needs"):
        require_module(missing, "transformers serve needs transformers[serving]")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"{missing} does not import under CI"):
        require_module(missing, "transformers serve needs transformers[serving]")
    assert require_module("json", "always there").dumps([]) == "[]"


@pytest.mark.slow
def test_transformers_serve_answers_with_images_and_a_rerun_reads_the_cache(served_model, tmp_path, monkeypatch, caplog):
    base_url, model = served_model
    monkeypatch.setenv("DIFFBENCH_TEST_KEY", SECRET)  # transformers serve ignores it; it must never be written
    requests = [
        ChatRequest("Does this image best match: (A) a red box, or (B) a blue box? Choices: A, B.", (image("red"),)),
        ChatRequest('Which image better aligns with the description: "a red box"? Choices: First, Second.',
                    (image("red"), image("blue"))),
        ChatRequest("Does this image best match: (A) a red box, or (B) a blue box? Choices: A, B.", (image("blue"),)),
    ]
    cache = tmp_path / "cache"
    seen = []
    caplog.set_level(logging.DEBUG)
    with OpenAIChatClient(base_url, model, api_key_env="DIFFBENCH_TEST_KEY", cache_dir=cache, concurrency=2,
                          max_new_tokens=6, timeout=60) as client:
        answers = client.generate(requests, on_answer=lambda i, text, cached: seen.append((i, cached)))
    assert len(answers) == 3 and all(isinstance(a, str) and a.strip() for a in answers)
    assert sorted(seen) == [(0, False), (1, False), (2, False)]
    entries = files_under(cache)
    assert len(entries) == 3
    record = json.loads(entries[0].read_text())
    assert record["finish_reason"] in ("length", "stop") and record["usage"]["completion_tokens"] <= 6

    # Rerun against a port where nothing listens: every answer comes from the cache, none is asked.
    with OpenAIChatClient(f"http://127.0.0.1:{free_port()}/v1", model, api_key_env="DIFFBENCH_TEST_KEY",
                          cache_dir=cache, max_new_tokens=6, max_retries=0, timeout=5) as offline:
        assert offline.generate(requests) == answers
    # Other generation settings are another question: asked again.
    with OpenAIChatClient(base_url, model, api_key_env="DIFFBENCH_TEST_KEY", cache_dir=cache, max_new_tokens=3) as client:
        assert client.cached(requests[0]) is None

    written = [p.read_text(errors="replace") for p in files_under(tmp_path)]
    assert not any(SECRET in text for text in written)
    assert SECRET not in caplog.text


@pytest.mark.slow
def test_a_400_from_transformers_serve_stops_the_run_and_keeps_the_answers(served_model, tmp_path):
    base_url, model = served_model
    cache = tmp_path / "cache"
    first = ChatRequest("Does this image best match: (A) a, or (B) b? Choices: A, B.", (image("green"),))
    with OpenAIChatClient(base_url, model, cache_dir=cache, max_new_tokens=4, timeout=60) as client:
        kept = client.generate([first])
    # The server is pinned to its model: another name is refused with 400 and the server's reason.
    with OpenAIChatClient(base_url, "not-the-served-model", cache_dir=cache, max_new_tokens=4, timeout=60) as other:
        with pytest.raises(ChatAPIError) as err:
            other.generate([ChatRequest("Choices: A, B.", (image("green"),))])
    assert err.value.status == 400 and "not-the-served-model" in str(err.value)
    assert err.value.answers == [None]
    with OpenAIChatClient(base_url, model, cache_dir=cache, max_new_tokens=4, timeout=60) as client:
        assert client.cached(first) == kept[0]


# -- a scripted server -------------------------------------------------------------------------------

class Script:
    """What the scripted server answers; records every request it got.

    ``respond(number, body, headers)`` returns ``(status, headers, payload)``: a payload is sent as JSON,
    bytes as they are, and a callable ``payload(handler)`` writes the whole answer itself (status line,
    headers, body: slow, huge or broken answers)."""

    def __init__(self, respond, delay: float = 0.0):
        self.respond = respond
        self.delay = delay
        self.requests = []
        self.in_flight = 0
        self.connections = 0  # connections opened to it (a client keeping its connections alive opens few)
        self.max_in_flight = 0
        self.lock = threading.Lock()


def ok(text: str):
    return 200, {}, {"model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": text}}]}


@pytest.fixture
def scripted():
    """``scripted(script)`` starts a server answering ``script`` and returns its base URL;
    ``scripted.stop(base_url)`` shuts it down."""
    servers = {}

    def start(script: Script, tls: tuple | None = None) -> str:
        """``tls``: (certificate file, key file) to serve https."""
        connections = []
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real API servers do
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between the headers and the body

            def setup(self):
                super().setup()
                connections.append(self.connection)
                with script.lock:
                    script.connections += 1

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with script.lock:
                    number = len(script.requests)
                    script.requests.append((body, dict(self.headers)))
                    script.in_flight += 1
                    script.max_in_flight = max(script.max_in_flight, script.in_flight)
                try:
                    time.sleep(script.delay)
                    status, headers, payload = script.respond(number, body, dict(self.headers))
                finally:
                    with script.lock:
                        script.in_flight -= 1
                if callable(payload):
                    self.close_connection = True
                    try:
                        payload(self)
                    except (BrokenPipeError, ConnectionResetError):  # the client gave up on it
                        pass
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep the test output clean
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        base_url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}/v1"
        servers[base_url] = (server, thread, connections)
        return base_url

    def stop(base_url: str) -> None:
        """Shut the server at ``base_url`` down, kept-alive connections too: its port then refuses."""
        server, thread, connections = servers.pop(base_url)
        server.shutdown()
        server.server_close()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass
        thread.join(timeout=5)

    start.stop = stop
    yield start
    for base_url in list(servers):
        stop(base_url)


def prompt_of(body) -> str:
    return body["messages"][0]["content"][-1]["text"]


def test_429_waits_as_long_as_retry_after_says(scripted, tmp_path):
    script = Script(lambda n, body, headers: (429, {"Retry-After": "1"}, {"error": {"message": "slow down"}})
                    if n == 0 else ok("A"))
    base = scripted(script)
    with OpenAIChatClient(base, "m", cache_dir=tmp_path, backoff_base=30, timeout=10) as client:
        started = time.monotonic()
        assert client.generate([ChatRequest("q")]) == ["A"]
        waited = time.monotonic() - started
    assert len(script.requests) == 2
    assert waited >= 1.0  # Retry-After (1 s) was honoured, not the 30 s backoff
    assert waited < 25


def test_5xx_is_retried_with_backoff_then_given_up(scripted, tmp_path):
    flaky = Script(lambda n, body, headers: (503, {}, {"detail": "warming up"}) if n < 2 else ok("B"))
    with OpenAIChatClient(scripted(flaky), "m", backoff_base=0.01, timeout=10) as client:
        assert client.generate([ChatRequest("q")]) == ["B"]
    assert len(flaky.requests) == 3

    broken = Script(lambda n, body, headers: (500, {}, {"error": {"message": "internal boom"}}))
    with OpenAIChatClient(scripted(broken), "m", backoff_base=0.01, max_retries=2, timeout=10) as client:
        with pytest.raises(ChatAPIError, match="internal boom.*gave up after 2 retries"):
            client.generate([ChatRequest("q")])
    assert len(broken.requests) == 3


def test_401_stops_the_run_keeps_what_was_answered_and_never_shows_the_key(scripted, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DIFFBENCH_TEST_KEY", SECRET)

    def respond(n, body, headers):
        if "bad" in prompt_of(body):  # a server that echoes the key it got, as OpenAI's 401 does in part
            return 401, {}, {"error": {"message": f"Incorrect API key provided: {headers['Authorization']}"}}
        return ok(prompt_of(body).upper())

    script = Script(respond)
    base = scripted(script)
    requests = [ChatRequest(p) for p in ("one", "two", "bad", "three", "four")]
    caplog.set_level(logging.DEBUG)
    with OpenAIChatClient(base, "m", api_key_env="DIFFBENCH_TEST_KEY", cache_dir=tmp_path / "cache",
                          concurrency=1, timeout=10) as client:
        with pytest.raises(ChatAPIError) as err:
            client.generate(requests)
    assert err.value.status == 401
    assert "Incorrect API key provided: Bearer ***" in str(err.value)
    assert err.value.answers == ["ONE", "TWO", None, None, None]
    assert len(script.requests) == 3  # not retried, and nothing started after it
    assert script.requests[0][1]["Authorization"] == f"Bearer {SECRET}"  # the key was sent...
    assert SECRET not in str(err.value) and SECRET not in caplog.text and SECRET not in repr(client)
    assert not any(SECRET in p.read_text() for p in files_under(tmp_path))  # ...and never written

    # Fixed: the rerun asks only the three unanswered questions.
    script.respond = lambda n, body, headers: ok(prompt_of(body).upper())
    with OpenAIChatClient(base, "m", api_key_env="DIFFBENCH_TEST_KEY", cache_dir=tmp_path / "cache") as client:
        assert client.generate(requests) == ["ONE", "TWO", "BAD", "THREE", "FOUR"]
    assert sorted(prompt_of(body) for body, _ in script.requests[3:]) == ["bad", "four", "three"]


def test_concurrency_bounds_the_requests_in_flight(scripted):
    script = Script(lambda n, body, headers: ok(prompt_of(body)), delay=0.3)
    with OpenAIChatClient(scripted(script), "m", concurrency=3, timeout=10) as client:
        answers = client.generate([ChatRequest(str(i)) for i in range(9)])
    assert answers == [str(i) for i in range(9)]  # in request order, whatever order they finished in
    assert script.max_in_flight == 3


def test_the_request_is_the_openai_shape_without_a_key_when_none_is_set(scripted, monkeypatch):
    monkeypatch.delenv("DIFFBENCH_TEST_UNSET_KEY", raising=False)
    script = Script(lambda n, body, headers: ok("First"))
    with OpenAIChatClient(scripted(script), "gpt-x", api_key_env="DIFFBENCH_TEST_UNSET_KEY",
                          max_new_tokens=64, timeout=10) as client:
        client.generate([ChatRequest("Which?", (image("red"), image("blue")))])
    body, headers = script.requests[0]
    assert "Authorization" not in headers
    assert body["model"] == "gpt-x" and body["max_tokens"] == 64 and body["temperature"] == 0.0
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    decoded = Image.open(io.BytesIO(base64.b64decode(parts[1]["image_url"]["url"].split(",", 1)[1])))
    assert decoded.getpixel((0, 0)) == (0, 0, 255)  # lossless: the pixels sent are the pixels given


# -- the modules: their examples, and what importing them needs ---------------------------------------------

@pytest.mark.parametrize("module", ["openai_chat", "api_access", "chat_format", "bounded_http"])
def test_module_doctests(module):
    failures, attempted = doctest.testmod(importlib.import_module(f"diffbench.backends.{module}"))
    assert attempted >= 1 and failures == 0


def test_the_client_module_imports_without_httpx_and_a_client_needs_it():
    """The CLI imports the client module at start-up (``--api-base`` is checked there): httpx, the [api]
    extra, is needed only once a client is made."""
    code = ("import sys; sys.modules['httpx'] = None\n"
            "from diffbench.backends.openai_chat import OpenAIChatClient, check_base_url\n"
            "check_base_url('http://127.0.0.1:9/v1')\n"
            "try:\n    OpenAIChatClient('http://127.0.0.1:9/v1', 'm')\n"
            "except ModuleNotFoundError as err:\n    print(err.name)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "httpx", done.stderr
