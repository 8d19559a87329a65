"""Record text made safe for where it goes: JSON files, terminals and log lines.

A record holds names the user's system made (file names that are not UTF-8,
argv with escape sequences) and is read back by people who did not write it.
Three rules: a name that UTF-8 cannot carry is quoted losslessly instead of
breaking the JSON; a value printed on a terminal is shown as text, its control
characters escaped and its length capped; a warning is one short line.
"""

from __future__ import annotations

import json
import re
from typing import Any

# What a terminal may act on: C0/C1 controls, bidi overrides, lone surrogates.
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
FIELD_MAX_CHARS = 2000  # one value shown by `show`/`diff`
MESSAGE_MAX_CHARS = 300  # one warning or error line


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def cut(text: str, limit: int) -> str:
    """`text` up to `limit` characters, with a note saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters not shown]"


def printable(value: Any, limit: int = FIELD_MAX_CHARS) -> str:
    """A record value as inert terminal text: capped, control characters escaped."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = cut(text, limit)
    return _UNPRINTABLE.sub(_escape_char, text)


def one_line(message: Any, limit: int = MESSAGE_MAX_CHARS) -> str:
    """A message as one short line: what a warning or an error entry may hold."""
    text = message if isinstance(message, str) else str(message)
    return printable(text[: limit * 2], limit)


# -- names UTF-8 cannot carry ---------------------------------------------------


def _needs_quotes(name: str) -> bool:
    return name.startswith('"') or _UNPRINTABLE.search(name) is not None


def _name_bytes(name: str | bytes) -> bytes:
    if isinstance(name, bytes):
        return name
    try:
        return name.encode("utf-8", "surrogateescape")  # what os.fsdecode made of raw bytes
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogatepass")


def quote_name(name: str | bytes) -> str:
    """A file name (bytes, or str decoded with surrogateescape) as valid, lossless UTF-8 text.

    Names that are plain text stay as they are. Others are quoted as git quotes
    paths: `"bad\\377name.txt"`, bytes outside UTF-8 and control characters as
    octal escapes, so `unquote_name` gives back the exact bytes.
    """
    raw = _name_bytes(name)
    text = raw.decode("utf-8", "surrogateescape")
    if not _needs_quotes(text):
        return text
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _UNPRINTABLE.match(ch):
            out.extend(f"\\{b:03o}" for b in _name_bytes(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_OCTAL = re.compile(rb"\\([0-7]{3})|\\(.)", re.DOTALL)


def unquote_name(text: str) -> bytes:
    """The exact bytes of a name written by `quote_name`."""
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return text.encode("utf-8")
    body = text[1:-1].encode("utf-8")
    return _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]) if m.group(1) else m.group(2), body)


def _fix(obj: Any) -> Any:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return quote_name(obj)
        return obj
    if isinstance(obj, dict):
        return {_fix(k): _fix(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_fix(v) for v in obj]
    return obj


def json_safe(doc: Any) -> Any:
    """`doc` with every string UTF-8 cannot encode quoted (`quote_name`); `doc` itself when none.

    One JSON encoding decides (C speed); the walk runs only for the rare record
    that holds such a name.
    """
    try:
        json.dumps(doc, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return _fix(doc)
    return doc
