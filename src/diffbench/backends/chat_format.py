"""OpenAI's chat-completions format, both ways: images as they are sent, and what a server answers, read safely.

What is sent: an image as a lossless PNG ``data:`` URI (:func:`image_data_uri`), and as the cache key
knows it (:func:`image_identity`: its mode, size and the sha256 of its pixels, so a rerun never
re-encodes a cached image).

What comes back, none of it trusted: :func:`load_json` (not JSON, or nested too deep, is a reason, not
an exception), :func:`answer_text` (``choices[0].message.content`` as text, or why the answer is
malformed), :func:`server_message` (an error body's message, the key redacted before it is cut),
:func:`cache_fields` (what the cache keeps besides the text: short redacted strings, numbers) and
:func:`retry_after_seconds`.

    >>> answer_text({"choices": [{"message": {"content": [{"type": "text", "text": "A"}]}}]})
    ('A', None)
    >>> answer_text({"choices": [{"message": {"content": {"text": "A"}}}]})
    (None, 'choices[0].message.content is a JSON object, not text')
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
import json
import time

from diffbench.backends.api_access import redact, shown

#: how much of each of a server's strings the cache keeps (finish_reason, the model that served)
CACHED_FIELD_CHARS = 200


# -- what is sent ----------------------------------------------------------------------------------------

def _sendable(image):
    """``image`` in a mode PNG stores as it is (RGB, RGBA, L); others are converted to RGB."""
    return image if image.mode in ("RGB", "RGBA", "L") else image.convert("RGB")


def image_data_uri(image) -> str:
    """A PIL image as a PNG ``data:`` URI (lossless, so the model sees the pixels the dataset holds).

    >>> from PIL import Image
    >>> image_data_uri(Image.new("RGB", (1, 1)))[:30]
    'data:image/png;base64,iVBORw0K'
    """
    buffer = io.BytesIO()
    _sendable(image).save(buffer, format="PNG", compress_level=1)  # level 1: 4x faster than the default, still lossless
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_identity(image) -> dict:
    """An image as the cache key knows it: the PNG it is sent as is a lossless function of these.

    >>> from PIL import Image
    >>> identity = image_identity(Image.new("P", (2, 1)))
    >>> identity["mode"], identity["size"], len(identity["sha256"])
    ('RGB', [2, 1], 64)
    """
    image = _sendable(image)
    return {"type": "image", "mode": image.mode, "size": list(image.size),
            "sha256": hashlib.sha256(image.tobytes()).hexdigest()}


# -- what comes back -------------------------------------------------------------------------------------

def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: a number, or an HTTP date (RFC 9110); ``None`` if unreadable.

    >>> retry_after_seconds("2"), retry_after_seconds("soon")
    (2.0, None)
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0)
    10.0
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN: unreadable
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def load_json(data: bytes):
    """``(value, None)`` or ``(None, why it is not readable JSON)``.

    >>> load_json(b"[" * 200_000)
    (None, "the answer's JSON nests too deep to read")
    """
    try:
        return json.loads(data), None
    except RecursionError:
        return None, "the answer's JSON nests too deep to read"
    except ValueError:  # not JSON, or not UTF-8
        return None, "the answer is not JSON"


def json_type(value) -> str:
    """The JSON name of a decoded value's type, for messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def error_text(body: dict) -> str | None:
    """The message of an error body: OpenAI's ``error.message`` (or a plain ``error``), else FastAPI's
    ``detail``, else ``message``; ``None`` when it has none of them."""
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    for field in ("detail", "message"):
        if body.get(field):
            return str(body[field])
    return None


def server_message(data: bytes | None, problem: str | None, reason: str, secret: str | None) -> str:
    """The error text a server sent (OpenAI's ``error.message``, FastAPI's ``detail``, or the body), safe to
    show: the key redacted before it is cut (:func:`~diffbench.backends.api_access.shown`). ``data`` is
    ``None`` when the body was dropped, ``problem`` saying why; ``reason`` is the HTTP reason phrase."""
    if data is None:
        return f"{reason} ({problem})"
    body, _ = load_json(data)
    if body is None:
        text = data.decode("utf-8", errors="replace").strip() or reason
    elif isinstance(body, dict) and error_text(body):
        text = error_text(body)
    else:
        text = json.dumps(body)
    return shown(text, secret)


def answer_text(payload) -> tuple[str | None, str | None]:
    """``choices[0].message.content`` as text: ``(text, None)``, or ``(None, why the answer is malformed)``.
    ``null`` content is an empty answer (a refusal), not a malformed one."""
    if not isinstance(payload, dict):
        return None, f"the answer is a JSON {json_type(payload)}, not an object"
    choices = payload.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        said = error_text(payload)
        return None, "the answer has no choices[0].message" + (f" (the server says: {said})" if said else "")
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or "", None
    if not isinstance(content, list):
        return None, f"choices[0].message.content is a JSON {json_type(content)}, not text"
    parts = [part for part in content if isinstance(part, dict)]
    if any(not isinstance(part.get("text", ""), str) for part in parts):
        return None, "choices[0].message.content holds a part whose text is not text"
    return "".join(part.get("text", "") for part in parts), None


def cache_fields(payload: dict, secret: str | None) -> dict:
    """What the cache keeps of the server's answer besides the text: strings redacted and short, usage's
    numbers only (a server's echo of the key must not reach the cache). ``payload`` is an answer
    :func:`answer_text` read."""
    def text(value):
        return redact(value, secret)[:CACHED_FIELD_CHARS] if isinstance(value, str) else None

    usage = payload.get("usage")
    if isinstance(usage, dict):
        usage = {redact(k, secret): v for k, v in usage.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"finish_reason": text(payload["choices"][0].get("finish_reason")), "served_by": text(payload.get("model")),
            "usage": usage if isinstance(usage, dict) else None}
