"""The one place diffbench writes files that others read: whole or not at all, never over a user's file.

- :func:`write_atomically`: one file, through a temporary file and a rename (a reader sees the old file or
  the new one, never half of one).
- :func:`replace_directory`: a finished folder put in place of another in one ``renameat2(RENAME_EXCHANGE)``
  (Linux), or two renames and a journal that :func:`restore_interrupted` uses after a kill; staging
  folders named ``<pid>-<random>`` are cleaned by :func:`clean_staging` once their process is gone.
  Builds, publishes, converted checkpoints and training checkpoints are swapped in this way.
- :func:`staged`: the files of one result (results.json, results.md, the figure, a submission file) as one
  set, recorded in a manifest, described below.

Every writer of results (``diffbench score vismin|captions``, the ``eval`` harness's reports, the library's
``write_results``) writes into a staging folder that :func:`staged` gives, and the set is moved into place
when the block ends::

    with files.staged(out, overwrite=args.overwrite) as folder:
        write_results(folder, results, table)            # results.json, results.md
        figures.vismin_figure(folder / "results", ...)  # results.png, results.svg

- **Never over a user's file.** ``<out>/.diffbench-files.json`` (:data:`MANIFEST`) records the name and
  sha256 of every file diffbench put there. A file of a name being written that the manifest does not
  list, or whose bytes changed since, is not ours: :class:`NotOursError` (one line naming them) unless
  ``overwrite``. :func:`prepare` makes that check before any work, :func:`staged` again when it moves.
- **One set.** The files are written to ``<out>/.diffbench-staging/<pid>-<random>/new/`` first: a failure
  there (a full disk) leaves the old set as it was and removes the staging folder. Then a journal is put
  in place by one rename, and the files are moved in (renames: no space needed), then the manifest.
  A process killed between two moves leaves its journal: the next writer into the folder completes the
  set (roll forward: every staged file was complete before the journal existed). Files of an earlier
  result that the new set does not rewrite (``names``: a figure a caption scoring does not draw) go
  with it, when they are ours, so no file of the old result stays beside the new one.

Writers never need to know: inside a staging folder :func:`write_file` and :func:`write_results` write
plainly; on any other folder each call is a set of its own.

    >>> import json, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> json_path, md_path = write_results(folder, {"score": 0.5}, "| a |")
    >>> json.loads(json_path.read_text()), md_path.read_text()
    ({'score': 0.5}, '| a |\\n')
    >>> sorted(recorded(folder)), sorted(p.name for p in folder.iterdir())
    (['results.json', 'results.md'], ['.diffbench-files.json', 'results.json', 'results.md'])
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover -- not on Windows: writers into one folder are not serialised there
    fcntl = None

RESTORE_JOURNAL = "restore.json"  # in a staging folder: an old folder to put back if a swap was cut short
MANIFEST = ".diffbench-files.json"  # name -> sha256 of each file diffbench wrote into the folder
STAGING = ".diffbench-staging"  # <pid>-<random>/ a writer: new/ (the set), manifest.json, journal.json
JOURNAL = "journal.json"
#: the files of a scoring's report: checked before scoring, replaced together
REPORT_FILES = ("results.json", "results.md", "results.png", "results.svg")


class NotOursError(ValueError):
    """The output folder holds files of the names being written that diffbench did not write."""


def write_atomically(path: Path, content: str | bytes) -> None:
    """Write ``content`` (text as UTF-8, or bytes) to ``path`` so that a reader sees the old file or the new
    one, never half of one."""
    path = Path(path)
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        with open(scratch, "xb") as out:  # the umask's permissions, as a plain write gives
            out.write(data)
        os.replace(scratch, path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


def write_file(path, text: str) -> Path:
    """Write one file of a result: plainly inside a staging folder, else as a set of its own (recorded as
    ours; it replaces whatever had that name: callers check with :func:`prepare` first)."""
    path = Path(path)
    if in_staging(path.parent):
        write_atomically(path, text)
        return path
    with staged(path.parent, overwrite=True, names=()) as folder:
        write_atomically(folder / path.name, text)
    return path


def write_results(directory, results: dict, markdown: str, stem: str = "results") -> tuple[Path, Path]:
    """``<stem>.json`` (``results``) and ``<stem>.md`` (``markdown``) in ``directory``, made if missing;
    outside a staging folder the two are one set (never over a user's files of those names)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} is a file, not a folder")
    names = (f"{stem}.json", f"{stem}.md")
    if not in_staging(directory):
        with staged(directory, names=names) as folder:
            write_results(folder, results, markdown, stem)
        return directory / names[0], directory / names[1]
    write_atomically(directory / names[0], json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_atomically(directory / names[1], markdown.rstrip("\n") + "\n")
    return directory / names[0], directory / names[1]


# -- what is ours --------------------------------------------------------------------------------------


def in_staging(folder: Path) -> bool:
    """Whether ``folder`` is the ``new/`` folder of a set being staged (writes there are not recorded)."""
    folder = Path(folder)
    return folder.name == "new" and folder.parent.parent.name == STAGING


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def recorded(directory) -> dict[str, str]:
    """The manifest of ``directory``: name -> sha256 of the files diffbench wrote there (empty when there is
    none, or when it is unreadable as one: then nothing there is known to be ours)."""
    try:
        data = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}


NOT_A_FILE = "not a file"


def _state(path: Path) -> str | None:
    """The sha256 of a regular file at ``path``, ``None`` where nothing is, :data:`NOT_A_FILE` otherwise."""
    if not os.path.lexists(path):
        return None
    return sha256(path) if path.is_file() and not path.is_symlink() else NOT_A_FILE


def _is_ours(path: Path, known: dict[str, str]) -> bool:
    return path.name in known and _state(path) == known[path.name]


def not_ours(directory, names) -> list[str]:
    """The files among ``names`` in ``directory`` that diffbench did not write there, or that changed since."""
    directory = Path(directory)
    known = recorded(directory)
    return [n for n in names if os.path.lexists(directory / n) and not _is_ours(directory / n, known)]


def _refuse(directory: Path, foreign: list[str]) -> None:
    if foreign:
        them = "them" if len(foreign) > 1 else "it"
        raise NotOursError(f"{directory} holds {', '.join(foreign)}, which diffbench did not write (or which changed "
                           f"since): refusing to replace {them}; pass --overwrite (overwrite=True in Python) to replace "
                           f"{them}, or choose another --out")


def prepare(directory, names=REPORT_FILES, overwrite: bool = False) -> None:
    """Before any work: ``directory`` is a folder (or absent), a set a killed writer left half-moved is
    completed, and none of ``names`` there is the user's (unless ``overwrite``). Creates nothing."""
    directory = Path(directory)
    if os.path.lexists(directory) and not directory.is_dir():
        raise ValueError(f"{directory} is a file, not a folder")
    if not directory.is_dir():
        return
    with _locked(directory):
        finish_interrupted(directory)
        if not overwrite:
            _refuse(directory, not_ours(directory, names))


# -- writing a set --------------------------------------------------------------------------------------


@contextlib.contextmanager
def staged(directory, overwrite: bool = False, names=REPORT_FILES):
    """A folder to write a result's files into; when the block ends they are moved into ``directory``
    together (see the module docstring). ``names``: the files a result of this kind holds, checked first;
    those the new set leaves out are removed with it when they are ours."""
    directory = Path(directory)
    prepare(directory, names, overwrite)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    holder = directory / STAGING / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        (holder / "new").mkdir(parents=True)
        yield holder / "new"
        _commit(directory, holder, overwrite, names)
    finally:
        if not (holder / JOURNAL).exists():  # else a set cut short after its journal: the next writer completes it
            shutil.rmtree(holder, ignore_errors=True)
            _remove_if_empty(directory / STAGING)
            if created:
                _remove_if_empty(directory)  # a failed first write leaves no empty folder behind


def _commit(directory: Path, holder: Path, overwrite: bool, names) -> None:
    """Move the staged set into ``directory``: checked, journaled, moved."""
    new = holder / "new"
    staged_names = sorted(p.name for p in new.iterdir())
    if any(_state(new / n) == NOT_A_FILE for n in staged_names):
        raise RuntimeError(f"a result set holds something other than files: {staged_names}")
    hashes = {n: sha256(new / n) for n in staged_names}
    with _locked(directory):
        finish_interrupted(directory)
        known = recorded(directory)
        before = {n: _state(directory / n) for n in staged_names}  # what each file replaces, checked again on replay
        if not overwrite:
            _refuse(directory, [n for n, state in before.items() if state is not None and known.get(n) != state])
        folders = [n for n in staged_names if (directory / n).is_dir() and not (directory / n).is_symlink()]
        if folders:
            raise ValueError(f"{directory} holds folders named {', '.join(folders)}: cannot put result files there")
        stale = {n: known[n] for n in names if n not in hashes and _is_ours(directory / n, known)}
        files = {n: h for n, h in {**known, **hashes}.items()
                 if n not in stale and (n in hashes or os.path.lexists(directory / n))}
        # everything that needs space is written before the journal: a full disk stops the set here, unmoved
        write_atomically(holder / "manifest.json", json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")
        write_atomically(holder / "journal.tmp", json.dumps({"move": staged_names, "before": before,
                                                              "remove": stale}) + "\n")
        os.replace(holder / "journal.tmp", holder / JOURNAL)  # from here on the set is completed, now or later
        _finish(directory, holder)


def _finish(directory: Path, holder: Path) -> None:
    """Move a journaled set's remaining files into place, remove the old set's leftovers, then the manifest.

    A file that changed since the journal was written (a user's, put there after a writer was killed) is
    never replaced: the set stays journaled, and the error says what to move away.
    """
    journal = json.loads((holder / JOURNAL).read_text(encoding="utf-8"))
    plain = {n for n in [*journal["move"], *journal["remove"]] if Path(n).name == n and n not in (".", "..")}
    for name in journal["move"]:
        source, target = holder / "new" / name, directory / name
        if name not in plain or not os.path.lexists(source):
            continue  # moved before the kill
        if _state(target) not in (None, journal["before"].get(name)):
            raise NotOursError(f"{target} changed while diffbench was completing an interrupted write of its "
                               "results there: move it away, then run again")
        os.replace(source, target)
        _move_point(name)
    for name, digest in journal["remove"].items():
        if name in plain and _state(directory / name) == digest:
            (directory / name).unlink()
    if (holder / "manifest.json").exists():
        os.replace(holder / "manifest.json", directory / MANIFEST)
    (holder / JOURNAL).unlink()


def _move_point(name: str) -> None:
    """Called after each file of a set is moved into place; tests kill the process here."""


def finish_interrupted(directory) -> None:
    """Complete the sets that killed writers left journaled in ``directory``, and remove what killed writers
    left staged (a running writer's folder is left alone)."""
    root = Path(directory) / STAGING
    if not root.is_dir():
        return
    for holder in root.iterdir():
        pid = holder.name.split("-", 1)[0]
        if not holder.is_dir() or not pid.isdigit() or pid_alive(int(pid)):
            continue
        if (holder / JOURNAL).is_file():
            _finish(Path(directory), holder)
        shutil.rmtree(holder, ignore_errors=True)
    _remove_if_empty(root)


@contextlib.contextmanager
def _locked(directory: Path):
    """One writer at a time in ``directory`` (a lock on the folder itself: no lock file is left there)."""
    if fcntl is None:
        yield
        return
    handle = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


# -- swapping folders ------------------------------------------------------------------------------------


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2``); ``False`` where unsupported."""
    if os.environ.get("DIFFBENCH_NO_RENAME_EXCHANGE"):  # forces the journaled fallback (tests)
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap_point(stage: str) -> None:
    """Called at each step of a swap (``"after-exchange"``, ``"between-renames"``); tests kill the process here."""


def replace_directory(new: Path, destination: Path, trash: Path) -> None:
    """Put the finished folder ``new`` at ``destination``; whatever was there ends up at ``trash``.

    ``trash`` must be on the same file system and not exist. With an existing ``destination`` the
    two are exchanged atomically; where that is unsupported, ``trash/../restore.json`` records the
    old folder's place between the two renames, so :func:`restore_interrupted` can put it back after
    a kill; an exception raised by the second rename puts it back at once, before it propagates
    (callers delete ``trash``'s folder in their clean-up).
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    if not destination.exists():
        new.rename(destination)
        return
    if exchange(new, destination):
        _swap_point("after-exchange")
        new.rename(trash)  # `new` now holds the old folder
        return
    journal = trash.parent / RESTORE_JOURNAL
    journal.write_text(json.dumps({"old": str(trash), "destination": str(destination)}), encoding="utf-8")
    destination.rename(trash)
    try:
        _swap_point("between-renames")
        new.rename(destination)
    except BaseException:
        # An error (not a kill) between the renames: the caller's clean-up deletes ``trash``'s parent,
        # so the old folder goes back to its place first; a kill is the journal's case.
        if not destination.exists() and trash.is_dir():
            trash.rename(destination)
        journal.unlink(missing_ok=True)
        raise
    journal.unlink()


def restore_interrupted(staging_folder: Path) -> None:
    """Put back an old folder whose swap was cut between its two renames (nothing at its place)."""
    journal = staging_folder / RESTORE_JOURNAL
    if not journal.is_file():
        return
    entry = json.loads(journal.read_text(encoding="utf-8"))
    old, destination = Path(entry["old"]), Path(entry["destination"])
    if old.is_dir() and not destination.exists():
        destination.parent.mkdir(parents=True, exist_ok=True)
        old.rename(destination)
    journal.unlink()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a staging folder named by it is in use)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_staging(staging_root: Path) -> None:
    """Restore, then delete, what killed writers left in a staging folder (``<pid>-<random>`` entries whose
    process is gone; a running writer's entry is left alone)."""
    for entry in staging_root.glob("*-*"):
        pid = entry.name.split("-", 1)[0]
        if entry.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            restore_interrupted(entry)
            shutil.rmtree(entry, ignore_errors=True)
