"""The result files every scoring writes, written one way: whole or not at all.

``results.json`` (the numbers, full precision, with provenance) and ``results.md`` (the table) beside
it; ``diffbench score vismin``, ``diffbench score captions`` and the harness all write through here.

    >>> import json, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> json_path, md_path = write_results(folder, {"score": 0.5}, "| a |")
    >>> json.loads(json_path.read_text()), md_path.read_text()
    ({'score': 0.5}, '| a |\\n')
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    handle, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def write_results(directory, results: dict, markdown: str, stem: str = "results") -> tuple[Path, Path]:
    """``<stem>.json`` (``results``) and ``<stem>.md`` (``markdown``) in ``directory``, made if missing."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} is a file, not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    write_atomically(json_path, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_atomically(md_path, markdown.rstrip("\n") + "\n")
    return json_path, md_path
