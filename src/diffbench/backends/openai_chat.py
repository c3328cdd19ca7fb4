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
  its first :data:`REDACT_PREFIX_CHARS` or more characters (a key cut short), replaced by ``***`` before
  anything is cut, shown or written. Unset variable: no ``Authorization`` header (local servers need none).
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

import base64
import contextlib
import email.utils
import hashlib
import io
import itertools
import json
import logging
import os
import queue
import random
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from diffbench.text import one_line, printable

logger = logging.getLogger(__name__)

#: statuses worth asking again: timeout, conflict, rate limit (and every 5xx)
RETRYABLE_STATUSES = frozenset({408, 409, 429})
#: the longest wait a ``Retry-After`` gets (seconds); one asking for more than the retry budget has left fails at once
MAX_RETRY_AFTER_S = 60.0
#: the longest a request keeps retrying (seconds, waits and later tries): then it fails for good
RETRY_BUDGET_S = 600.0
#: the largest answer body read (bytes): an answer of a few words is a few hundred; larger is malformed
MAX_ANSWER_BYTES = 2**20
#: a server's message is cut to this many characters (after the key is redacted from it)
MESSAGE_CHARS = 500
#: a run of this many leading characters of the key, or more, is redacted like the whole key
REDACT_PREFIX_CHARS = 8
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


# -- what the user gives: the address and the key ------------------------------------------------------

def check_base_url(url: str, name: str = "base_url") -> str:
    """``url`` if it is an ``http(s)://host[:port][/path]`` URL; else a one-line ``ValueError`` starting
    with ``name``. A user name or password in it is refused without being echoed (it would be recorded
    in run.json; the key belongs in the environment variable).

    >>> check_base_url("https://api.openai.com/v1")
    'https://api.openai.com/v1'
    >>> check_base_url("ftp://x", "--api-base")
    Traceback (most recent call last):
    ...
    ValueError: --api-base 'ftp://x': the scheme must be http or https, got 'ftp' (e.g. https://api.openai.com/v1)
    """
    shown = printable(url)
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise ValueError(f"{name} {shown!r} holds a space or a control character")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is not a number in range
    except ValueError as err:
        raise ValueError(f"{name} {shown!r} is not a URL ({err})") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{name} holds a user name or password (user:password@host): give the API key in an "
                         "environment variable (--api-key-env) instead")
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{name} {shown!r}: the scheme must be http or https, got {parts.scheme or 'none'!r} "
                         "(e.g. https://api.openai.com/v1)")
    if not parts.hostname:
        raise ValueError(f"{name} {shown!r} names no host (e.g. https://api.openai.com/v1)")
    return url


def read_api_key(variable: str) -> str | None:
    """The API key in the environment variable ``variable`` (``None`` when unset or empty), which must be
    printable ASCII without spaces: anything else would reach the ``Authorization`` header (where httpx
    refuses it with the whole header, key included, in its message). The error names the variable and
    where the character is, never the key."""
    key = os.environ.get(variable) or None
    if key is None:
        return None
    for position, char in enumerate(key, 1):
        if "!" <= char <= "~":
            continue
        what = ("a line break" if char in "\r\n" else "a space" if char == " " else
                "a non-ASCII character" if ord(char) > 0x7F else "a control character")
        where = "as its last character" if position == len(key) else f"at character {position} of {len(key)}"
        raise ValueError(f"the API key in {variable} has {what} {where}: a key is printable ASCII without "
                         "spaces (a key read from a file often keeps its line break: strip it)")
    return key


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret``, and every run of :data:`REDACT_PREFIX_CHARS` or more of its first
    characters (a key cut short, by us or by a server), replaced by ``***``.

    >>> redact("got sk-abcdefghij, sk-abcdefg... and sk-abc", "sk-abcdefghij")
    'got ***, ***... and sk-abc'
    """
    if not secret:
        return text
    head = secret[:REDACT_PREFIX_CHARS]
    start = text.find(head)
    if start < 0:
        return text
    pieces, done = [], 0
    while start >= 0:
        end = start + len(head)
        while end - start < len(secret) and end < len(text) and text[end] == secret[end - start]:
            end += 1
        pieces += [text[done:start], "***"]
        done = end
        start = text.find(head, done)
    pieces.append(text[done:])
    return "".join(pieces)


def _shown(text: str, secret: str | None, limit: int = MESSAGE_CHARS) -> str:
    """A server's text as it may be shown: the key redacted first, then one line, then cut."""
    return one_line(redact(text, secret))[:limit]


# -- what is sent and what comes back ------------------------------------------------------------------

def image_data_uri(image) -> str:
    """A PIL image as a PNG ``data:`` URI (lossless, so the model sees the pixels the dataset holds).

    >>> from PIL import Image
    >>> image_data_uri(Image.new("RGB", (1, 1)))[:30]
    'data:image/png;base64,iVBORw0K'
    """
    buffer = io.BytesIO()
    image = image if image.mode in ("RGB", "RGBA", "L") else image.convert("RGB")
    image.save(buffer, format="PNG", compress_level=1)  # level 1: 4x faster than the default, still lossless
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: a number, or an HTTP date (RFC 9110); ``None`` if unreadable.

    >>> retry_after_seconds("2"), retry_after_seconds("soon")
    (2.0, None)
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0)
    10.0
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN: unreadable
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _read_bounded(response, limit: int) -> tuple[bytes | None, str | None]:
    """The body, read as it streams in: ``(bytes, None)``, or ``(None, why)`` once it passes ``limit`` bytes
    (the rest is never read: the connection is dropped) or does not decode."""
    import httpx

    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None, f"the answer is over {limit} bytes ({declared} declared)"
    chunks, size = [], 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                return None, f"the answer is over {limit} bytes"
            chunks.append(chunk)
    except httpx.DecodingError:
        return None, f"the answer does not decode as its Content-Encoding ({response.headers.get('content-encoding')})"
    return b"".join(chunks), None


def _load_json(data: bytes):
    """``(value, None)`` or ``(None, why it is not readable JSON)``."""
    try:
        return json.loads(data), None
    except RecursionError:
        return None, "the answer's JSON nests too deep to read"
    except ValueError:  # not JSON, or not UTF-8
        return None, "the answer is not JSON"


def _json_type(value) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _server_message(data: bytes | None, problem: str | None, reason: str, secret: str | None) -> str:
    """The error text a server sent (OpenAI's ``error.message``, FastAPI's ``detail``, or the body), safe to
    show: the key redacted before it is cut to :data:`MESSAGE_CHARS`."""
    if data is None:
        return f"{reason} ({problem})"
    body, _ = _load_json(data)
    if body is None:
        text = data.decode("utf-8", errors="replace").strip() or reason
    elif isinstance(body, dict) and _error_text(body):
        text = _error_text(body)
    else:
        text = json.dumps(body)
    return _shown(text, secret)


def _error_text(body: dict) -> str | None:
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    for field in ("detail", "message"):
        if body.get(field):
            return str(body[field])
    return None


def _answer_text(payload) -> tuple[str | None, str | None]:
    """``choices[0].message.content`` as text: ``(text, None)``, or ``(None, why the answer is malformed)``.
    ``null`` content is an empty answer (a refusal), not a malformed one."""
    if not isinstance(payload, dict):
        return None, f"the answer is a JSON {_json_type(payload)}, not an object"
    choices = payload.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        said = _error_text(payload)
        return None, "the answer has no choices[0].message" + (f" (the server says: {said})" if said else "")
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or "", None
    if not isinstance(content, list):
        return None, f"choices[0].message.content is a JSON {_json_type(content)}, not text"
    parts = [part for part in content if isinstance(part, dict)]
    if any(not isinstance(part.get("text", ""), str) for part in parts):
        return None, "choices[0].message.content holds a part whose text is not text"
    return "".join(part.get("text", "") for part in parts), None


def _cache_fields(payload: dict, secret: str | None) -> dict:
    """What the cache keeps of the server's answer besides the text: strings redacted and short, usage's
    numbers only (a server's echo of the key must not reach the cache)."""
    def text(value):
        return redact(value, secret)[:200] if isinstance(value, str) else None

    usage = payload.get("usage")
    if isinstance(usage, dict):
        usage = {redact(k, secret): v for k, v in usage.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"finish_reason": text(payload["choices"][0].get("finish_reason")), "served_by": text(payload.get("model")),
            "usage": usage if isinstance(usage, dict) else None}


def _caused_by(err: BaseException, kind: type) -> bool:
    """Whether ``err`` or an exception it was raised from (httpx wraps httpcore wraps the OS's) is a ``kind``."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kind):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class _Lane:
    """One kept-alive connection (an ``httpx.Client`` holding at most one) and the socket it runs on, so
    that a try past its deadline can be cut: shutting the socket down wakes the read blocked on it.
    httpx's timeouts bound each read, not the request; its trace hook names each new connection's socket."""

    def __init__(self, http):
        self.http = http
        self.expired = False
        self._socket = None
        self._active = False
        self._lock = threading.Lock()

    def trace(self, event: str, info: dict) -> None:
        """httpcore's ``trace`` extension: the socket of each new connection (TCP, then TLS over it)."""
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            stream = info.get("return_value")
            with self._lock:
                self._socket = stream.get_extra_info("socket") if stream is not None else None
                if self.expired:  # the deadline passed while connecting
                    self._cut()

    def begin(self) -> None:
        with self._lock:
            self._active, self.expired = True, False

    def end(self) -> None:
        with self._lock:
            self._active = False

    def expire(self) -> None:
        """The try's deadline passed: cut its connection (unless the try has ended); ``expired`` says so."""
        with self._lock:
            if self._active:
                self.expired = True
                self._cut()

    def _cut(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError, TypeError):
                socket.socket.shutdown(self._socket, socket.SHUT_RDWR)  # the plain socket's: a TLS one stays wrapped


class _Watchdog:
    """One thread a client that expires each lane whose try passed its deadline (a timer thread a try
    cost 0.7 ms to start; this costs a lock). Started on first use, ended by ``close``."""

    def __init__(self):
        self._deadlines: dict[_Lane, float] = {}
        self._changed = threading.Condition()
        self._thread = None
        self._closed = False

    @contextlib.contextmanager
    def watching(self, lane: _Lane, seconds: float):
        """Run the block as one try of ``lane``, cut ``seconds`` after it starts if still running."""
        lane.begin()
        with self._changed:
            was_idle = not self._deadlines
            self._deadlines[lane] = time.monotonic() + seconds
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="openai-chat-deadlines", daemon=True)
                self._thread.start()
            elif was_idle:  # it sleeps with no deadline to wake for (later ones come after those it knows)
                self._changed.notify()
        try:
            yield
        finally:
            lane.end()  # first: a deadline passing now no longer cuts this (finished) try
            with self._changed:
                self._deadlines.pop(lane, None)

    def _run(self) -> None:
        with self._changed:
            while not self._closed:
                now = time.monotonic()
                for lane, when in list(self._deadlines.items()):
                    if when <= now:
                        del self._deadlines[lane]
                        lane.expire()
                nearest = min(self._deadlines.values(), default=None)
                self._changed.wait(None if nearest is None else nearest - now)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()


class OpenAIChatClient:
    """A client for one model behind one OpenAI-compatible endpoint (see the module docstring)."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", cache_dir=None,
                 concurrency: int = 4, max_new_tokens: int = 128, temperature: float = 0.0,
                 extra_body: dict | None = None, max_retries: int = 6, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, timeout: float = 120.0, retry_after_max: float = MAX_RETRY_AFTER_S,
                 retry_budget: float = RETRY_BUDGET_S, max_answer_bytes: int = MAX_ANSWER_BYTES):
        import httpx

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
        self._headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if self._key:
            self._headers["Authorization"] = f"Bearer {self._key}"
        # one TLS context for every connection (making one costs ~30 ms); httpx<0.28 makes its own
        self._verify = httpx.create_ssl_context() if hasattr(httpx, "create_ssl_context") else True
        self._lanes: list[_Lane] = []
        self._idle_lanes: queue.SimpleQueue = queue.SimpleQueue()
        self._watchdog = _Watchdog()
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
        with self._state_lock:
            lanes, self._lanes = self._lanes, []
        for lane in lanes:
            lane.http.close()
        self._watchdog.close()

    # -- what is sent ---------------------------------------------------------------------------------
    def messages(self, request: ChatRequest) -> list[dict]:
        """The ``messages`` of ``request``: one user turn, the images first, then the prompt."""
        parts = [{"type": "image_url", "image_url": {"url": image_data_uri(image)}} for image in request.images]
        parts.append({"type": "text", "text": request.prompt})
        return [{"role": "user", "content": parts}]

    def _body(self, messages: list[dict]) -> dict:
        return {"model": self.model, "messages": messages, **self.generation}

    @staticmethod
    def _image_identity(image) -> dict:
        image = image if image.mode in ("RGB", "RGBA", "L") else image.convert("RGB")
        return {"type": "image", "mode": image.mode, "size": list(image.size),
                "sha256": hashlib.sha256(image.tobytes()).hexdigest()}

    def cache_key(self, request: ChatRequest) -> str:
        """sha256 of the model, the messages (an image by its pixels' digest) and the generation settings."""
        parts = [self._image_identity(image) for image in request.images]
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

    def _write_cache(self, path: Path | None, record: dict) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # a reader never sees half an entry

    # -- one try --------------------------------------------------------------------------------------
    def _lane(self) -> _Lane:
        """An idle connection, or a new one (at most one a worker thread at a time)."""
        import httpx

        try:
            return self._idle_lanes.get_nowait()
        except queue.Empty:
            pass
        lane = _Lane(httpx.Client(headers=self._headers, timeout=self.timeout, verify=self._verify,
                                  limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)))
        with self._state_lock:
            self._lanes.append(lane)
        return lane

    def _exchange(self, lane: _Lane, body: dict) -> tuple[int, str, str | None, bytes | None, str | None]:
        """POST ``body``: ``(status, reason, Retry-After, body bytes or None, why the body was dropped)``."""
        with lane.http.stream("POST", self.url, json=body, extensions={"trace": lane.trace}) as response:
            data, problem = _read_bounded(response, self.max_answer_bytes)
            return response.status_code, response.reason_phrase, response.headers.get("retry-after"), data, problem

    def _post_once(self, body: dict) -> tuple[dict | None, str | None]:
        """One try within ``timeout``: ``(the answer's JSON, None)`` or ``(None, why it is malformed)``;
        raises :class:`_Retryable` or :class:`ChatAPIError`."""
        import httpx

        lane = self._lane()
        try:
            with self._watchdog.watching(lane, self.timeout):
                status, reason, retry_after, data, problem = self._exchange(lane, body)
        except httpx.HTTPError as err:
            raise self._transport_failure(err, lane.expired) from None
        finally:
            self._idle_lanes.put(lane)
        self._heard_from_server = True
        if status == 200:
            return (None, problem) if data is None else _load_json(data)
        message = f"{self.url} answered HTTP {status}: {_server_message(data, problem, reason, self._key)}"
        if status in RETRYABLE_STATUSES or status >= 500:
            raise _Retryable(message, retry_after_seconds(retry_after), status)
        raise ChatAPIError(message, status=status)

    def _transport_failure(self, err, expired: bool) -> Exception:
        """What a network failure of one try means: retry it, or stop (nothing listens; our own request
        is wrong). The message is httpx's, with the key redacted."""
        import httpx

        said = _shown(str(err), self._key) or type(err).__name__
        if expired:
            return _Retryable(f"no complete answer from {self.url} within {self.timeout:g} s "
                              "(the deadline of one try, from connecting to the last byte)")
        if isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout)) and not self._heard_from_server:
            if _caused_by(err, ssl.SSLError):  # it answers, but its certificate or TLS is refused: no retry mends it
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
        with self._state_lock:
            self.malformed_answers += 1
            count = self.malformed_answers
        if count > MALFORMED_WARNINGS:
            return
        label = f" ({printable(request.label)})" if request.label else ""
        more = (f"; further malformed answers are counted in silence (client.malformed_answers)"
                if count == MALFORMED_WARNINGS else "")
        logger.warning("malformed answer from %s to request %d%s: %s; counted as an empty (unparseable) answer, "
                       "not cached%s", self.url, index, label, problem, more)

    def _answer(self, index: int, request: ChatRequest, key: str, stop: threading.Event) -> str:
        if stop.is_set():
            raise ChatAPIError("stopped: another request failed")
        payload, problem = self._ask(self._body(self.messages(request)), stop)
        output = None
        if problem is None:
            output, problem = _answer_text(payload)
        if problem is not None:
            self._malformed(index, request, problem)
            return ""
        output = redact(output, self._key)  # a server echoing the key never gets it into answers or the cache
        record = {"key": key, "model": self.model, "output": output, **_cache_fields(payload, self._key),
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
