"""The Space's caption scoring in a worker process it can stop: a time bound that really ends the work.

A thread cannot be stopped in Python, so a scoring that ran past its bound on a thread went on
alone (its JVMs busy) and held up every later request. Here :class:`CaptionWorker` keeps one child
process, ``python -m diffbench.space.caption_worker``, that runs
:func:`diffbench.captions.scoring.score_predictions`; the child stays alive between requests, so its
PTB tokenizer JVM and METEOR JVMs stay warm, as in one process (it starts them as it starts, on a
one-caption scoring, so that the first visitor does not wait for them). A request that is not answered
within its bound gets the worker's whole process group (the child and its JVMs) killed; the next
request starts a fresh child.

The protocol: over the child's stdin / stdout, each message a pickle preceded by its length (8 bytes,
big-endian). A request is ``(predictions, rows)`` (``rows``: a ``datasets.Dataset`` of the columns
scoring reads, pickled by reference to its Arrow cache files; every row needs a prediction: see
:func:`diffbench.space.backend.score_caption_run`); an answer ``("ok", results)``,
``("missing_predictions", message)`` or ``("value_error", message)`` (the visitor's input: shown) or
``("error", message)`` (ours: logged). Only the Space's own process writes the requests: the pickles
never come from a visitor.

    >>> frame = _frame(b"abc")
    >>> frame[:8], frame[8:]
    (b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x03', b'abc')
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time

from diffbench.captions.metrics import score_captions
from diffbench.captions.scoring import MissingPredictionsError, score

#: the columns :func:`diffbench.captions.scoring.score_predictions` reads (the images stay behind)
SCORED_COLUMNS = ("id", "captions", "change_types", "distractor")


class WorkerTimeout(TimeoutError):
    """No answer within the bound: the worker was stopped (``busy`` False), or another request held it
    for the whole bound and this one never started (``busy`` True)."""

    def __init__(self, message: str, busy: bool = False):
        super().__init__(message)
        self.busy = busy


class WorkerFailed(RuntimeError):
    """The worker died or failed on our side (not the visitor's input)."""


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(8, "big") + payload


def scored_rows(rows):
    """``rows`` with only the columns scoring reads (a pickle of it names Arrow files, holds no images)."""
    return rows.select_columns([c for c in SCORED_COLUMNS if c in rows.column_names])


class CaptionWorker:
    """One scoring process, started on first use, kept warm, killed when a request exceeds its bound.

    One request at a time (a lock); a caller waiting for the lock waits within its own bound.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        atexit.register(self.close)

    def score(self, predictions: dict, rows, timeout_s: float):
        """``diffbench.captions.scoring.score(predictions, rows)`` (a ``Scored``: results and samples) in the
        worker, within ``timeout_s`` seconds of this
        call: ValueError for the input's problems (MissingPredictionsError when the one problem is ids
        without a prediction), :class:`WorkerTimeout`, :class:`WorkerFailed`."""
        deadline = time.monotonic() + timeout_s
        if not self._lock.acquire(timeout=max(timeout_s, 0)):
            raise WorkerTimeout("another scoring held the worker for the whole time bound", busy=True)
        try:
            process = self._started()
            request = pickle.dumps((predictions, scored_rows(rows)), protocol=pickle.HIGHEST_PROTOCOL)
            try:
                process.stdin.write(_frame(request))
                process.stdin.flush()
                kind, value = pickle.loads(self._read_frame(process, deadline))
            except WorkerTimeout:
                self._stop()
                raise
            except (OSError, EOFError, pickle.UnpicklingError) as err:
                self._stop()
                raise WorkerFailed(f"the scoring process stopped ({type(err).__name__}: {err})") from None
        finally:
            self._lock.release()
        if kind == "ok":
            return value
        if kind == "missing_predictions":
            raise MissingPredictionsError(value)
        if kind == "value_error":
            raise ValueError(value)
        raise WorkerFailed(value)

    def start(self) -> None:
        """Start the worker now (it imports the scorers while the Space warms up)."""
        with self._lock:
            self._started()

    def _started(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            # Its own process group, so that a stop ends its JVMs too; stderr shared with the server's log.
            self._process = subprocess.Popen([sys.executable, "-m", "diffbench.space.caption_worker"],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        return self._process

    @staticmethod
    def _read_frame(process: subprocess.Popen, deadline: float) -> bytes:
        fd = process.stdout.fileno()

        def read(n: int) -> bytes:
            chunks, left = [], n
            while left:
                wait = deadline - time.monotonic()
                if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                    raise WorkerTimeout("no answer within the time bound")
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    raise EOFError("the scoring process closed its output")
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)

        return read(int.from_bytes(read(8), "big"))

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs (its process group has the same id)."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the worker and its JVMs, at once
        except ProcessLookupError:
            pass
        process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def close(self) -> None:
        """Stop the worker (at exit, and in tests)."""
        self._stop()


def _serve() -> None:
    """The worker's loop: a request in, an answer out, until stdin closes."""
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the library prints goes to the log, never into the answers
    try:  # start the tokenizer and METEOR JVMs now, not in the first visitor's time (25 s on a loaded box)
        score_captions(["a red cube is gone"], [["the red cube is gone"]])
    except Exception as err:  # noqa: BLE001 -- the first request meets it again and reports it
        print(f"diffbench caption worker: warm-up failed: {type(err).__name__}: {err}", file=sys.stderr)
    while True:
        header = requests.read(8)
        if len(header) < 8:
            return
        predictions, rows = pickle.loads(requests.read(int.from_bytes(header, "big")))
        try:
            answer = ("ok", score(predictions, rows))  # Scored: results.json and samples.jsonl's records
        except MissingPredictionsError as err:
            answer = ("missing_predictions", str(err))
        except ValueError as err:
            answer = ("value_error", str(err))
        except Exception as err:  # noqa: BLE001 -- reported to the server, which logs it
            answer = ("error", f"{type(err).__name__}: {' '.join(str(err).split())[:300]}")
        answers.write(_frame(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)))
        answers.flush()


if __name__ == "__main__":
    _serve()
