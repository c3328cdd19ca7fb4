"""The JVM plumbing of the COCO caption metrics: finding Java, compiling a driver once, a kept-alive JVM's pipes.

PTBTokenizer (:mod:`diffbench.captions.tokenizer`) and METEOR (:mod:`diffbench.captions.meteor`) are
pycocoevalcap's jars, run by ``java``. Each keeps one JVM alive between calls, fed over stdin by a short
Java driver compiled once a user (with a JRE only, no ``javac``, each runs its jar's own command
instead: slower, same output). What both need lives here; each reads its own protocol (length-prefixed
batches for the tokenizer, lines for METEOR) on its own reader thread.

- :func:`find_java` (the given path, else ``$JAVA_HOME/bin/java``, else the PATH) and
  :class:`JavaNotFoundError`, whose message says how to install Java (:data:`JAVA_INSTALL_HINT`);
- :func:`pycocoevalcap_dir`: where the jars are;
- :func:`compiled_class`: a driver compiled once into ``$XDG_CACHE_HOME/diffbench/java/<name>/<digest>/``;
- a kept-alive JVM's pipes: :func:`widen_pipe`, :func:`write_in_background` (a writer thread: a JVM
  that stops reading cannot hang the caller, who waits for answers with a timeout) and
  :func:`stop_process` (stdin closed, which ends the drivers' loops; killed if still running 2 s later).

    >>> try:
    ...     find_java("/nonexistent/java")
    ... except JavaNotFoundError as err:
    ...     print(str(err)[:76])
    no Java runtime found (/nonexistent/java): the COCO caption metrics run Java
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

JAVA_INSTALL_HINT = (
    "the COCO caption metrics run Java (Stanford PTBTokenizer and METEOR 1.5): install a Java runtime "
    "(Debian/Ubuntu: `apt-get install default-jdk-headless`; conda: `conda install openjdk`; "
    "a Hugging Face Space: add `default-jdk-headless` to packages.txt) or point JAVA_HOME at one"
)
#: seconds a JVM gets to exit once its stdin is closed, before it is killed
STOP_GRACE_S = 2.0
_F_SETPIPE_SZ = 1031  # Linux fcntl command


class JavaNotFoundError(RuntimeError):
    """No ``java`` executable: the COCO caption pipeline cannot run."""


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
    """The installed pycocoevalcap package's folder (its jars live below it)."""
    import pycocoevalcap  # only where a jar is wanted: the package holds nothing else this module needs

    # a namespace package (no __init__.py): its folder is __path__, not __file__
    return Path(next(iter(pycocoevalcap.__path__))).resolve()


def compiled_class(java: str, name: str, source: str, classpath: Path) -> Path | None:
    """The folder holding the class ``name`` compiled from ``source`` against ``classpath`` (compiled
    once a user into the user cache, atomically), or ``None`` when no ``javac`` is available or
    compiling fails (the callers then run the jar's own command: slower, same output).

    The folder is named by the source's digest and published by one rename; a process that loses the
    race to publish it keeps the winner's copy (the same class), so a JVM already running from that
    folder never has it replaced under it.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "diffbench" / "java" / name
    folder = base / digest
    if (folder / f"{name}.class").is_file():
        return folder
    javac = Path(java).resolve().parent / "javac"
    javac = str(javac) if javac.is_file() else shutil.which("javac")
    if not javac:
        return None
    try:
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="build-", dir=base) as scratch:
            source_file = Path(scratch) / f"{name}.java"
            source_file.write_text(source, encoding="utf-8")
            done = subprocess.run([javac, "-cp", str(classpath), "-d", scratch, str(source_file)],
                                  capture_output=True, timeout=120)
            if done.returncode != 0:
                return None
            source_file.unlink()
            try:
                os.replace(scratch, folder)
            except OSError:  # another process won the race: its copy is the same
                pass
            Path(scratch).mkdir(exist_ok=True)  # for TemporaryDirectory's clean-up
    except (OSError, subprocess.SubprocessError):
        return None
    return folder if (folder / f"{name}.class").is_file() else None


# -- a kept-alive JVM's pipes ---------------------------------------------------------------------------

def widen_pipe(stream) -> None:
    """Let a pipe hold 1 MB (Linux ``F_SETPIPE_SZ``), so the JVM rarely waits on a busy reader."""
    try:
        import fcntl  # not on Windows, where pipes keep their size

        fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, 1 << 20)
    except (ImportError, OSError, ValueError, AttributeError):
        pass


def write_in_background(stream, payload: bytes) -> tuple[threading.Thread, list[BaseException]]:
    """Write and flush ``payload`` to ``stream`` (a JVM's stdin) from a daemon thread; returns the thread
    and a list that holds the write's error once it fails (the JVM gone: the reader sees that too).

    A write to a full pipe blocks with no timeout: from a thread of its own, a JVM that stops reading
    cannot hang the caller, whose wait for the answers has one, and answers are read while the rest of
    a long request is still being written.
    """
    errors: list[BaseException] = []

    def write() -> None:
        try:
            stream.write(payload)
            stream.flush()
        except (OSError, ValueError) as err:
            errors.append(err)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer, errors


def stop_process(process: subprocess.Popen) -> None:
    """End a JVM fed over stdin: close its stdin (the drivers return at its end), wait
    :data:`STOP_GRACE_S`, then kill it."""
    try:
        process.stdin.close()
    except OSError:
        pass
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
