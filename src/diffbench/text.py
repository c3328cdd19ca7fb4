"""Text from users (ids, names, captions, file names, server messages) made safe to show.

A submission id, a leaderboard name or a server's error message is somebody else's text. Shown as it
is, an ANSI or OSC escape sequence in it rewrites the user's terminal, a right-to-left override
(U+202E) reverses what follows it, and a ``|`` or ``<b>`` breaks a Markdown table. Everything diffbench
prints or writes for people to read goes through one of these:

- :func:`printable`: control characters (C0, DEL, C1) and the invisible bidirectional and
  zero-width format characters written as visible escapes (``\\x1b``, ``\\u202e``): the terminal and
  plain-text files;
- :func:`one_line`: a message on one line (its lines joined with ``; ``), then :func:`printable`;
- :func:`markdown_text`: :func:`printable`, on one line, with Markdown and HTML marks escaped: a
  Markdown table cell.

    >>> printable("id\\x1b]0;pwned\\x07 \\u202egnp.exe")
    'id\\\\x1b]0;pwned\\\\x07 \\\\u202egnp.exe'
    >>> one_line("bad file\\n  row 3: empty id\\n")
    'bad file; row 3: empty id'
    >>> print(markdown_text("my | <b>model</b>*"))
    my \\| &lt;b&gt;model&lt;/b&gt;\\*
"""

from __future__ import annotations

import re

#: invisible characters that change how the text around them is shown: the bidirectional embeddings,
#: overrides, isolates and marks (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) and the
#: zero-width ones that hide inside a word (U+200B-U+200D, U+2060, U+FEFF)
FORMAT_CHARACTERS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\u200c\u200d\u2060\ufeff"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{FORMAT_CHARACTERS}]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text) -> str:
    """``text`` with every control and invisible format character written as a visible escape."""
    return _UNSAFE.sub(_escape, str(text))


def strip_unsafe(text) -> str:
    """``text`` with every control and invisible format character removed (a name kept for display).

    >>> strip_unsafe("my\\x00 model\\u202e")
    'my model'
    """
    return _UNSAFE.sub("", str(text))


def one_line(message: object) -> str:
    """A message on one line (its lines joined with ``; ``), safe for a terminal (:func:`printable`)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return printable("; ".join(lines))


def markdown_text(text) -> str:
    """Text safe inside a Markdown table cell: one line, no control character, ``|`` and Markdown/HTML
    marks escaped."""
    text = printable(" ".join(str(text).split()))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)
