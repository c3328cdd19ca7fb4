"""The COCO caption tokenizer: Stanford PTBTokenizer (CoreNLP 3.4.1, shipped by pycocoevalcap), batched.

This is pycocoevalcap's ``PTBTokenizer`` with four changes that leave every output identical on
well-formed captions:

- the strings go to the JVM in one batch per call, and each distinct string is tokenised once per
  process (a bounded cache);
- the JVM stays alive between calls, as METEOR's does: a 30-line Java driver (:data:`SERVER_SOURCE`,
  compiled once into the user cache with ``javac`` when a JDK is there) reads length-prefixed batches
  and hands each to CoreNLP's own ``PTBTokenizer.main`` with the command line pycocoevalcap uses, so
  the output is that command's byte for byte. Without ``javac`` (a JRE only) every call starts the
  command as pycocoevalcap does (slower, same output). Finding Java, compiling the driver and the
  JVM's pipes are :mod:`diffbench.captions.java`'s;
- every character Java's PTBLexer treats as a line break (``\\n``, ``\\r``, ``\\v``, ``\\f``, U+2028,
  U+2029) becomes a space first. pycocoevalcap replaces only ``\\n``, so a caption with ``\\r`` shifts
  every later caption onto the wrong sample there; here the line count is also checked;
- the JVM reads and writes UTF-8 whatever the locale, and runs with a timeout.

Java is required: an identical PTB tokenisation without Java is not possible in practice (the lexer is
a large JFlex grammar: quotes, contractions, abbreviations, Unicode normalisation), so without Java
every metric fails with :class:`~diffbench.captions.java.JavaNotFoundError` rather than give numbers that
differ silently.

    >>> from diffbench.captions.tokenizer import strip_punctuation
    >>> strip_punctuation("the car , is gone .")
    'the car is gone'
"""

from __future__ import annotations

import atexit
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path

from diffbench.captions.java import compiled_class, find_java, pycocoevalcap_dir, stop_process, write_in_background

#: Tokens pycocoevalcap drops after tokenisation (``pycocoevalcap/tokenizer/ptbtokenizer.py``).
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
#: Characters Java's PTBLexer ends a line on (measured on CoreNLP 3.4.1); they become spaces.
LINE_BREAKS = str.maketrans({c: " " for c in "\n\r\x0b\x0c\u2028\u2029"})
DEFAULT_TIMEOUT_S = float(os.environ.get("DIFFBENCH_TOKENIZER_TIMEOUT", "300"))
_CACHE_LIMIT = 500_000  # distinct strings kept per process (~100 MB at most on long captions)


class TokenizerError(RuntimeError):
    """The PTBTokenizer JVM failed, timed out or returned misaligned lines."""


def strip_punctuation(tokenized_line: str) -> str:
    """pycocoevalcap's post-processing of one tokenised line: drop the punctuation tokens."""
    return " ".join(w for w in tokenized_line.rstrip().split(" ") if w not in PUNCTUATIONS)


#: The keep-alive driver: CoreNLP's own PTBTokenizer command on each length-prefixed batch of stdin.
SERVER_SOURCE = """\
import java.io.*;

public final class DiffbenchPtbServer {
    public static void main(String[] args) throws Exception {
        DataInputStream in = new DataInputStream(new BufferedInputStream(System.in));
        PrintStream out = System.out;
        while (true) {
            StringBuilder header = new StringBuilder();
            int c;
            while ((c = in.read()) != -1 && c != '\\n') header.append((char) c);
            if (c == -1) return;
            byte[] request = new byte[Integer.parseInt(header.toString().trim())];
            in.readFully(request);
            ByteArrayOutputStream captured = new ByteArrayOutputStream();
            System.setIn(new ByteArrayInputStream(request));
            System.setOut(new PrintStream(captured, true, "UTF-8"));
            try {
                edu.stanford.nlp.process.PTBTokenizer.main(args);
            } finally {
                System.out.flush();
                System.setOut(out);
            }
            byte[] answer = captured.toByteArray();
            out.print(answer.length + "\\n");
            out.write(answer);
            out.flush();
        }
    }
}
"""
#: pycocoevalcap's command-line options (``tokenizer/ptbtokenizer.py``), plus the encoding.
PTB_OPTIONS = ("-preserveLines", "-lowerCase", "-encoding", "UTF-8")


def tokenizer_jar() -> Path:
    return pycocoevalcap_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar"


def compiled_server(java: str) -> Path | None:
    """The folder holding ``DiffbenchPtbServer.class``, or ``None`` without ``javac``."""
    return compiled_class(java, "DiffbenchPtbServer", SERVER_SOURCE, tokenizer_jar())


class _Server:
    """One keep-alive tokenizer JVM: a batch in, its tokenised lines out."""

    def __init__(self, java: str, classes: Path, timeout: float):
        self.timeout = timeout
        classpath = os.pathsep.join([str(tokenizer_jar()), str(classes)])
        self.process = subprocess.Popen(
            [java, "-Dfile.encoding=UTF-8", "-cp", classpath, "DiffbenchPtbServer", *PTB_OPTIONS],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        stdout = self.process.stdout
        try:
            while True:
                header = stdout.readline()
                if not header:
                    break
                self.answers.put(stdout.read(int(header)))
        except (OSError, ValueError):
            pass
        self.answers.put(None)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, payload: bytes) -> bytes:
        # a failed write needs no handling here: the reader sees the JVM gone
        write_in_background(self.process.stdin, b"%d\n" % len(payload) + payload)
        try:
            answer = self.answers.get(timeout=self.timeout)
        except queue.Empty:
            self.close()
            raise TokenizerError(f"PTBTokenizer did not answer within {self.timeout:g} s") from None
        if answer is None:
            self.close()
            raise TokenizerError(f"the PTBTokenizer JVM exited (code {self.process.poll()})")
        return answer

    def close(self) -> None:
        stop_process(self.process)


class PTBTokenizer:
    """Tokenise captions as pycocoevalcap does: PTB tokens, lower-cased, punctuation dropped.

    ``tokenize`` takes a list of strings (one tokenised string each) or, as pycocoevalcap's
    ``PTBTokenizer.tokenize``, ``{id: [{"caption": text}, ...]}`` (``{id: [tokenised, ...]}``).
    ``keep_alive=False`` starts one JVM a call, as pycocoevalcap does.
    """

    def __init__(self, java: str | None = None, timeout: float = DEFAULT_TIMEOUT_S, keep_alive: bool = True):
        self.java = java
        self.timeout = timeout
        self.keep_alive = keep_alive
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()
        self._jvm_lock = threading.Lock()
        self._server: _Server | None = None
        self.jvm_starts = 0

    def tokenize(self, texts):
        """One tokenised string per input string, in order (or pycocoevalcap's dict form)."""
        if isinstance(texts, dict):
            keys = [(k, len(v)) for k, v in texts.items()]
            flat = self.tokenize([c["caption"] for v in texts.values() for c in v])
            out, position = {}, 0
            for key, count in keys:
                out[key] = flat[position : position + count]
                position += count
            return out
        with self._lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            tokenized = self._run_jvm(missing)
            known.update(zip(missing, tokenized))
            with self._lock:
                if len(self._cache) + len(missing) > _CACHE_LIMIT:
                    self._cache.clear()
                self._cache.update(zip(missing, tokenized))
        return [known[t] for t in texts]

    @property
    def persistent(self) -> bool:
        """Whether a keep-alive JVM is running."""
        return self._server is not None and self._server.alive

    def close(self) -> None:
        with self._jvm_lock:
            if self._server is not None:
                self._server.close()
                self._server = None

    def _tokenize_text(self, text: str) -> str:
        """The tokenizer command's output for ``text`` (lines joined with ``\\n``)."""
        java = find_java(self.java)
        with self._jvm_lock:
            classes = compiled_server(java) if self.keep_alive else None
            if classes is not None:
                if self._server is None or not self._server.alive:
                    self._server = _Server(java, classes, self.timeout)
                    self.jvm_starts += 1
                return self._server.run(text.encode("utf-8")).decode("utf-8")
        cmd = [java, "-Dfile.encoding=UTF-8", "-cp", str(tokenizer_jar()), "edu.stanford.nlp.process.PTBTokenizer",
               *PTB_OPTIONS]
        with tempfile.TemporaryDirectory(prefix="diffbench-ptb-") as scratch:
            source = Path(scratch) / "captions.txt"
            source.write_text(text, encoding="utf-8")
            try:
                proc = subprocess.run(cmd + [str(source)], capture_output=True, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                raise TokenizerError(f"PTBTokenizer did not finish within {self.timeout:g} s") from None
        self.jvm_starts += 1
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise TokenizerError(f"PTBTokenizer failed (exit {proc.returncode}): {tail[0][:300]}")
        return proc.stdout.decode("utf-8")

    def _run_jvm(self, texts: list[str]) -> list[str]:
        cleaned = [t.translate(LINE_BREAKS) for t in texts]
        # Blank captions never reach the JVM: PTBTokenizer would give an empty line for them anyway.
        todo = [i for i, t in enumerate(cleaned) if t.strip()]
        out = [""] * len(texts)
        if not todo:
            return out
        lines = self._tokenize_text("\n".join(cleaned[i] for i in todo)).split("\n")
        if lines and lines[-1] == "" and len(lines) == len(todo) + 1:
            lines.pop()
        if len(lines) != len(todo):
            raise TokenizerError(f"PTBTokenizer returned {len(lines)} lines for {len(todo)} captions")
        for i, line in zip(todo, lines):
            out[i] = strip_punctuation(line)
        return out


def tokenize_corpus(predictions: list[str], references: list[list[str]]) -> tuple[list[str], list[tuple[str, ...]]]:
    """PTB-tokenise predictions and references in one batch: (predictions, one tuple of references each)."""
    flat = list(predictions)
    for refs in references:
        flat.extend(refs)
    tokens = get_tokenizer().tokenize(flat)
    refs_out, position = [], len(predictions)
    for refs in references:
        refs_out.append(tuple(tokens[position : position + len(refs)]))
        position += len(refs)
    return tokens[: len(predictions)], refs_out


_DEFAULT: PTBTokenizer | None = None
_DEFAULT_LOCK = threading.Lock()


def get_tokenizer() -> PTBTokenizer:
    """The process-wide tokenizer (shares its cache between calls and threads)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = PTBTokenizer()
            atexit.register(_DEFAULT.close)
        return _DEFAULT
