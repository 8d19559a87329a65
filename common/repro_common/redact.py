"""Keep credentials out of every record: URLs, tracking URIs and command lines.

Records travel to shared tracking servers and artifact stores, so anything that
looks like a credential is removed before it is written, never after. The rules
err on the side of hiding: a redacted value costs a re-type, a leaked one costs
a rotation.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

REDACTED = "***"

# A word in an option or variable name that marks its value as a credential.
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "cookie",
        "privatekey",
        "accesskey",
    }
)
# "key" marks a credential only as the last word (`--api-key`, `AWS_SECRET_KEY`),
# not in `--key-dim` or `--key-column`.
_SECRET_LAST_WORDS = frozenset({"key", "sig", "signature", "pat"})
# Query parameters of tracking URIs that carry credentials.
_SECRET_QUERY_WORDS = _SECRET_WORDS | _SECRET_LAST_WORDS | {"sas", "sv", "se", "skoid"}
# Values that are credentials whatever their option is called.
_SECRET_VALUE = re.compile(
    r"^(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|sk-[A-Za-z0-9_-]{20,}|xox[abprs]-[\w-]{10,}"
    r"|AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}|glpat-[\w-]{20,}|eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]+)$"
)
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_SCP_LIKE = re.compile(r"^(?P<user>[^@/\s]+)@(?P<host>[^:/\s]+):(?P<path>.*)$")
_ASSIGNMENT = re.compile(r"^(?P<name>[+~]{0,2}[A-Za-z_][\w.\-]*)=(?P<value>.*)$", re.DOTALL)


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(name) if w]


def is_secret_name(name: str) -> bool:
    """True for option or variable names whose value is likely a credential."""
    words = _words(name)
    if not words:
        return False
    joined = "".join(words)
    return (
        any(w in _SECRET_WORDS for w in words)
        or words[-1] in _SECRET_LAST_WORDS
        or joined.endswith(("apikey", "accesskey", "privatekey", "secretkey"))
    )


def _split_authority(url: str) -> tuple[str, str, str] | None:
    """(`scheme://`, netloc, rest) straight from the string, so nothing else is re-encoded."""
    head, sep, after = url.partition("://")
    if not sep:
        return None
    cut = len(after)
    for stop in "/?#":
        pos = after.find(stop)
        if pos != -1:
            cut = min(cut, pos)
    return head + sep, after[:cut], after[cut:]


def _without_password(netloc: str, keep_user: bool) -> str:
    if "@" not in netloc:
        return netloc
    userinfo, host = netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return f"{user}@{host}" if keep_user and user and not _SECRET_VALUE.match(user) else host


def strip_userinfo(url: str) -> str:
    """The URL without credentials: `https://user:pw@host/x` -> `https://host/x`.

    SSH logins (`git@host:org/x.git`, `ssh://git@host/x`) keep their user name,
    which is needed to clone and is not a credential; any password goes.
    """
    if not url or "@" not in url:
        return url
    parts = _split_authority(url)
    if parts is None:
        match = _SCP_LIKE.match(url)
        if match:
            user = match.group("user").split(":", 1)[0]
            return f"{user}@{match.group('host')}:{match.group('path')}"
        return url
    head, netloc, rest = parts
    keep_user = head.lower().rstrip(":/") in ("ssh", "git+ssh", "ssh+git", "sftp")
    return head + _without_password(netloc, keep_user) + rest


def redact_uri(uri: str) -> str:
    """A tracking or storage URI without passwords, tokens or signatures.

    The user name stays (it tells which account wrote), the password goes, and
    query parameters named like credentials (`token`, `password`, `key`,
    `secret`, `sig`, ...) are dropped: `postgresql://u:pw@db/x?sslkey=..`
    -> `postgresql://u@db/x`.
    """
    parts = _split_authority(uri) if uri else None
    if parts is None:
        return uri
    head, netloc, rest = parts
    rest, hash_sep, fragment = rest.partition("#")
    path, query_sep, query = rest.partition("?")
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not _is_secret_query_key(k)]
        if len(kept) != len(pairs):
            query = urlencode(kept)
            query_sep = "?" if query else ""
    return head + _without_password(netloc, True) + path + query_sep + query + hash_sep + fragment


def _is_secret_query_key(key: str) -> bool:
    words = _words(key)
    return is_secret_name(key) or any(w in _SECRET_QUERY_WORDS for w in words)


def redact_value(value: str) -> str:
    """A free-standing argument: credential-shaped values and URL passwords go."""
    if _SECRET_VALUE.match(value):
        return REDACTED
    if "://" in value and "@" in value:
        return redact_uri(value)
    return value


def redact_argv(argv: list[str]) -> list[str]:
    """argv with secret-looking values replaced by `***`.

    Handles `--api-key VALUE`, `--api-key=VALUE`, `API_TOKEN=VALUE` (also Hydra's
    `db.password=VALUE`), credential-shaped values (`ghp_...`, `sk-...`,
    `AKIA...`) and passwords inside URLs.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        arg = str(arg)
        if hide_next:
            hide_next = False
            if not arg.startswith("--"):
                out.append(REDACTED)
                continue
        if arg.startswith("-") and not arg.startswith("---"):
            flag, eq, value = arg.partition("=")
            if is_secret_name(flag.lstrip("-")):
                if eq:
                    out.append(f"{flag}={REDACTED}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
            out.append(f"{flag}={redact_value(value)}" if eq else arg)
            continue
        match = _ASSIGNMENT.match(arg)
        if match and is_secret_name(match.group("name")):
            out.append(f"{match.group('name')}={REDACTED}")
            continue
        if match:
            out.append(f"{match.group('name')}={redact_value(match.group('value'))}")
            continue
        out.append(redact_value(arg))
    return out
