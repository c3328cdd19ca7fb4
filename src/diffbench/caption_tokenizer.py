"""The COCO caption tokenizer: Stanford PTBTokenizer (CoreNLP 3.4.1, shipped by pycocoevalcap), batched.

This is pycocoevalcap's ``PTBTokenizer`` with three changes that leave every output identical on
well-formed captions:

- the strings go to the JVM in one batch per call, and each distinct string is tokenised once per
  process (a bounded cache), so a second call on the same captions starts no JVM at all;
- every character Java's PTBLexer treats as a line break (``\\n``, ``\\r``, ``\\v``, ``\\f``, U+2028,
  U+2029) becomes a space first. pycocoevalcap replaces only ``\\n``, so a caption with ``\\r`` shifts
  every later caption onto the wrong sample there; here the line count is also checked;
- the JVM reads and writes UTF-8 whatever the locale, and runs with a timeout.

Java is required: an identical PTB tokenisation without Java is not possible in practice (the lexer is
a large JFlex grammar: quotes, contractions, abbreviations, Unicode normalisation), so without Java
every metric fails with :class:`JavaNotFoundError` rather than give numbers that differ silently.

    >>> from diffbench.caption_tokenizer import strip_punctuation
    >>> strip_punctuation("the car , is gone .")
    'the car is gone'
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

#: Tokens pycocoevalcap drops after tokenisation (``pycocoevalcap/tokenizer/ptbtokenizer.py``).
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
#: Characters Java's PTBLexer ends a line on (measured on CoreNLP 3.4.1); they become spaces.
LINE_BREAKS = str.maketrans({c: " " for c in "\n\r\x0b\x0c\u2028\u2029"})
JAVA_INSTALL_HINT = (
    "the COCO caption metrics run Java (Stanford PTBTokenizer and METEOR 1.5): install a Java runtime "
    "(Debian/Ubuntu: `apt-get install default-jre-headless`; conda: `conda install openjdk`; "
    "a Hugging Face Space: add `default-jre-headless` to packages.txt) or point JAVA_HOME at one"
)
DEFAULT_TIMEOUT_S = float(os.environ.get("DIFFBENCH_TOKENIZER_TIMEOUT", "300"))
_CACHE_LIMIT = 500_000  # distinct strings kept per process (~100 MB at most on long captions)


class JavaNotFoundError(RuntimeError):
    """No ``java`` executable: the COCO caption pipeline cannot run."""


class TokenizerError(RuntimeError):
    """The PTBTokenizer JVM failed, timed out or returned misaligned lines."""


def find_java(java: str | None = None) -> str:
    """The ``java`` executable to run: ``java`` if given, else ``$JAVA_HOME/bin/java``, else the PATH."""
    candidates = [java] if java else []
    if not java and os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    if not java:
        candidates.append("java")
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    raise JavaNotFoundError(f"no Java runtime found ({', '.join(candidates)}): {JAVA_INSTALL_HINT}")


def pycocoevalcap_dir() -> Path:
    import pycocoevalcap

    # a namespace package (no __init__.py): its folder is __path__, not __file__
    return Path(next(iter(pycocoevalcap.__path__))).resolve()


def strip_punctuation(tokenized_line: str) -> str:
    """pycocoevalcap's post-processing of one tokenised line: drop the punctuation tokens."""
    return " ".join(w for w in tokenized_line.rstrip().split(" ") if w not in PUNCTUATIONS)


class PTBTokenizer:
    """Tokenise captions as pycocoevalcap does: PTB tokens, lower-cased, punctuation dropped."""

    def __init__(self, java: str | None = None, timeout: float = DEFAULT_TIMEOUT_S):
        self.java = java
        self.timeout = timeout
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()

    def tokenize(self, texts: list[str]) -> list[str]:
        """One tokenised string per input string, in order."""
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

    def _run_jvm(self, texts: list[str]) -> list[str]:
        cleaned = [t.translate(LINE_BREAKS) for t in texts]
        # Blank captions never reach the JVM: PTBTokenizer would give an empty line for them anyway.
        todo = [i for i, t in enumerate(cleaned) if t.strip()]
        out = [""] * len(texts)
        if not todo:
            return out
        java = find_java(self.java)
        jar = pycocoevalcap_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar"
        cmd = [java, "-Dfile.encoding=UTF-8", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer",
               "-preserveLines", "-lowerCase", "-encoding", "UTF-8"]
        with tempfile.TemporaryDirectory(prefix="diffbench-ptb-") as scratch:
            source = Path(scratch) / "captions.txt"
            source.write_text("\n".join(cleaned[i] for i in todo), encoding="utf-8")
            try:
                proc = subprocess.run(cmd + [str(source)], capture_output=True, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                raise TokenizerError(f"PTBTokenizer did not finish within {self.timeout:g} s") from None
        if proc.returncode != 0:
            raise TokenizerError(f"PTBTokenizer failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-1000:]}")
        lines = proc.stdout.decode("utf-8").split("\n")
        if lines and lines[-1] == "" and len(lines) == len(todo) + 1:
            lines.pop()
        if len(lines) != len(todo):
            raise TokenizerError(f"PTBTokenizer returned {len(lines)} lines for {len(todo)} captions")
        for i, line in zip(todo, lines):
            out[i] = strip_punctuation(line)
        return out


_DEFAULT: PTBTokenizer | None = None
_DEFAULT_LOCK = threading.Lock()


def get_tokenizer() -> PTBTokenizer:
    """The process-wide tokenizer (shares its cache between calls and threads)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = PTBTokenizer()
        return _DEFAULT
