"""Ask an OpenAI-compatible chat endpoint: prompt + images in, generated text out, every answer cached.

Works with any server that speaks OpenAI's ``POST {base_url}/chat/completions`` (OpenAI, Gemini's
``https://generativelanguage.googleapis.com/v1beta/openai/``, vLLM, TGI, ``transformers serve``). Needs
only ``httpx`` (the ``[api]`` extra: ``httpx>=0.27``; not the ``openai`` package).

Interface (stable; the task layer uses only these):

- :class:`ChatRequest` ``(prompt, images=())``: one question; ``images`` are PIL images, sent first, each
  as an ``image_url`` part holding a ``data:image/png;base64,...`` URI, then the prompt as a ``text`` part,
  in one ``user`` message.
- :class:`OpenAIChatClient` ``(base_url, model, *, api_key_env="OPENAI_API_KEY", cache_dir=None,
  concurrency=4, max_new_tokens=128, temperature=0.0, extra_body=None, max_retries=6, backoff_base=1.0,
  backoff_max=60.0, timeout=120.0)``; ``client.generate(requests, on_answer=None) -> list[str]`` in request
  order; ``on_answer(index, text, cached)`` is called as each answer arrives (from worker threads, one
  call at a time). Use it as a context manager (or call ``close()``).
- :class:`ChatAPIError`: a request the server refused for good (HTTP 4xx other than 408/409/429, or
  retries used up). ``.status`` (``None`` for a network failure), ``.answers`` (the run's answers so
  far, ``None`` where unanswered; every answered one is also in the cache), ``str(err)`` = the server's
  message. A later run with the same cache asks only what is missing.

Behaviour:

- The key is read from the environment variable ``api_key_env`` when the client is made and sent only as
  ``Authorization: Bearer ...``. It is never logged, never cached, never part of a message or a repr;
  server messages that echo it have it replaced by ``***``. Unset variable: no ``Authorization`` header
  (local servers need none).
- ``concurrency`` requests in flight (a thread pool on one ``httpx.Client``).
- Retries on HTTP 408, 409, 429, 5xx and on connection errors / timeouts, at most ``max_retries`` times,
  waiting ``Retry-After`` (seconds or an HTTP date) when the server sends it, else
  ``min(backoff_max, backoff_base * 2**attempt)`` with up to 10 % jitter.
- On a non-retryable error no new request starts, those in flight finish (and are cached), then
  :class:`ChatAPIError` is raised.
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
import email.utils
import hashlib
import io
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: statuses worth asking again: timeout, conflict, rate limit (and every 5xx)
RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class ChatRequest:
    """One question: the prompt text and the images shown before it (PIL images)."""

    prompt: str
    images: tuple = ()


class ChatAPIError(RuntimeError):
    """The server refused a request for good; ``answers`` holds what the run got before it stopped."""

    def __init__(self, message: str, status: int | None = None, answers: list | None = None):
        super().__init__(message)
        self.status = status
        self.answers = answers if answers is not None else []


class _Retryable(Exception):
    def __init__(self, message: str, wait_s: float | None = None):
        super().__init__(message)
        self.wait_s = wait_s


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
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _server_message(response) -> str:
    """The error text a server sent: OpenAI's ``error.message``, FastAPI's ``detail``, or the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if body.get("detail"):
            return str(body["detail"])
        if body.get("message"):
            return str(body["message"])
    return json.dumps(body)[:500]


def _content_text(content) -> str:
    """``message.content`` as text: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


class OpenAIChatClient:
    """A client for one model behind one OpenAI-compatible endpoint (see the module docstring)."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", cache_dir=None,
                 concurrency: int = 4, max_new_tokens: int = 128, temperature: float = 0.0,
                 extra_body: dict | None = None, max_retries: int = 6, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, timeout: float = 120.0):
        import httpx

        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.concurrency = concurrency
        self.generation = {"max_tokens": max_new_tokens, "temperature": temperature, **(extra_body or {})}
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._key = os.environ.get(api_key_env) or None  # private: never logged, cached or shown
        if self._key is None:
            logger.info("%s is not set: requests to %s carry no Authorization header", api_key_env, self.base_url)
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._http = httpx.Client(headers=headers, timeout=timeout,
                                  limits=httpx.Limits(max_connections=concurrency))
        self._write_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIChatClient({self.base_url!r}, {self.model!r}, api_key_env={self.api_key_env!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._http.close()

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

    # -- asking ---------------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2**attempt)
        return delay * (1 + 0.1 * random.random())

    def _post_once(self, body: dict) -> dict:
        import httpx

        try:
            response = self._http.post(self.url, json=body)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as err:
            raise _Retryable(f"{type(err).__name__} talking to {self.url}: {self._redact(str(err))}") from None
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError:
                raise _Retryable(f"{self.url} answered 200 with a body that is not JSON") from None
        message = self._redact(_server_message(response))
        text = f"{self.url} answered HTTP {response.status_code}: {message}"
        if response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
            raise _Retryable(text, retry_after_seconds(response.headers.get("retry-after")))
        raise ChatAPIError(text, status=response.status_code)

    def _ask(self, body: dict, stop: threading.Event) -> dict:
        for attempt in range(self.max_retries + 1):
            try:
                return self._post_once(body)
            except _Retryable as err:
                if attempt == self.max_retries:
                    raise ChatAPIError(f"{err} (gave up after {self.max_retries} retries)") from None
                delay = err.wait_s if err.wait_s is not None else self._backoff(attempt)
                logger.warning("%s; retry %d/%d in %.1f s", err, attempt + 1, self.max_retries, delay)
                if stop.wait(delay):  # another request failed for good: do not keep retrying
                    raise ChatAPIError(f"{err} (stopped: another request failed)") from None
        raise AssertionError("unreachable")

    def _answer(self, request: ChatRequest, key: str, stop: threading.Event) -> str:
        if stop.is_set():
            raise ChatAPIError("stopped: another request failed")
        path = self._cache_path(key)
        response = self._ask(self._body(self.messages(request)), stop)
        try:
            choice = response["choices"][0]
            output = _content_text(choice["message"].get("content"))
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ChatAPIError(f"{self.url} answered without choices[0].message: "
                               f"{self._redact(json.dumps(response)[:300])}") from None
        record = {"key": key, "model": self.model, "output": output, "finish_reason": choice.get("finish_reason"),
                  "served_by": response.get("model"), "usage": response.get("usage"), "created": time.time()}
        with self._write_lock:
            self._write_cache(path, record)
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
                in_flight[pool.submit(self._answer, requests[index], keys[index], stop)] = index
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
            raise ChatAPIError(f"{failure} ({answered} of {len(requests)} answered and cached; "
                               "run again to ask the rest)", status=failure.status, answers=answers)
        return answers
