"""What a user gives to reach an API, checked: its address and its key; and the key kept out of all that is shown.

- :func:`check_base_url`: an ``http(s)://host`` URL, without a user name or password in it (one line
  naming the option otherwise).
- :func:`read_api_key`: the key in an environment variable, refused in one line naming the variable (never
  the value) when it holds a control character, a space or a non-ASCII character.
- :func:`redact`: a server's text with the key, and any run of its first :data:`REDACT_PREFIX_CHARS` or
  more characters (a key cut short), replaced by ``***``; :func:`shown` redacts, then makes one line,
  then cuts to :data:`MESSAGE_CHARS` (in that order: a key cut short by the cut would escape a
  redaction done after it).

The OpenAI-compatible client (:mod:`diffbench.backends.openai_chat`) uses these for every message it
raises or logs and every answer it caches or returns.
"""

from __future__ import annotations

import os
import urllib.parse

from diffbench.text import one_line, printable

#: a server's message is cut to this many characters (after the key is redacted from it)
MESSAGE_CHARS = 500
#: a run of this many leading characters of the key, or more, is redacted like the whole key
REDACT_PREFIX_CHARS = 8


def check_base_url(url: str, name: str = "base_url") -> str:
    """``url`` if it is an ``http(s)://host[:port][/path]`` URL; else a one-line ``ValueError`` starting
    with ``name``. A user name or password in it is refused without being echoed (it would be recorded
    in run.json; the key belongs in the environment variable).

    >>> check_base_url("https://api.openai.com/v1")
    'https://api.openai.com/v1'
    >>> check_base_url("ftp://x", "--api-base")
    Traceback (most recent call last):
    ...
    ValueError: --api-base 'ftp://x': the scheme must be http or https, got 'ftp' (e.g. https://api.openai.com/v1)
    """
    shown_url = printable(url)
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise ValueError(f"{name} {shown_url!r} holds a space or a control character")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is not a number in range
    except ValueError as err:
        raise ValueError(f"{name} {shown_url!r} is not a URL ({err})") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{name} holds a user name or password (user:password@host): give the API key in an "
                         "environment variable (--api-key-env) instead")
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{name} {shown_url!r}: the scheme must be http or https, got {parts.scheme or 'none'!r} "
                         "(e.g. https://api.openai.com/v1)")
    if not parts.hostname:
        raise ValueError(f"{name} {shown_url!r} names no host (e.g. https://api.openai.com/v1)")
    return url


def read_api_key(variable: str) -> str | None:
    """The API key in the environment variable ``variable`` (``None`` when unset or empty), which must be
    printable ASCII without spaces: anything else would reach the ``Authorization`` header (where httpx
    refuses it with the whole header, key included, in its message). The error names the variable and
    where the character is, never the key.

    >>> os.environ["DIFFBENCH_DOCTEST_KEY"] = "sk-abc\\n"
    >>> try:
    ...     read_api_key("DIFFBENCH_DOCTEST_KEY")
    ... except ValueError as err:
    ...     print(str(err).split(":")[0])
    the API key in DIFFBENCH_DOCTEST_KEY has a line break as its last character
    >>> del os.environ["DIFFBENCH_DOCTEST_KEY"]
    """
    key = os.environ.get(variable) or None
    if key is None:
        return None
    for position, char in enumerate(key, 1):
        if "!" <= char <= "~":
            continue
        what = ("a line break" if char in "\r\n" else "a space" if char == " " else
                "a non-ASCII character" if ord(char) > 0x7F else "a control character")
        where = "as its last character" if position == len(key) else f"at character {position} of {len(key)}"
        raise ValueError(f"the API key in {variable} has {what} {where}: a key is printable ASCII without "
                         "spaces (a key read from a file often keeps its line break: strip it)")
    return key


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret``, and every run of :data:`REDACT_PREFIX_CHARS` or more of its first
    characters (a key cut short, by us or by a server), replaced by ``***``.

    >>> redact("got sk-abcdefghij, sk-abcdefg... and sk-abc", "sk-abcdefghij")
    'got ***, ***... and sk-abc'
    """
    if not secret:
        return text
    head = secret[:REDACT_PREFIX_CHARS]
    start = text.find(head)
    if start < 0:
        return text
    pieces, done = [], 0
    while start >= 0:
        end = start + len(head)
        while end - start < len(secret) and end < len(text) and text[end] == secret[end - start]:
            end += 1
        pieces += [text[done:start], "***"]
        done = end
        start = text.find(head, done)
    pieces.append(text[done:])
    return "".join(pieces)


def shown(text: str, secret: str | None, limit: int = MESSAGE_CHARS) -> str:
    """A server's text as it may be shown: the key redacted first, then one line, then cut.

    >>> shown("denied\\nkey sk-abcdefghij", "sk-abcdefghij", limit=15)
    'denied; key ***'
    """
    return one_line(redact(text, secret))[:limit]
