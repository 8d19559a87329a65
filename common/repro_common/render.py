"""Human-readable views of a manifest (rich, on stdout)."""

from __future__ import annotations

from typing import Any

from repro_common.manifest import Manifest


def card_rows(manifest: Manifest) -> list[tuple[str, str, str]]:
    """(section, field, value) rows for the reproducibility card."""
    env, code, seeds = manifest.environment, manifest.code, manifest.seeds
    py = env.get("python") or {}
    os_info = env.get("os") or {}
    packages = env.get("packages") or []
    not_reinstallable = [p["name"] for p in packages if p.get("reinstallable") is False]
    rows: list[tuple[str, str, str]] = [
        ("record", "digest", manifest.digest),
        ("record", "track", manifest.track),
        ("environment", "digest", str(env.get("digest", "unknown"))),
        ("environment", "python", f"{py.get('implementation', '?')} {py.get('version', '?')}"),
        ("environment", "os", " ".join(str(os_info.get(k, "")) for k in ("system", "machine")).strip() or "unknown"),
        ("environment", "packages", f"{len(packages)} installed"
         + (f"; not reinstallable: {', '.join(not_reinstallable[:5])}" if not_reinstallable else "")),
        ("code", "commit", str(code.get("commit") or f"none ({code.get('reason', 'unknown')})")),
        ("code", "branch", str(code.get("branch") or "-")),
        ("code", "dirty", _yes_no(code.get("dirty"))),
        ("code", "entry point", " ".join([str(code.get("entry_point") or "-"), *code.get("argv", [])])),
        ("seeds", "global", str(seeds.get("global") if seeds.get("global") is not None else "unseeded")),
    ]
    for item in manifest.data:
        flag = " (partial)" if item.get("partial") else ""
        rows.append(("data", str(item.get("name")), f"{item.get('fingerprint')}{flag}"))
    for err in manifest.errors:
        rows.append(("capture errors", str(err.get("collector")), str(err.get("error"))))
    return rows


def _yes_no(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, "unknown")


def print_card(manifest: Manifest, title: str = "mlrepro record") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    table.add_column("section", style="cyan", no_wrap=True)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    for section, name, value in card_rows(manifest):
        table.add_row(section, name, value)
    Console().print(table)
