"""METEOR 1.5 (pycocoevalcap's ``meteor-1.5.jar``, ``-l en -norm``) in one long-lived JVM per process,
scoring segments on every core.

The protocol is pycocoevalcap's: ``SCORE ||| ref 1 ||| ... ||| ref n ||| hypothesis`` answers one line
of sufficient statistics for a segment; ``EVAL ||| stats 1 ||| ... ||| stats n`` answers one score a
segment and then the corpus score, which Meteor computes from the *sum* of the statistics (not a mean
of segment scores). The differences here, none of which changes a number:

- the SCORE lines of a call are written by a writer thread while the caller reads the answers
  (pipelined, not one round trip a segment);
- with a JDK, the JVM runs a 70-line driver (:data:`THREADED_SERVER_SOURCE`, compiled once into the
  user cache) instead of the jar's ``-stdio`` loop: the same configuration (``Meteor``'s own argument
  parser), the same per-line code as that loop (read from the jar's ``Meteor.scoreStdio``), but lines
  scored by several threads, each with a ``MeteorScorer`` copy sharing the read-only tables (Meteor's
  own copy constructor, made for this), and answers written in request order. One table load, every
  core. Without ``javac`` the jar's loop runs, one JVM a worker;
- segment statistics are kept (bounded cache keyed by the tokenised hypothesis and references), so a
  breakdown by group, or a second call on the same captions, re-scores nothing;
- a corpus score is one ``EVAL`` of the statistics summed here as Meteor sums them (integer counts, so
  the sum is exact, and a perfect segment adds no chunk: :func:`aggregate_stats`); Meteor's answer
  equals its answer to the long ``EVAL`` line;
- one lock guards the whole exchange (thread-safe), every read has a timeout, a dead or hung JVM
  raises :class:`MeteorError` and is restarted by the next call, and the JVM is closed at exit (it also
  exits by itself when this process dies: its stdin closes);
- the JVM starts in the background (:meth:`MeteorServer.start`), so its ~8 s start overlaps with
  tokenisation and the other metrics.

Finding Java, compiling the driver and the JVM's pipes (the writer thread, stopping it) are
:mod:`diffbench.captions.java`'s, shared with the tokenizer.

    >>> from diffbench.captions.meteor import meteor_segment_line
    >>> meteor_segment_line("a red car", ["the car is red", "a red  car |||"])
    'SCORE ||| the car is red ||| a red car  ||| a red car'
"""

from __future__ import annotations

import atexit
import collections
import os
import queue
import subprocess
import threading
import time

import numpy as np

from diffbench.captions.java import (JavaNotFoundError, compiled_class, find_java, pycocoevalcap_dir, stop_process,
                                     widen_pipe, write_in_background)
from diffbench.captions.stats import check_coco_dicts

DEFAULT_TIMEOUT_S = float(os.environ.get("DIFFBENCH_METEOR_TIMEOUT", "180"))
JVM_OPTIONS = ("-Xmx2G", "-XX:+UseParallelGC", "-Dfile.encoding=UTF-8")  # the throughput collector: no concurrent GC threads
METEOR_ARGS = ("-", "-", "-stdio", "-l", "en", "-norm")  # pycocoevalcap's (meteor/meteor.py)
_STATS_CACHE_LIMIT = 200_000
_EOF = object()


#: The threaded driver. ``answer`` is the jar's ``Meteor.scoreStdio`` (pycocoevalcap's build, whose
#: EVAL answers each statistics line and then their sum) for one line: its SCORE and EVAL, the two
#: commands pycocoevalcap sends (the jar's SING is not offered); lines are scored in parallel
#: and answered in order. A scorer copy shares the synonym and paraphrase tables, which scoring only
#: reads (``ParaphraseTransducer.translate`` looks up, never adds), and owns its stemmer.
THREADED_SERVER_SOURCE = """\
import edu.cmu.meteor.scorer.MeteorConfiguration;
import edu.cmu.meteor.scorer.MeteorScorer;
import edu.cmu.meteor.scorer.MeteorStats;
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.concurrent.*;

public final class DiffbenchMeteorServer {
    public static void main(String[] args) throws Exception {
        int threads = Math.max(1, Integer.getInteger("diffbench.threads", 1));
        MeteorScorer shared = new MeteorScorer(new MeteorConfiguration(Meteor.createPropertiesFromArgs(args, 2)));
        ThreadLocal<MeteorScorer> scorer = ThreadLocal.withInitial(() -> new MeteorScorer(shared));
        ExecutorService pool = Executors.newFixedThreadPool(threads, task -> {
            Thread thread = new Thread(task, "meteor");
            thread.setDaemon(true);
            return thread;
        });
        BlockingQueue<Future<String>> answers = new LinkedBlockingQueue<>();
        PrintStream out = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16),
                                          false, "UTF-8");
        Thread writer = new Thread(() -> {
            try {
                for (String text; (text = answers.take().get()) != null; ) {
                    out.print(text);
                    if (answers.isEmpty()) out.flush();
                }
                out.flush();
            } catch (Throwable error) {  // a line Meteor could not score: die, as the jar's loop does
                error.printStackTrace();
                System.exit(1);
            }
        }, "writer");
        writer.start();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            String request = line;
            answers.put(pool.submit(() -> answer(scorer.get(), request)));
        }
        answers.put(CompletableFuture.completedFuture(null));
        writer.join();
        System.exit(0);
    }

    static String answer(MeteorScorer scorer, String line) {
        String nl = System.lineSeparator();
        if (line.startsWith("SCORE") || line.startsWith("score")) {
            String[] part = line.split("\\\\|\\\\|\\\\|");
            if (part.length < 3) return "Error: specify hypothesis and at least one reference" + nl;
            ArrayList<String> refs = new ArrayList<>();
            for (int i = 1; i < part.length - 1; i++) refs.add(part[i].trim());
            return scorer.getMeteorStats(part[part.length - 1].trim(), refs).toString() + nl;
        }
        if (line.startsWith("EVAL") || line.startsWith("eval")) {
            String[] part = line.split("\\\\|\\\\|\\\\|");
            if (part.length < 2) return "Error: specify Meteor stats" + nl;
            StringBuilder text = new StringBuilder();
            MeteorStats total = new MeteorStats();
            for (int i = 1; i < part.length; i++) {
                MeteorStats stats = new MeteorStats(part[i].trim());
                scorer.computeMetrics(stats);
                text.append(stats.score).append(nl);
                total.addStats(stats);
            }
            scorer.computeMetrics(total);
            return text.append(total.score).append(nl).toString();
        }
        return "Error: specify SCORE or EVAL" + nl;
    }
}
"""


def meteor_jar():
    return pycocoevalcap_dir() / "meteor" / "meteor-1.5.jar"


def threaded_driver(java: str | None = None):
    """The folder of the compiled threaded driver, or ``None`` (no Java, or no ``javac``)."""
    try:
        return compiled_class(find_java(java), "DiffbenchMeteorServer", THREADED_SERVER_SOURCE, meteor_jar())
    except JavaNotFoundError:
        return None


class MeteorError(RuntimeError):
    """The METEOR JVM died, hung past the timeout, or answered something unexpected."""


def _clean(text: str) -> str:
    """What pycocoevalcap does to a hypothesis (drop ``|||``, collapse double spaces), plus no line breaks."""
    return text.replace("\r", " ").replace("\n", " ").replace("|||", "").replace("  ", " ")


def meteor_segment_line(hypothesis: str, references: list[str]) -> str:
    """The ``SCORE`` line pycocoevalcap sends for one tokenised segment.

    pycocoevalcap cleans only the hypothesis; PTB-tokenised references never hold ``|||`` (the lexer
    splits it into ``| | |``), so cleaning them too changes nothing there and keeps raw input safe.
    """
    return " ||| ".join(("SCORE", " ||| ".join(_clean(r) for r in references), _clean(hypothesis)))


def parse_stats(stats: list[str]) -> np.ndarray:
    """Segment statistics lines as a (segments, fields) array."""
    if not stats:
        raise ValueError("METEOR needs at least one segment")
    return np.asarray([[float(v) for v in line.split()] for line in stats], dtype=np.float64)


def effective_stats(stats: np.ndarray) -> np.ndarray:
    """Segment statistics as Meteor's ``MeteorStats.addStats`` adds them into a sum.

    A line holds: test and reference length, test and reference function words, the (test, reference)
    matches of each stage, then chunks, test and reference word matches. ``addStats`` adds every field,
    except that a *perfect* segment (every word of both sides matched, in one chunk) adds no chunk, so
    that it costs no fragmentation penalty in the corpus score. The sum of any selection of these rows
    (a sample drawn twice: its row twice) is what Meteor sums for that corpus.
    """
    if stats.ndim != 2 or stats.shape[1] < 7:
        raise ValueError(f"unexpected METEOR statistics of shape {stats.shape}")
    chunks_col = stats.shape[1] - 3
    test_matches = stats[:, 4:chunks_col:2].sum(axis=1)
    ref_matches = stats[:, 5:chunks_col:2].sum(axis=1)
    perfect = (test_matches == stats[:, 0]) & (ref_matches == stats[:, 1]) & (stats[:, chunks_col] == 1)
    effective = stats.copy()
    effective[perfect, chunks_col] = 0.0
    return effective


def aggregate_stats(stats: np.ndarray) -> list[float]:
    """Sum segment statistics as Meteor's ``MeteorStats.addStats`` does (:func:`effective_stats`). All fields
    are integer counts: the sum is exact, and Meteor's score of the sum equals its score of the long
    ``EVAL`` line."""
    return [float(v) for v in effective_stats(stats).sum(axis=0)]


#: Meteor 1.5's parameters for ``-l en`` and its default task (alpha, beta, gamma, delta) and the weights of its
#: stages (exact, stem, synonym, paraphrase): what ``MeteorScorer.computeMetrics`` scores a statistics line with
METEOR_EN_PARAMETERS = (0.85, 0.2, 0.6, 0.75)
METEOR_EN_STAGE_WEIGHTS = (1.0, 0.6, 0.8, 0.6)


def score_of_stats(totals) -> np.ndarray:
    """Meteor's score of each statistics line (a segment's, or a sum: :func:`aggregate_stats`), computed here as
    Meteor 1.5's ``MeteorScorer.computeMetrics`` computes it: precision and recall of the stage matches weighted by
    the stage weights, content words by delta and function words by 1 - delta; their alpha-weighted harmonic
    mean; the fragmentation penalty gamma * (chunks / mean matches) ** beta (none for a line whose every word of
    both sides matched in one chunk); NaN scores 0, negative scores 0. A line: test and reference length and
    function words, then each stage's (test content, reference content, test function, reference function)
    matches, then chunks, test and reference word matches.

    Equal to the JVM's ``EVAL`` answer (:meth:`MeteorServer.score_summed_many`) to within 1e-15 (tested on
    resampled sums of real Spot-the-Diff statistics): a bootstrap scores its 1,000 sums here in a millisecond,
    where one exchange with a cold JVM takes about a second.

    >>> float(score_of_stats([[3, 3, 1, 1, 2, 2, 1, 1, *[0] * 12, 1, 3, 3]])[0])  # a perfect segment
    1.0
    """
    totals = np.atleast_2d(np.asarray(totals, dtype=np.float64))
    alpha, beta, gamma, delta = METEOR_EN_PARAMETERS
    chunks_col = totals.shape[1] - 3
    stages = totals[:, 4:chunks_col].reshape(len(totals), -1, 4)
    weights = np.asarray(METEOR_EN_STAGE_WEIGHTS[: stages.shape[1]])
    test_length, ref_length, test_function, ref_function = totals[:, :4].T
    test_weighted = (stages[:, :, 0] * weights * delta).sum(axis=1) + (stages[:, :, 2] * weights * (1.0 - delta)).sum(axis=1)
    ref_weighted = (stages[:, :, 1] * weights * delta).sum(axis=1) + (stages[:, :, 3] * weights * (1.0 - delta)).sum(axis=1)
    test_matches = stages[:, :, 0].sum(axis=1) + stages[:, :, 2].sum(axis=1)
    ref_matches = stages[:, :, 1].sum(axis=1) + stages[:, :, 3].sum(axis=1)
    chunks = totals[:, chunks_col]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = test_weighted / (delta * (test_length - test_function) + (1.0 - delta) * test_function)
        recall = ref_weighted / (delta * (ref_length - ref_function) + (1.0 - delta) * ref_function)
        f_mean = 1.0 / ((1.0 - alpha) / precision + alpha / recall)
        whole = (test_matches == test_length) & (ref_matches == ref_length) & (chunks == 1)
        fragmentation = np.where(whole, 0.0, chunks / ((test_matches + ref_matches) / 2))
        score = f_mean * (1.0 - gamma * fragmentation**beta)
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


def eval_summed_line(total) -> str:
    """The ``EVAL`` line of one statistics line (a segment's, or a sum of them)."""
    return "EVAL ||| " + " ".join(repr(float(v)) for v in total)


def cached_answers(cache: dict, lines: list[str], score) -> list[str]:
    """The answer to each line: ``score(the lines not in cache)``, the cache for the rest.

    The answers are gathered before the cache is emptied, which it is when it would outgrow
    ``_STATS_CACHE_LIMIT`` (a long-lived process, such as the Space, scores without bound).

    >>> cache = {"a": "1"}
    >>> cached_answers(cache, ["a", "b", "a"], lambda missing: [m.upper() for m in missing]), cache
    (['1', 'B', '1'], {'a': '1', 'b': 'B'})
    """
    missing = list(dict.fromkeys(line for line in lines if line not in cache))
    known = dict(zip(missing, score(missing))) if missing else {}
    answers = [known[line] if line in known else cache[line] for line in lines]
    if len(cache) + len(missing) > _STATS_CACHE_LIMIT:
        cache.clear()
    cache.update(known)
    return answers


class MeteorServer:
    """One METEOR JVM fed over stdin; safe to share between threads.

    ``threads=None`` runs the jar's own ``-stdio`` loop (pycocoevalcap's command); ``threads=k`` the
    threaded driver scoring on ``k`` threads (the jar's loop where it cannot be compiled).
    """

    def __init__(self, java: str | None = None, timeout: float = DEFAULT_TIMEOUT_S, command: list[str] | None = None,
                 threads: int | None = None):
        self.java = java
        self.timeout = timeout
        self.threads = threads
        self._command = command
        self._lock = threading.RLock()
        self._process: subprocess.Popen | None = None
        self._lines: queue.Queue | None = None
        self._pending: collections.deque = collections.deque()
        self._stderr_tail: collections.deque = collections.deque(maxlen=50)
        self._stats_cache: dict[str, str] = {}
        self.starts = 0  # JVMs started by this server (restarts included)
        self.lines_received = 0  # answers read from the current JVM

    # -- process management -------------------------------------------------------------------
    def command(self) -> list[str]:
        if self._command is not None:
            return list(self._command)
        java, jar = find_java(self.java), meteor_jar()
        driver = threaded_driver(java) if self.threads else None
        if driver is None:
            return [java, "-jar", *JVM_OPTIONS, str(jar), *METEOR_ARGS]
        return [java, *JVM_OPTIONS, f"-Ddiffbench.threads={self.threads}", "-cp", os.pathsep.join([str(driver), str(jar)]),
                "DiffbenchMeteorServer", *METEOR_ARGS]

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the JVM if none is running; returns at once (the JVM loads its tables meanwhile)."""
        with self._lock:
            if self.alive:
                return
            self._stop()
            command = self.command()
            cwd = pycocoevalcap_dir() / "meteor" if self._command is None else None
            self._process = subprocess.Popen(
                command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            self.starts += 1
            self.lines_received = 0
            widen_pipe(self._process.stdout)
            widen_pipe(self._process.stdin)
            self._lines = queue.Queue()
            self._pending = collections.deque()
            self._stderr_tail.clear()
            threading.Thread(target=self._pump_stdout, args=(self._process, self._lines), daemon=True).start()
            threading.Thread(target=self._pump_stderr, args=(self._process,), daemon=True).start()

    @staticmethod
    def _pump_stdout(process: subprocess.Popen, lines: queue.Queue) -> None:
        # Whole chunks, not a line at a time: this thread needs the GIL once a chunk, so the answers
        # keep flowing while the caller's thread computes the other metrics' statistics.
        fd, partial = process.stdout.fileno(), b""
        try:
            while chunk := os.read(fd, 1 << 20):
                *complete, partial = (partial + chunk).split(b"\n")
                if complete:
                    lines.put(complete)
        except (OSError, ValueError):
            pass
        lines.put(_EOF)

    def _pump_stderr(self, process: subprocess.Popen) -> None:
        try:
            for line in process.stderr:
                self._stderr_tail.append(line.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):
            pass

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)

    def close(self) -> None:
        """Stop the JVM (a later call starts a new one)."""
        with self._lock:
            self._stop()

    # -- protocol -----------------------------------------------------------------------------
    def _fail(self, message: str) -> MeteorError:
        """Kill the JVM (its protocol state is unknown now) and build the error to raise."""
        tail = " | ".join(list(self._stderr_tail)[-5:])
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self._stop()
        return MeteorError(f"METEOR: {message}" + (f" (JVM stderr: {tail})" if tail else "") + "; the next call starts a new JVM")

    def _read(self) -> str:
        if not self._pending:
            try:
                batch = self._lines.get(timeout=self.timeout)
            except queue.Empty:
                raise self._fail(f"no answer from the JVM within {self.timeout:g} s") from None
            if batch is _EOF:
                self._lines.put(_EOF)  # every later read sees it too
                code = self._process.poll() if self._process else None
                raise self._fail(f"the JVM exited (code {code}) before answering")
            self._pending.extend(batch)
        self.lines_received += 1
        return self._pending.popleft().decode("utf-8").strip()

    def _exchange(self, requests: list[str], expected: int | None = None) -> list[str]:
        """Write the request lines from a writer thread and read ``expected`` answer lines (one a request)."""
        payload = ("\n".join(requests) + "\n").encode("utf-8")
        writer, write_error = write_in_background(self._process.stdin, payload)
        try:
            answers = [self._read() for _ in range(len(requests) if expected is None else expected)]
        finally:
            writer.join(timeout=self.timeout)
        if write_error:
            raise self._fail(f"could not write to the JVM: {write_error[0]}")
        return answers

    def score_lines(self, lines: list[str]) -> list[str]:
        """Meteor's answers to these ``SCORE`` lines (one statistics line each), uncached."""
        with self._lock:
            self.start()
            answers = self._exchange(lines)
            for answer in answers:
                try:
                    [float(v) for v in answer.split()]
                except ValueError:
                    raise self._fail(f"unexpected answer {answer[:200]!r}") from None
            return answers

    def segment_stats(self, segments: list[tuple[str, list[str]]]) -> list[str]:
        """Meteor's statistics line for each (tokenised hypothesis, tokenised references)."""
        lines = [meteor_segment_line(h, refs) for h, refs in segments]
        with self._lock:
            return cached_answers(self._stats_cache, lines, self.score_lines)

    def eval_segments(self, stats: list[str]) -> tuple[list[float], float]:
        """pycocoevalcap's exchange: ``EVAL ||| stats 1 ||| ... ||| stats n`` answers n segment scores, then
        the corpus score."""
        eval_line = "EVAL ||| " + " ||| ".join(stats)
        with self._lock:
            self.start()
            answers = self._exchange([eval_line], expected=len(stats) + 1)
        try:
            values = [float(a) for a in answers]
        except ValueError:
            raise self._fail(f"unexpected EVAL answer {answers[:3]!r}") from None
        return values[:-1], values[-1]

    def corpus_score(self, stats: list[str]) -> float:
        """The corpus METEOR of these segments (what ``EVAL ||| stats 1 ||| ... ||| stats n`` answers)."""
        return self.score_summed(aggregate_stats(parse_stats(stats)))

    def score_summed(self, total: list[float]) -> float:
        """Meteor's score of aggregated statistics (see :func:`aggregate_stats`)."""
        return self.score_summed_many([total])[0]

    def score_summed_many(self, totals) -> list[float]:
        """Meteor's score of each statistics line (a segment's as given, or a sum: :func:`aggregate_stats`),
        all in one exchange (a bootstrap's resamples)."""
        lines = [eval_summed_line(total) for total in totals]
        if not lines:
            return []
        with self._lock:
            self.start()
            # One statistics line answers two lines: its own score (computed from the line as given),
            # then the "corpus" score of it re-aggregated, which would drop a lone perfect chunk again.
            answers = self._exchange(lines, expected=2 * len(lines))
        try:
            return [float(answer) for answer in answers[::2]]
        except ValueError:
            raise self._fail(f"unexpected EVAL answer {answers[:2]!r}") from None

    def clear_cache(self) -> None:
        with self._lock:
            self._stats_cache.clear()


def default_workers() -> int:
    """METEOR workers a process runs (threads of one JVM, or JVMs without ``javac``):
    ``$DIFFBENCH_METEOR_WORKERS``, else one a core, at most 8."""
    value = os.environ.get("DIFFBENCH_METEOR_WORKERS")
    if value:
        return max(1, int(value))
    return max(1, min(os.cpu_count() or 1, 8))


class MeteorPool:
    """METEOR workers scoring the segments of one call in parallel; safe to share.

    With a JDK (``threaded``, the default where the driver compiles) the pool is one JVM scoring on
    ``workers`` threads: one paraphrase-table load, shared. Otherwise it is ``workers`` JVMs running the
    jar's own loop, each loading its own table, used as follows.

    A call's segments are cut into chunks that the *ready* JVMs pull from a shared counter, so a JVM
    still loading its tables (6-8 s) never holds work back. The first JVM starts on first use; the
    others start only once it is ready, so that on a machine with few cores they do not slow the
    first call's start (measured on 2 cores: two JVMs starting together made the first call 25 %
    slower), and only as many as a call's size repays (:meth:`workers_for`). Every answer is Meteor's own for that line, so the split
    changes no number. Statistics lines are cached here (bounded), for every worker.
    """

    MIN_CHUNK = 500  # segments below which one more JVM costs more than it saves
    CHUNK = 250  # segments a worker takes at a time
    SEGMENTS_PER_LOAD = 40_000  # new segments that repay one more JVM's load without a spare core

    def __init__(self, workers: int | None = None, threaded: bool | None = None, **server_options):
        workers = workers or default_workers()
        if threaded is None:
            threaded = "command" not in server_options and threaded_driver(server_options.get("java")) is not None
        self.threaded = threaded
        if threaded:
            self.servers = [MeteorServer(threads=workers, **server_options)]
        else:
            self.servers = [MeteorServer(**server_options) for _ in range(workers)]
        self._ready = [threading.Event() for _ in self.servers]
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._stats_cache: dict[str, str] = {}

    @property
    def starts(self) -> int:
        return sum(s.starts for s in self.servers)

    @property
    def alive(self) -> bool:
        return any(s.alive for s in self.servers)

    def workers_for(self, segments: int) -> int:
        """How many JVMs a call of this many new segments may use.

        A JVM costs ~8 CPU-seconds to load its paraphrase table. With a core to spare beyond this
        process's Python thread and the first JVM, that load is free and every core gets a JVM; on a
        machine without one (2 cores) it slows the first JVM and the statistics computed meanwhile, and
        pays off only on a job of many more segments than the load takes (measured on 2 cores: a second
        JVM made a 9,524-segment call slower, cold and warm). JVMs already running always count.
        """
        spare_cores = max(0, (os.cpu_count() or 1) - 2)
        limit = max(1 + spare_cores + segments // self.SEGMENTS_PER_LOAD, sum(s.alive for s in self.servers))
        return max(1, min(len(self.servers), segments // self.MIN_CHUNK, limit))

    def start(self, segments: int = 1) -> None:
        """Start the first JVM if none runs, in the background (it loads its tables meanwhile); when it is
        ready, the others a call of ``segments`` segments may use."""
        with self._start_lock:
            wanted = self.workers_for(segments)
            for i, server in enumerate(self.servers):
                if not server.alive:
                    self._ready[i].clear()
            if any(server.alive for server in self.servers[:wanted]):
                first = next(i for i, server in enumerate(self.servers[:wanted]) if server.alive)
            else:
                first = 0
                self._launch(0)
            rest = [i for i in range(wanted) if i != first and not self.servers[i].alive]
            if rest:
                threading.Thread(target=self._start_after, args=(first, rest), daemon=True,
                                 name="diffbench-meteor-start").start()

    def _launch(self, i: int) -> None:
        """Start JVM ``i`` and mark it ready when it has answered a probe (or failed: its next call says why)."""
        server = self.servers[i]
        server.start()

        def probe() -> None:
            try:
                server.score_lines([meteor_segment_line("a", ["a"])])
            except MeteorError:
                pass
            self._ready[i].set()

        threading.Thread(target=probe, daemon=True, name="diffbench-meteor-probe").start()

    def _start_after(self, first: int, rest: list[int]) -> None:
        self._ready[first].wait(timeout=self.servers[first].timeout)
        with self._start_lock:
            for i in rest:
                if not self.servers[i].alive:
                    self._launch(i)

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def clear_cache(self) -> None:
        with self._lock:
            self._stats_cache.clear()

    def segment_stats(self, segments: list[tuple[str, list[str]]]) -> list[str]:
        """Meteor's statistics line for each (tokenised hypothesis, tokenised references)."""
        lines = [meteor_segment_line(h, refs) for h, refs in segments]
        with self._lock:
            return cached_answers(self._stats_cache, lines, self._score_in_parallel)

    def _score_in_parallel(self, lines: list[str]) -> list[str]:
        self.start(len(lines))
        k = self.workers_for(len(lines))
        if k == 1:
            return self.servers[0].score_lines(lines)
        chunks = [lines[i : i + self.CHUNK] for i in range(0, len(lines), self.CHUNK)]
        answers: list[list[str] | None] = [None] * len(chunks)
        taken = iter(range(len(chunks)))
        take_lock = threading.Lock()
        errors: list[BaseException] = []
        done = threading.Event()

        def work(i: int) -> None:
            try:
                while not self._ready[i].wait(0.05):  # a JVM still loading takes no chunk
                    if done.is_set():
                        return
                while not errors:
                    with take_lock:
                        n = next(taken, None)
                    if n is None:
                        return
                    answers[n] = self.servers[i].score_lines(chunks[n])
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(err)

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(k)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            if all(a is not None for a in answers) or errors:
                done.set()  # workers still waiting for their JVM give up
            for thread in threads:
                thread.join(timeout=0.05)
        if errors:
            raise errors[0]
        return [answer for chunk in answers for answer in chunk]

    def score_summed(self, total: list[float]) -> float:
        return self.servers[0].score_summed(total)

    def score_summed_many(self, totals) -> list[float]:
        return self.servers[0].score_summed_many(totals)

    def corpus_score(self, stats: list[str]) -> float:
        return self.servers[0].corpus_score(stats)

    def eval_segments(self, stats: list[str]) -> tuple[list[float], float]:
        return self.servers[0].eval_segments(stats)


_DEFAULT: MeteorPool | None = None
_DEFAULT_LOCK = threading.Lock()


def get_meteor() -> MeteorPool:
    """The process-wide METEOR pool (its JVMs closed at exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = MeteorPool()
            atexit.register(_DEFAULT.close)
        return _DEFAULT


def wait_until_ready(server) -> float:
    """Block until the (first) JVM answers (for benchmarks and warm-up); returns the seconds waited."""
    started = time.perf_counter()
    server.segment_stats([("a", ["a"])])
    return time.perf_counter() - started


NAMES = ("METEOR",)


class Meteor:
    """METEOR 1.5 with pycocoevalcap's interface, on the process's JVM pool.

    ``compute_score(gts, res)`` sends what ``pycocoevalcap.meteor.Meteor.compute_score`` sends (one
    ``EVAL`` line of every segment's statistics) and returns its answer: ``(corpus score, [segment
    scores])``. ``prepare(corpus)`` / ``score(selection)`` give the corpus score of any subset from
    the summed statistics (:func:`aggregate_stats`): one short ``EVAL`` a subset.
    """

    names = NAMES

    def __init__(self, server: MeteorPool | MeteorServer | None = None):
        self.server = server or get_meteor()

    def method(self) -> str:
        return "METEOR"

    def compute_score(self, gts: dict, res: dict):
        ids = check_coco_dicts(gts, res)
        stats = self.server.segment_stats([(res[i][0], gts[i]) for i in ids])
        return tuple(reversed(self.server.eval_segments(stats)))

    def prepare(self, corpus, stats: list[str] | None = None) -> None:
        if stats is None:
            stats = self.server.segment_stats(list(zip(corpus.predictions, corpus.references)))
        self.stats = parse_stats(stats)

    def score(self, selection: np.ndarray) -> dict[str, float]:
        return {"METEOR": self.server.score_summed(aggregate_stats(self.stats[selection]))}
