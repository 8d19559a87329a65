"""Generated files are built from validated, quoted values, never by pasting record text.

A record may have been edited in a shared store, so every value it gives to
`reproduce.sh`, a Dockerfile or `requirements.txt` goes through this module:
shell words are `shlex.quote`d, names are checked to be what they claim
(shell identifiers, PEP 508 names, PEP 440 versions, URLs without whitespace),
and comments hold only our own text. A value that cannot be made safe is
refused with an `EmitError` naming it, never written.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PYTHON_VERSION = re.compile(r"^(\d{1,2})\.(\d{1,3})(\.\d{1,4})?([a-z]+\d*)?\+?$")
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
# A container image reference: registry/name[:tag][@sha256:hex], nothing a shell or parser reads.
IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PEP508_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])\Z")  # packaging's
SIMPLE_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
VCS = ("git", "hg", "svn", "bzr")
URL_SCHEMES = frozenset({"http", "https", "file", "ssh", "git"})
HASH = re.compile(r"^(sha256|sha384|sha512|md5)=[0-9a-f]{32,128}$")


class EmitError(ValueError):
    """A record value that cannot be written safely into a generated file."""


def has_control(value: str) -> bool:
    return CONTROL.search(value) is not None


# ---------------------------------------------------------------- shell


def shell_word(value: Any) -> str:
    """One shell word that is `value` exactly (newlines and `$` included)."""
    return shlex.quote(str(value))


def shell_name(name: Any, what: str = "variable") -> str:
    """A shell variable name, or EmitError: an `export` line must not become a command."""
    text = str(name)
    if not SHELL_NAME.match(text):
        raise EmitError(f"refusing the recorded {what} name {text!r}: not a shell identifier")
    return text


def export_line(name: Any, value: Any) -> str:
    return f"export {shell_name(name)}={shell_word(value)}"


def default_line(name: Any, value: Any) -> str:
    """Set `name` to `value` unless the caller already set it, then export it."""
    key = shell_name(name)
    return f'[ -n "${{{key}:-}}" ] || {key}={shell_word(value)}; export {key}'


def module_name(value: Any) -> str:
    text = str(value)
    if not MODULE_NAME.match(text):
        raise EmitError(f"refusing the recorded entry module {text!r}: not a dotted module name")
    return text


def relative_dir(value: Any, what: str = "working directory") -> str:
    """A relative POSIX path that stays below where it is joined (no `..`, not absolute)."""
    text = str(value)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if text.startswith("/") or ".." in parts or has_control(text):
        raise EmitError(f"refusing the recorded {what} {text!r}: it leaves the checkout")
    return "/".join(parts)


def commit_id(value: Any) -> str:
    text = str(value)
    if not COMMIT.match(text):
        raise EmitError(f"refusing the recorded commit {text!r}: not a hex object id")
    return text


# ---------------------------------------------------------------- Python packaging


def package_name(value: Any) -> str:
    text = str(value)
    if not PEP508_NAME.match(text):
        raise EmitError(f"refusing the recorded package {text!r}: not a PEP 508 name")
    return text


def package_version(name: str, value: Any) -> str:
    from packaging.version import InvalidVersion, Version

    text = str(value)
    try:
        Version(text)
    except InvalidVersion:
        raise EmitError(
            f"refusing the recorded package {name}: version {text!r} is not PEP 440"
        ) from None
    if has_control(text) or text != text.strip():
        raise EmitError(f"refusing the recorded package {name}: version {text!r} is not PEP 440")
    return text


def package_url(name: str, value: Any) -> str:
    """A URL pip can take after `name @`: a known scheme, a host or path, no whitespace."""
    text = str(value)
    scheme = urlsplit(text).scheme.split("+")[-1].lower()
    if (
        scheme not in URL_SCHEMES
        or has_control(text)
        or any(ch.isspace() for ch in text)
        or text.startswith("-")
    ):
        raise EmitError(f"refusing the recorded package {name}: URL {text!r} is not a plain URL")
    return text


def requirement_line(pkg: dict[str, Any]) -> str | None:
    """The pip requirement that reinstalls exactly this distribution, validated; None if none."""
    from packaging.requirements import InvalidRequirement, Requirement

    if not pkg.get("name"):
        return None
    name = package_name(pkg["name"])
    version, source = pkg.get("version"), pkg.get("source")
    url = str(pkg.get("url") or "")
    line: str | None = None
    if source == "vcs" and url and pkg.get("commit"):
        vcs = str(pkg.get("vcs") or "git")
        if vcs not in VCS:
            raise EmitError(f"refusing the recorded package {name}: unknown VCS {vcs!r}")
        ref = str(pkg["commit"])
        if not SIMPLE_TOKEN.match(ref):
            raise EmitError(f"refusing the recorded package {name}: VCS ref {ref!r}")
        line = f"{name} @ {vcs}+{package_url(name, url)}@{ref}"
        if pkg.get("subdirectory"):
            line += f"#subdirectory={relative_dir(pkg['subdirectory'], 'subdirectory')}"
    elif source == "archive" and url:
        line = f"{name} @ {package_url(name, url.split('#', 1)[0])}"
        if pkg.get("hash"):
            digest = str(pkg["hash"])
            if not HASH.match(digest):
                raise EmitError(f"refusing the recorded package {name}: hash {digest!r}")
            line += "#" + digest
    elif source in ("editable", "local") and url:
        line = f"{name} @ {package_url(name, url)}"
    elif version:
        line = f"{name}=={package_version(name, version)}"
    if line is None:
        return None
    if " @ " not in line:
        return line  # name and version each checked above
    try:
        Requirement(line)
    except InvalidRequirement as exc:
        raise EmitError(f"refusing the recorded package {name}: {exc}") from None
    return line


def comment_text(value: Any, limit: int = 200) -> str | None:
    """`value` when it can sit in a `#` line and stay there (printable, one line), else None."""
    text = str(value)
    if has_control(text) or not text.isprintable() or len(text) > limit:
        return None
    return text


def requirements_txt(packages: list[dict[str, Any]]) -> str:
    """A pinned `pip install -r` list; what cannot be pinned is a one-line comment saying why."""
    lines = ["# Pinned by mlrepro from the run's environment: pip install -r requirements.txt"]
    blocked: list[str] = []
    for pkg in sorted(packages, key=lambda p: str(p.get("name"))):
        line = requirement_line(pkg)
        if pkg.get("reinstallable") is False or line is None:
            name = package_name(pkg.get("name"))
            version = pkg.get("version")
            shown = line or (f"{name}=={package_version(name, version)}" if version else name)
            reason = comment_text(pkg.get("reason") or "unknown source") or "see the record"
            blocked.append(f"# {shown}  -- not reinstallable: {reason}")
        else:
            lines.append(line)
    if blocked:
        lines.append("# The following cannot be pinned from the record alone:")
        lines.extend(blocked)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Dockerfile


def python_minor(value: Any) -> str:
    """`3.11` from a recorded `3.11.4`, or EmitError: it becomes a base image tag."""
    text = str(value)
    match = PYTHON_VERSION.match(text)
    if not match:
        raise EmitError(f"refusing the recorded Python version {text!r}")
    return f"{match.group(1)}.{match.group(2)}"


def docker_value(value: Any) -> str:
    """A double-quoted Dockerfile value: escaped, no newline, no variable expansion."""
    return json.dumps(str(value)).replace("$", "\\$")


def image_ref(value: Any) -> str:
    text = str(value)
    if not IMAGE_REF.match(text) or len(text) > 512:
        raise EmitError(f"refusing the recorded container image {text!r}")
    return text


def plain_token(value: Any, what: str) -> str:
    """A short word (an implementation name, an OS) that may appear in a comment."""
    text = str(value)
    if not SIMPLE_TOKEN.match(text) or len(text) > 64:
        raise EmitError(f"refusing the recorded {what} {text!r}")
    return text
