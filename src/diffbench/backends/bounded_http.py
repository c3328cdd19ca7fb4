"""HTTP POSTs bounded in time and in size, over kept-alive connections: a server that dribbles or floods cannot hang
or swamp the client.

httpx's own timeouts bound each read, not a request: a server sending a byte every few seconds never trips
them. Here one try is bounded as a whole, from connecting to the last byte of the answer: one
:class:`Watchdog` thread a transport shuts down the socket of a try past its deadline, which wakes the read
blocked on it (the plain socket under a TLS one too). The answer's body is read as it streams in and dropped
at a size bound (:func:`read_bounded`), so a 50 MB answer never sits in memory.

- :class:`BoundedTransport` ``(headers, timeout, max_body_bytes)``: ``post(url, body) -> Reply`` (status,
  reason phrase, ``Retry-After``, the body's bytes, or ``None`` and why it was dropped). A transport failure
  (httpx's, or the deadline) raises :class:`TransportFailure`: ``.error`` is httpx's exception, ``.expired``
  says whether the deadline cut the try. Each calling thread gets a connection of its own (a :class:`Lane`:
  an ``httpx.Client`` holding one connection), kept alive for later tries. ``close()`` ends them all.
- :func:`caused_by`: whether an exception was raised from one of a kind (httpx wraps httpcore wraps the OS's).

Needs httpx (the ``[api]`` extra), imported when a transport is made and used, never with the package.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from typing import NamedTuple


class Reply(NamedTuple):
    """What one try got: the status, the reason phrase, ``Retry-After`` (raw), and the body's bytes, or
    ``None`` with ``problem`` saying why the body was dropped."""

    status: int
    reason: str
    retry_after: str | None
    data: bytes | None
    problem: str | None


class TransportFailure(Exception):
    """A try failed below HTTP: ``error`` is httpx's exception, ``expired`` whether the deadline cut it."""

    def __init__(self, error: BaseException, expired: bool):
        super().__init__(str(error))
        self.error = error
        self.expired = expired


def read_bounded(response, limit: int) -> tuple[bytes | None, str | None]:
    """The body, read as it streams in: ``(bytes, None)``, or ``(None, why)`` once it passes ``limit`` bytes
    (the rest is never read: the connection is dropped) or does not decode."""
    import httpx  # the optional [api] extra: only a transport's tries get here

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


def caused_by(err: BaseException, kind: type) -> bool:
    """Whether ``err`` or an exception it was raised from (httpx wraps httpcore wraps the OS's) is a ``kind``.

    >>> try:
    ...     try:
    ...         raise ConnectionRefusedError()
    ...     except OSError as inner:
    ...         raise RuntimeError("wrapped") from inner
    ... except RuntimeError as outer:
    ...     caused_by(outer, ConnectionRefusedError), caused_by(outer, TimeoutError)
    (True, False)
    """
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kind):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class Lane:
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


class Watchdog:
    """One thread a transport that expires each lane whose try passed its deadline (a timer thread a try
    cost 0.7 ms to start; this costs a lock). Started on first use, ended by ``close``."""

    def __init__(self):
        self._deadlines: dict[Lane, float] = {}
        self._changed = threading.Condition()
        self._thread = None
        self._closed = False

    @contextlib.contextmanager
    def watching(self, lane: Lane, seconds: float):
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


class BoundedTransport:
    """POSTs of JSON, each try within ``timeout`` seconds as a whole and its answer under ``max_body_bytes``
    (see the module docstring); safe to share between threads, one connection a thread at a time."""

    def __init__(self, headers: dict, timeout: float, max_body_bytes: int):
        import httpx  # the optional [api] extra: imported when a client is made, not with the package

        self.headers = headers
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        # one TLS context for every connection (making one costs ~30 ms); httpx<0.28 makes its own
        self._verify = httpx.create_ssl_context() if hasattr(httpx, "create_ssl_context") else True
        self._lanes: list[Lane] = []
        self._idle_lanes: queue.SimpleQueue = queue.SimpleQueue()
        self._watchdog = Watchdog()
        self._lock = threading.Lock()

    def post(self, url: str, body: dict) -> Reply:
        """One try: POST ``body`` as JSON to ``url``; raises :class:`TransportFailure` below HTTP."""
        import httpx  # see __init__

        lane = self._lane()
        try:
            with self._watchdog.watching(lane, self.timeout):
                with lane.http.stream("POST", url, json=body, extensions={"trace": lane.trace}) as response:
                    data, problem = read_bounded(response, self.max_body_bytes)
                    return Reply(response.status_code, response.reason_phrase, response.headers.get("retry-after"),
                                 data, problem)
        except httpx.HTTPError as err:
            raise TransportFailure(err, lane.expired) from None
        finally:
            self._idle_lanes.put(lane)

    def _lane(self) -> Lane:
        """An idle connection, or a new one (at most one a calling thread at a time)."""
        import httpx  # see __init__

        try:
            return self._idle_lanes.get_nowait()
        except queue.Empty:
            pass
        lane = Lane(httpx.Client(headers=self.headers, timeout=self.timeout, verify=self._verify,
                                 limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)))
        with self._lock:
            self._lanes.append(lane)
        return lane

    def close(self) -> None:
        """Close every connection and end the watchdog."""
        with self._lock:
            lanes, self._lanes = self._lanes, []
        for lane in lanes:
            lane.http.close()
        self._watchdog.close()
