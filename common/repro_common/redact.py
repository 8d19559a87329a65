"""Keep credentials out of every record: URLs, tracking URIs and command lines.

Records travel to shared tracking servers and artifact stores, so anything that
looks like a credential is removed before it is written, never after. The rules
err on the side of hiding: a redacted value costs a re-type, a leaked one costs
a rotation. This module is the one place that decides: every URL, argv value
and tracking URI the project records or prints goes through `redact_url` or
`redact_argv`.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

REDACTED = "***"

# A word in an option or variable name that marks its value as a credential.
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "passphrase",
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
        "jwt",
    }
)
# "key" marks a credential only as the last word (`--api-key`, `AWS_SECRET_KEY`),
# not in `--key-dim` or `--key-column`.
_SECRET_LAST_WORDS = frozenset({"key", "sig", "signature", "pat"})
# Names run together without separators (`accesstoken`, `clientsecret`).
_SECRET_ENDINGS = (
    "apikey", "accesskey", "privatekey", "secretkey",
    "token", "secret", "password", "passwd", "passphrase", "signature",
)  # fmt: skip
# Query parameters: every name above, plus Azure SAS fields (`sv`, `se`, `sp`,
# `skoid`...) and any `X-Amz-*` / `X-Goog-*` signing field, whatever its case.
_SECRET_QUERY_WORDS = (
    _SECRET_WORDS | _SECRET_LAST_WORDS | {"sas", "sv", "se", "sp", "skoid", "sktid"}
)
_SIGNING_QUERY_PREFIXES = ("x-amz-", "x-goog-")
# Values that are credentials whatever their option is called.
_SECRET_VALUE = re.compile(
    r"^(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|sk-[A-Za-z0-9_-]{20,}|xox[abprs]-[\w-]{10,}"
    r"|AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}|glpat-[\w-]{20,}|eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]+)$"
)
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_SCP_LIKE = re.compile(r"^(?P<user>[^@/\s]+)@(?P<host>[^:/\s]+):(?P<path>.*)$", re.DOTALL)
_ASSIGNMENT = re.compile(r"^(?P<name>[+~]{0,2}[A-Za-z_][\w.\-]*)=(?P<value>.*)$", re.DOTALL)
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# What may follow the `@` that ends a user-info: a host (name, IPv4 or [IPv6]),
# an optional port, then the end of the authority.
_HOST_AFTER_AT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~\-%]+)(?::\d*)?(?=[/?#]|$)")
# An HTTP header given on a command line (`-H 'Authorization: Bearer x'`).
_HEADER = re.compile(r"^(?P<name>\s*[A-Za-z][A-Za-z0-9\-_]*\s*):(?P<value>.*)$", re.DOTALL)
_AUTH_SCHEME = re.compile(
    r"^(?P<scheme>\s*(?:Bearer\s+(?=\S)|(?:Basic|Token|Digest|Negotiate)\s+(?=[\w.~+/=\-]{16,}\s*$)))",
    re.I,
)
# `key=value` pairs inside one value: DSNs (`Server=x;Password=y;`,
# `host=db password=y`), ODBC braces (`PWD={a;b}`) and quoted values.
_EMBEDDED_PAIR = re.compile(
    r"(?P<key>(?<![A-Za-z0-9_.\-])[A-Za-z_][A-Za-z0-9_.\-]*)(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|\{[^}]*\}?|[^;&\s,]*)"
)


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
        or joined.endswith(_SECRET_ENDINGS)
    )


def is_secret_query_key(key: str) -> bool:
    """True for URL query parameter names that carry credentials (case-insensitive)."""
    name = unquote(key).strip()
    if name.lower().startswith(_SIGNING_QUERY_PREFIXES):
        return True
    return is_secret_name(name) or any(w in _SECRET_QUERY_WORDS for w in _words(name))


def _userinfo_end(after: str) -> int:
    """Index of the `@` that ends the user-info in `after` (the text after `://`), or -1.

    A password may hold `/`, `?`, `#` or `@` unencoded (people paste them so), so
    with a `user:` in front the user-info runs to the first `@` followed by a host
    and the end of the authority; without one, to the last `@` before the first
    `/`, `?` or `#`, as RFC 3986 reads it. `host:8080/path@v1` is a port, not a login.
    """
    cut = len(after)
    for stop in "/?#":
        pos = after.find(stop)
        if pos != -1:
            cut = min(cut, pos)
    plain = after.rfind("@", 0, cut)
    colon = after.find(":")
    if colon == -1 or colon > cut or any(c in after[:colon] for c in "@/?#"):
        return plain
    if after[colon + 1 : cut].isdigit() and plain == -1:
        return -1  # `host:port/...`: any later `@` is in the path
    at = after.find("@", colon)
    while at != -1:
        if _HOST_AFTER_AT.match(after, at + 1):
            return at
        at = after.find("@", at + 1)
    return plain


def _mask_query(query: str) -> str:
    """`a=1&token=x` -> `a=1&token=***`, keeping every other byte as written."""
    pieces = re.split(r"([&;])", query)
    for i in range(0, len(pieces), 2):
        key, eq, value = pieces[i].partition("=")
        if eq and value and is_secret_query_key(key):
            pieces[i] = f"{key}={REDACTED}"
    return "".join(pieces)


def redact_url(url: str, keep_user: bool | None = None) -> str:
    """The URL with no password, token or signature in it; everything else as written.

    The password goes whatever characters it holds; the user name stays for SSH
    logins (needed to clone, not a secret) and, with `keep_user`, for other
    schemes (it tells which account wrote); query parameters named like
    credentials (`token`, `access_token`, `sig`, `X-Amz-Signature`, `password`,
    `key`, `secret`, `sv`, ...) keep their name and lose their value.
    """
    if not url:
        return url
    match = _URL_START.match(url)
    if match is None:
        scp = _SCP_LIKE.match(url) if "@" in url and "://" not in url else None
        if scp:
            user = scp.group("user").split(":", 1)[0]
            return f"{user}@{scp.group('host')}:{scp.group('path')}"
        return url
    head, after = url[: match.end()], url[match.end() :]
    scheme = head[:-3].lower()
    at = _userinfo_end(after)
    if at != -1:
        userinfo, after = after[:at], after[at + 1 :]
        user = userinfo.split(":", 1)[0]
        keep = keep_user if keep_user is not None else False
        keep = keep or scheme in ("ssh", "git+ssh", "ssh+git", "sftp")
        if keep and user and not _SECRET_VALUE.match(unquote(user)):
            head += user + "@"
    rest, hash_sep, fragment = after.partition("#")
    path, query_sep, query = rest.partition("?")
    if query:
        query = _mask_query(query)
    if fragment and "=" in fragment:
        fragment = _mask_query(fragment)  # OAuth implicit flow: `#access_token=...`
    return head + path + query_sep + query + hash_sep + fragment


def strip_userinfo(url: str) -> str:
    """The URL without credentials: `https://user:pw@host/x?token=t` -> `https://host/x?token=***`.

    SSH logins (`git@host:org/x.git`, `ssh://git@host/x`) keep their user name,
    which is needed to clone and is not a credential; any password goes.
    """
    return redact_url(url, keep_user=False)


def redact_uri(uri: str) -> str:
    """A tracking or storage URI without passwords, tokens or signatures.

    The user name stays (it tells which account wrote), the password goes, and
    credential query parameters are masked: `postgresql://u:pw@db/x?sslpassword=p`
    -> `postgresql://u@db/x?sslpassword=***`.
    """
    return redact_url(uri, keep_user=True)


def _mask_embedded_pairs(value: str) -> str:
    if "=" not in value:
        return value

    def mask(match: re.Match[str]) -> str:
        if not match.group("value") or not is_secret_name(match.group("key")):
            return match.group(0)
        return f"{match.group('key')}{match.group('eq')}{REDACTED}"

    return _EMBEDDED_PAIR.sub(mask, value)


def redact_text(value: str) -> str:
    """One free-standing value: credential-shaped strings, URLs, headers and DSNs lose their secrets."""
    if _SECRET_VALUE.match(value.strip()):
        return REDACTED
    header = _HEADER.match(value)
    if header and "://" not in value and is_secret_name(header.group("name")):
        return f"{header.group('name')}: {REDACTED}"
    scheme = _AUTH_SCHEME.match(value)
    if scheme:
        return scheme.group("scheme") + REDACTED
    url = _URL_START.search(value)
    if url:
        value = value[: url.start()] + redact_url(value[url.start() :], keep_user=True)
    return _mask_embedded_pairs(value)


def redact_value(value: str) -> str:
    """A free-standing argument: credential-shaped values and URL passwords go."""
    return redact_text(value)


def redact_argv(argv: list[str]) -> list[str]:
    """argv with secret-looking values replaced by `***`.

    Handles `--api-key VALUE`, `--api-key=VALUE`, `--passphrase VALUE`,
    `API_TOKEN=VALUE` (also Hydra's `db.password=VALUE`), credential-shaped
    values (`ghp_...`, `sk-...`, `AKIA...`), passwords and tokens inside URLs,
    `-H 'Authorization: Bearer ...'` headers and DSN passwords (`Password=...;`).
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
            out.append(f"{flag}={redact_text(value)}" if eq else arg)
            continue
        match = _ASSIGNMENT.match(arg)
        if match and is_secret_name(match.group("name")):
            out.append(f"{match.group('name')}={REDACTED}")
            continue
        if match:
            out.append(f"{match.group('name')}={redact_text(match.group('value'))}")
            continue
        out.append(redact_text(arg))
    return out
