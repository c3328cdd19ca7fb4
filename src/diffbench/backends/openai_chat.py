"""Ask an OpenAI-compatible chat endpoint: prompt + images in, generated text out, every answer cached.

Works with any server that speaks OpenAI's ``POST {base_url}/chat/completions`` (OpenAI, Gemini's
``https://generativelanguage.googleapis.com/v1beta/openai/``, vLLM, TGI, ``transformers serve``). Needs
only ``httpx`` (the ``[api]`` extra: ``httpx>=0.27``; not the ``openai`` package).

Interface (stable; the task layer uses only these):

- :class:`ChatRequest` ``(prompt, images=(), label="")``: one question; ``images`` are PIL images, sent
  first, each as an ``image_url`` part holding a ``data:image/png;base64,...`` URI, then the prompt as a
  ``text`` part, in one ``user`` message. ``label`` names the request in warnings (a sample id and turn);
  it is neither sent nor part of the cache key.
- :class:`OpenAIChatClient` ``(base_url, model, *, api_key_env="OPENAI_API_KEY", cache_dir=None,
  concurrency=4, max_new_tokens=128, temperature=0.0, extra_body=None, max_retries=6, backoff_base=1.0,
  backoff_max=60.0, timeout=120.0, retry_after_max=MAX_RETRY_AFTER_S, retry_budget=RETRY_BUDGET_S,
  max_answer_bytes=MAX_ANSWER_BYTES)``; ``client.generate(requests, on_answer=None) -> list[str]`` in
  request order; ``on_answer(index, text, cached)`` is called as each answer arrives (from worker threads,
  one call at a time). ``client.malformed_answers``: how many answers were malformed (below). Use it as a
  context manager (or call ``close()``). A ``base_url`` that is not an ``http(s)://host`` URL is a
  ``ValueError`` (:func:`check_base_url`).
- :class:`ChatAPIError`: a request failed for good (HTTP 4xx other than 408/409/429, retries or their
  time used up, nothing listening at ``base_url``). ``.status`` (``None`` for a network failure),
  ``.answers`` (the run's answers so far, ``None`` where unanswered; every answered one is also in the
  cache), ``str(err)`` = one line with the server's message. A later run with the same cache asks only
  what is missing.

Behaviour:

- The key is read from the environment variable ``api_key_env`` when the client is made, and checked
  there: a control character (a key read from a file keeps its line break), a space or a non-ASCII
  character is a ``ValueError`` naming the variable, never the value. It is sent only as
  ``Authorization: Bearer ...``; it is never logged, never cached, never part of a message or a repr.
  Whatever a server sends back (error messages, answers, the cached fields) has the key, and any run of
  its first :data:`~diffbench.backends.api_access.REDACT_PREFIX_CHARS` or more characters (a key cut
  short), replaced by ``***`` before anything is cut, shown or written. Unset variable: no
  ``Authorization`` header (local servers need none).
- ``concurrency`` requests in flight (a thread pool; each thread's request on its own kept-alive
  connection).
- ``timeout`` bounds one try of a request as a whole, from connecting to the last byte of the answer:
  httpx's own timeouts bound each read, so a server sending a byte a second would never trip them; past
  the deadline the connection is cut (its socket shut down, which wakes the blocked read).
- Retries on HTTP 408, 409, 429, 5xx and on network errors and timeouts, at most ``max_retries`` times,
  waiting ``Retry-After`` (seconds or an HTTP date; at most ``retry_after_max``, :data:`MAX_RETRY_AFTER_S`)
  when the server sends it, else ``min(backoff_max, backoff_base * 2**attempt)`` with up to 10 % jitter.
  A request retries for at most ``retry_budget`` seconds (:data:`RETRY_BUDGET_S`): a wait that would end
  past it, or a ``Retry-After`` longer than what is left of it, fails the request for good at once.
- A connection refused (or a name that does not resolve, or a connect timeout) before the server has
  answered anything is not retried: nothing answers at that address, said at once. After earlier
  answers it is retried like any network error (a server restarting).
- On a non-retryable error no new request starts, those in flight finish (and are cached), then
  :class:`ChatAPIError` is raised.
- A malformed answer (HTTP 200 whose body is over ``max_answer_bytes`` (:data:`MAX_ANSWER_BYTES`; the
  body is read streaming and dropped at the bound), not JSON, nested too deep to read, without
  ``choices[0].message``, or whose ``content`` is neither text, ``null``, nor a list of text parts) is an
  empty answer: never raised, never cached (a rerun asks it again), logged as a warning naming the
  request (the first :data:`MALFORMED_WARNINGS` of them), and counted in ``client.malformed_answers``.
  VisMin's parser scores an empty answer unparseable. Error bodies are read under the same bound.
- Cache: ``cache_dir/<aa>/<sha256>.json``, one file per answer, written atomically; the key hashes the model
  name, the messages and the generation settings, so changing any of them asks again, and a rerun resumes
  without re-asking. In the key an image stands for its mode, size and the sha256 of its pixels (the
  PNG it is sent as is a lossless function of those), so a rerun never re-encodes cached images.

Greedy decoding is ``temperature=0``; a server may still not be deterministic (hosted models are not).

Where the pieces are: this module is the client (what is asked, the cache, the retries, the thread pool);
:mod:`diffbench.backends.api_access` checks the address and the key and redacts the key;
:mod:`diffbench.backends.chat_format` turns images into what is sent and reads what comes back;
:mod:`diffbench.backends.bounded_http` is the transport (a connection a thread, the whole-request deadline,
bounded reads). Callers import from here: :class:`ChatRequest`, :class:`ChatAPIError`,
:class:`OpenAIChatClient`, :func:`check_base_url`.

    >>> from PIL import Image
    >>> client = OpenAIChatClient("http://127.0.0.1:9/v1", "tiny", api_key_env="DIFFBENCH_DOCTEST_UNSET")
    >>> parts = client.messages(ChatRequest("Which?", (Image.new("RGB", (2, 2)),)))[0]["content"]
    >>> [part["type"] for part in parts], parts[0]["image_url"]["url"][:22]
    (['image_url', 'text'], 'data:image/png;base64,')
    >>> len(client.cache_key(ChatRequest("Which?", (Image.new("RGB", (2, 2)),))))
    64
    >>> client.close()
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from diffbench.backends.api_access import check_base_url, read_api_key, redact, shown
from diffbench.backends.bounded_http import BoundedTransport, TransportFailure, caused_by
from diffbench.backends.chat_format import (answer_text, cache_fields, image_data_uri, image_identity, load_json,
                                            retry_after_seconds, server_message)
from diffbench.files import write_atomically
from diffbench.text import printable

__all__ = ["MALFORMED_WARNINGS", "MAX_ANSWER_BYTES", "MAX_RETRY_AFTER_S", "RETRY_BUDGET_S", "ChatAPIError",
           "ChatRequest", "OpenAIChatClient", "check_base_url"]

logger = logging.getLogger(__name__)

#: statuses worth asking again: timeout, conflict, rate limit (and every 5xx)
RETRYABLE_STATUSES = frozenset({408, 409, 429})
#: the longest wait a ``Retry-After`` gets (seconds); one asking for more than the retry budget has left fails at once
MAX_RETRY_AFTER_S = 60.0
#: the longest a request keeps retrying (seconds, waits and later tries): then it fails for good
RETRY_BUDGET_S = 600.0
#: the largest answer body read (bytes): an answer of a few words is a few hundred; larger is malformed
MAX_ANSWER_BYTES = 2**20
#: malformed answers logged one by one: a server that sends nothing but (thousands of) them is said, not shouted
MALFORMED_WARNINGS = 20


@dataclass(frozen=True)
class ChatRequest:
    """One question: the prompt text and the images shown before it (PIL images); ``label`` names it in
    warnings (neither sent nor part of the cache key)."""

    prompt: str
    images: tuple = ()
    label: str = ""


class ChatAPIError(RuntimeError):
    """A request failed for good; ``answers`` holds what the run got before it stopped."""

    def __init__(self, message: str, status: int | None = None, answers: list | None = None):
        super().__init__(message)
        self.status = status
        self.answers = answers if answers is not None else []


class _Retryable(Exception):
    def __init__(self, message: str, wait_s: float | None = None, status: int | None = None):
        super().__init__(message)
        self.wait_s = wait_s
        self.status = status


class OpenAIChatClient:
    """A client for one model behind one OpenAI-compatible endpoint (see the module docstring)."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", cache_dir=None,
                 concurrency: int = 4, max_new_tokens: int = 128, temperature: float = 0.0,
                 extra_body: dict | None = None, max_retries: int = 6, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, timeout: float = 120.0, retry_after_max: float = MAX_RETRY_AFTER_S,
                 retry_budget: float = RETRY_BUDGET_S, max_answer_bytes: int = MAX_ANSWER_BYTES):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.base_url = check_base_url(base_url).rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.concurrency = concurrency
        self.generation = {"max_tokens": max_new_tokens, "temperature": temperature, **(extra_body or {})}
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.retry_after_max = retry_after_max
        self.retry_budget = retry_budget
        self.max_answer_bytes = max_answer_bytes
        self.malformed_answers = 0
        self._key = read_api_key(api_key_env)  # private: never logged, cached or shown
        if self._key is None:
            logger.info("%s is not set: requests to %s carry no Authorization header", api_key_env, self.base_url)
        # identity: an answer is a few hundred bytes, and a compressed one could expand past the bound in one read
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._transport = BoundedTransport(headers, timeout, max_answer_bytes)
        self._heard_from_server = False  # a connection refused before any answer: nothing listens there
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIChatClient({self.base_url!r}, {self.model!r}, api_key_env={self.api_key_env!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._transport.close()

    # -- what is sent ---------------------------------------------------------------------------------
    def messages(self, request: ChatRequest) -> list[dict]:
        """The ``messages`` of ``request``: one user turn, the images first, then the prompt."""
        parts = [{"type": "image_url", "image_url": {"url": image_data_uri(image)}} for image in request.images]
        parts.append({"type": "text", "text": request.prompt})
        return [{"role": "user", "content": parts}]

    def _body(self, messages: list[dict]) -> dict:
        return {"model": self.model, "messages": messages, **self.generation}

    def cache_key(self, request: ChatRequest) -> str:
        """sha256 of the model, the messages (an image by its pixels' digest) and the generation settings."""
        parts = [image_identity(image) for image in request.images]
        parts.append({"type": "text", "text": request.prompt})
        body = self._body([{"role": "user", "content": parts}])
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()

    # -- the cache ------------------------------------------------------------------------------------
    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def cached(self, request: ChatRequest) -> str | None:
        """The cached answer to ``request``, or ``None``."""
        path = self._cache_path(self.cache_key(request))
        return self._read_cache(path)

    @staticmethod
    def _read_cache(path: Path | None) -> str | None:
        if path is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))["output"]
        except (ValueError, KeyError):
            logger.warning("ignoring unreadable cache entry %s", path)
            return None

    @staticmethod
    def _write_cache(path: Path | None, record: dict) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(record, ensure_ascii=False))  # a reader never sees half an entry

    # -- one try --------------------------------------------------------------------------------------
    def _post_once(self, body: dict) -> tuple[dict | None, str | None]:
        """One try within ``timeout``: ``(the answer's JSON, None)`` or ``(None, why it is malformed)``;
        raises :class:`_Retryable` or :class:`ChatAPIError`."""
        try:
            reply = self._transport.post(self.url, body)
        except TransportFailure as failure:
            raise self._transport_failure(failure.error, failure.expired) from None
        self._heard_from_server = True
        if reply.status == 200:
            return (None, reply.problem) if reply.data is None else load_json(reply.data)
        said = server_message(reply.data, reply.problem, reply.reason, self._key)
        message = f"{self.url} answered HTTP {reply.status}: {said}"
        if reply.status in RETRYABLE_STATUSES or reply.status >= 500:
            raise _Retryable(message, retry_after_seconds(reply.retry_after), reply.status)
        raise ChatAPIError(message, status=reply.status)

    def _transport_failure(self, err, expired: bool) -> Exception:
        """What a network failure of one try means: retry it, or stop (nothing listens; our own request
        is wrong). The message is httpx's, with the key redacted."""
        import httpx  # the optional [api] extra: a failure of it means httpx is there

        said = shown(str(err), self._key) or type(err).__name__
        if expired:
            return _Retryable(f"no complete answer from {self.url} within {self.timeout:g} s "
                              "(the deadline of one try, from connecting to the last byte)")
        if isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout)) and not self._heard_from_server:
            if caused_by(err, ssl.SSLError):  # it answers, but its certificate or TLS is refused: no retry mends it
                return ChatAPIError(f"cannot connect to {self.base_url} securely ({said})")
            return ChatAPIError(f"nothing answers at {self.base_url} ({said}): check the address, and that the "
                                "server is running and reachable from here")
        if isinstance(err, httpx.TransportError) and not isinstance(err, (httpx.LocalProtocolError,
                                                                          httpx.UnsupportedProtocol)):
            return _Retryable(f"{type(err).__name__} talking to {self.url}: {said}")
        return ChatAPIError(f"{type(err).__name__} talking to {self.url}: {said}")

    # -- asking, retrying -----------------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2**attempt)
        return delay * (1 + 0.1 * random.random())

    def _retry_plan(self, err: _Retryable, attempt: int, elapsed: float) -> tuple[float, str | None]:
        """How long to wait before the next try, or why there is none (retries or their time used up)."""
        if attempt >= self.max_retries:
            return 0.0, f"gave up after {self.max_retries} retries"
        left = self.retry_budget - elapsed
        if err.wait_s is not None and err.wait_s > left:
            return 0.0, (f"the server asks to wait {err.wait_s:g} s (Retry-After), past the "
                         f"{self.retry_budget:g} s a request may spend retrying")
        delay = min(err.wait_s, self.retry_after_max) if err.wait_s is not None else self._backoff(attempt)
        if delay > left:
            return 0.0, (f"gave up after {elapsed:.1f} s of retries: a request retries for at most "
                         f"{self.retry_budget:g} s")
        return delay, None

    def _ask(self, body: dict, stop: threading.Event) -> tuple[dict | None, str | None]:
        started = time.monotonic()
        for attempt in itertools.count():
            try:
                return self._post_once(body)
            except _Retryable as err:
                delay, problem = self._retry_plan(err, attempt, time.monotonic() - started)
                if problem is not None:
                    raise ChatAPIError(f"{err} ({problem})", status=err.status) from None
                logger.warning("%s; retry %d/%d in %.1f s", err, attempt + 1, self.max_retries, delay)
                if stop.wait(delay):  # another request failed for good: do not keep retrying
                    raise ChatAPIError(f"{err} (stopped: another request failed)", status=err.status) from None
        raise AssertionError("unreachable")

    def _malformed(self, index: int, request: ChatRequest, problem: str) -> None:
        label = f" ({printable(request.label)})" if request.label else ""
        # counted and logged under one lock: the warning that says "in silence" is the last one logged, whichever
        # of the concurrent requests reaches it
        with self._state_lock:
            self.malformed_answers += 1
            count = self.malformed_answers
            if count > MALFORMED_WARNINGS:
                return
            more = ("; further malformed answers are counted in silence (client.malformed_answers)"
                    if count == MALFORMED_WARNINGS else "")
            logger.warning("malformed answer from %s to request %d%s: %s; counted as an empty (unparseable) "
                           "answer, not cached%s", self.url, index, label, problem, more)

    def _answer(self, index: int, request: ChatRequest, key: str, stop: threading.Event) -> str:
        if stop.is_set():
            raise ChatAPIError("stopped: another request failed")
        payload, problem = self._ask(self._body(self.messages(request)), stop)
        output = None
        if problem is None:
            output, problem = answer_text(payload)
        if problem is not None:
            self._malformed(index, request, problem)
            return ""
        output = redact(output, self._key)  # a server echoing the key never gets it into answers or the cache
        record = {"key": key, "model": self.model, "output": output, **cache_fields(payload, self._key),
                  "created": time.time()}
        with self._write_lock:
            self._write_cache(self._cache_path(key), record)
        return output

    def generate(self, requests: Sequence[ChatRequest],
                 on_answer: Callable[[int, str, bool], None] | None = None) -> list[str]:
        """The generated text of every request, in order (cached answers are not asked again)."""
        answers: list[str | None] = [None] * len(requests)
        keys = [self.cache_key(request) for request in requests]
        todo = []
        for index, key in enumerate(keys):
            hit = self._read_cache(self._cache_path(key))
            if hit is None:
                todo.append(index)
                continue
            answers[index] = hit
            if on_answer:
                on_answer(index, hit, True)
        if todo:
            logger.info("asking %s for %d answers (%d cached)", self.model, len(todo), len(requests) - len(todo))
        stop = threading.Event()
        failure: ChatAPIError | None = None
        pending_indices = iter(todo)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai-chat") as pool:
            in_flight = {}

            def submit_next() -> bool:
                index = next(pending_indices, None)
                if index is None:
                    return False
                in_flight[pool.submit(self._answer, index, requests[index], keys[index], stop)] = index
                return True

            for _ in range(self.concurrency):  # only `concurrency` submitted at a time: a stop leaves nothing queued
                if not submit_next():
                    break
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    index = in_flight.pop(future)
                    try:
                        answers[index] = future.result()
                    except ChatAPIError as err:
                        if failure is None:
                            failure = err
                            stop.set()
                        continue
                    if on_answer:
                        on_answer(index, answers[index], False)
                    if not stop.is_set():
                        submit_next()
        if failure is not None:
            answered = sum(answer is not None for answer in answers)
            kept = (f" ({answered} of {len(requests)} answered and cached; run again to ask the rest)"
                    if answered else "")
            raise ChatAPIError(f"{failure}{kept}", status=failure.status, answers=answers)
        return answers
