"""Human-readable views (rich, on stdout): the reproducibility card, gate and diff tables.

Every value that comes from a record is shown as plain text (`_plain`): never
read as rich markup, its control characters escaped, its length capped. A
record is untrusted input and the terminal must show it, not obey it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from repro_common.manifest import Manifest
from repro_common.text import printable

if TYPE_CHECKING:
    from repro_common.diff import RunDiff
    from repro_common.gate import GateReport


DETAILS_SHOWN = 20  # per gate rule; the JSON report lists all
ROWS_SHOWN = 50  # data inputs on the card, changes per diff group


# The Hugging Face Trainer's own settings that decide its random streams, as `show` lists them.
TRAINER_FIELDS = ("seed", "data_seed", "full_determinism", "model_init")


def _yes_no(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, "unknown")


def _short(value: Any, width: int = 19) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width] + "…"


def card_rows(
    manifest: Manifest, track: str | None = None, gates: list[GateReport] | None = None
) -> list[tuple[str, str, str]]:
    """(section, field, value) rows for the reproducibility card."""
    env, code, seeds = manifest.environment, manifest.code, manifest.seeds
    py = env.get("python") or {}
    os_info = env.get("os") or {}
    hw = env.get("hardware") or {}
    packages = env.get("packages") or []
    blocked = [p.get("name", "?") for p in packages if p.get("reinstallable") is False]
    container = env.get("container") or {}
    rows: list[tuple[str, str, str]] = [
        ("record", "digest", manifest.digest),
        ("record", "track", track or manifest.track),
    ]
    if manifest.capture.get("created_at"):
        rows.append(("record", "captured", str(manifest.capture["created_at"])))
    if manifest.capture.get("promoted_at"):
        rows.append(("record", "promoted", str(manifest.capture["promoted_at"])))
    os_text = " ".join(str(os_info.get(k) or "") for k in ("system", "release", "machine")).split()
    rows += [
        ("environment", "digest", str(env.get("digest", "unknown"))),
        ("environment", "python", f"{py.get('implementation', '?')} {py.get('version', '?')}"),
        ("environment", "os", " ".join(os_text) or "unknown"),
    ]
    if hw.get("cuda") or hw.get("gpus"):
        gpus = ", ".join(
            str(g.get("name", g) if isinstance(g, dict) else g) for g in hw.get("gpus") or []
        )
        rows.append(
            (
                "environment",
                "cuda",
                f"{hw.get('cuda') or '-'} (cuDNN {hw.get('cudnn') or '-'}) {gpus}",
            )
        )
    if container.get("image") or container.get("in_container"):
        rows.append(
            ("environment", "container", str(container.get("image") or "yes (image unknown)"))
        )
    rows.append(
        (
            "environment",
            "packages",
            f"{len(packages)} installed"
            + (f"; not reinstallable: {', '.join(blocked[:5])}" if blocked else ""),
        )
    )
    commit = code.get("commit")
    rows += [
        ("code", "commit", str(commit or f"none ({code.get('reason') or 'unknown'})")),
        ("code", "branch", str(code.get("branch") or "-")),
        (
            "code",
            "dirty",
            _yes_no(code.get("dirty"))
            + (f" (diff {_short(code.get('diff_digest'))})" if code.get("dirty") else ""),
        ),
        (
            "code",
            "entry point",
            " ".join([str(code.get("entry_point") or "-"), *code.get("argv", [])]),
        ),
    ]
    global_seed = seeds.get("global")
    seed_text = "unseeded" if global_seed is None else str(global_seed)
    if global_seed is not None and seeds.get("source"):
        seed_text += f" ({seeds['source']})"
    rows.append(("seeds", "global", seed_text))
    if seeds.get("derived"):
        rows.append(
            ("seeds", "derived", ", ".join(f"{k}={v}" for k, v in sorted(seeds["derived"].items())))
        )
    switches = seeds.get("determinism") or {}
    if switches:
        rows.append(
            ("seeds", "determinism", ", ".join(f"{k}={v}" for k, v in sorted(switches.items())))
        )
    trainer = seeds.get("trainer")
    if isinstance(trainer, dict):
        shown = ", ".join(f"{key}={trainer[key]}" for key in TRAINER_FIELDS if key in trainer)
        if trainer.get("model_seeded") is False:
            shown += " (the model was built before the Trainer seeded: use model_init)"
        rows.append(("seeds", "trainer", shown))
    for item in manifest.data[:ROWS_SHOWN]:
        notes = []
        if item.get("partial"):
            notes.append("partial")
        if (item.get("dvc") or {}).get("md5"):
            notes.append(f"dvc md5 {item['dvc']['md5']}")
        if item.get("snapshot"):
            notes.append(f"snapshot {item['snapshot'].get('path')}")
        from repro_common.table_inputs import VERSIONED_KINDS, label

        if item.get("kind") in VERSIONED_KINDS and item.get("fingerprint"):
            notes.append(label(item))
        suffix = f" [{'; '.join(notes)}]" if notes else ""
        value = item.get("fingerprint")
        if value is None:  # read by the run, not fingerprinted: say which and why
            value = f"not fingerprinted ({item.get('kind')}): {item.get('reason')}"
        rows.append(("data", str(item.get("name")), f"{value}{suffix}"))
    if len(manifest.data) > ROWS_SHOWN:
        more = len(manifest.data) - ROWS_SHOWN
        rows.append(("data", "…", f"{more:,} more inputs not shown (--json lists all)"))
    for gate in gates or []:
        verdict = "pass" if gate.passed else "FAIL: " + ", ".join(gate.failed)
        if gate.passed and gate.advice:
            verdict += f" (advice: {', '.join(gate.advice)})"
        rows.append(("gate", gate.track, verdict))
    for err in manifest.errors:
        rows.append(("capture errors", str(err.get("collector")), str(err.get("error"))))
    return rows


def _plain(value: Any) -> Any:
    """Record text as an inert rich Text: no markup, no escape sequences, bounded."""
    from rich.text import Text

    return Text(printable(value))


def _markup_safe(value: Any, width: int | None = None) -> str:
    """Record text to embed in a markup string (titles): escaped for rich and the terminal."""
    from rich.markup import escape

    text = printable(value)
    return escape(_short(text, width) if width else text)


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def print_card(
    manifest: Manifest,
    title: str = "mlrepro record",
    track: str | None = None,
    gates: list[GateReport] | None = None,
) -> None:
    from rich.table import Table

    table = Table(title=_plain(title), show_lines=False, header_style="bold")
    table.add_column("section", style="cyan", no_wrap=True)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    for section, name, value in card_rows(manifest, track, gates):
        table.add_row(_plain(section), _plain(name), _plain(value))
    _console().print(table)


def print_gate(report: GateReport) -> None:
    from rich.table import Table

    verdict = "[green]PASSED[/green]" if report.passed else "[red]FAILED[/red]"
    table = Table(
        title=f"{_markup_safe(report.track)} gate for {_markup_safe(report.run)}: {verdict}",
        header_style="bold",
    )
    table.add_column("rule", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for rule in report.rules:
        if rule.passed:
            result = "[green]pass[/green]"
        elif rule.required:
            result = "[red]FAIL[/red]"
        else:
            result = "[yellow]advice[/yellow]"
        reason = _plain(rule.reason)
        if len(rule.details) > 1:
            for detail in rule.details[:DETAILS_SHOWN]:
                reason.append(f"\n  - {printable(detail, 300)}")
            if len(rule.details) > DETAILS_SHOWN:
                reason.append(f"\n  ... and {len(rule.details) - DETAILS_SHOWN:,} more")
        if rule.remedy:
            reason.append(f"\n  fix: {printable(rule.remedy, 300)}")
        table.add_row(_plain(rule.name), result, reason)
    _console().print(table)


def _cell(value: Any) -> Any:
    if value is None:
        return _plain("-")
    return _plain(value)


def print_diff(diff: RunDiff) -> None:
    from rich.markup import escape
    from rich.table import Table

    from repro_common.diff import summary_lines

    console = _console()
    colour = "green" if diff.identical else ("red" if diff.verdict != "unknown" else "yellow")
    first, *rest = summary_lines(diff)
    word, _, tail = first.partition(":")
    console.print(
        f"[{colour}]{escape(printable(word))}[/{colour}]:{escape(printable(tail))}", soft_wrap=True
    )
    for line in rest:
        console.print(escape(printable(line)), soft_wrap=True)
    for group in diff.differing_groups:
        table = Table(title=_plain(group), header_style="bold", title_justify="left")
        table.add_column("field", overflow="fold")
        table.add_column("change", no_wrap=True)
        table.add_column(_plain(_short(diff.a, 24)), overflow="fold")
        table.add_column(_plain(_short(diff.b, 24)), overflow="fold")
        changes = diff.groups[group]
        for change in changes[:ROWS_SHOWN]:
            table.add_row(
                _plain(change.field), _plain(change.kind), _cell(change.a), _cell(change.b)
            )
        if len(changes) > ROWS_SHOWN:
            more = f"{len(changes) - ROWS_SHOWN:,} more changes not shown (--json lists all)"
            table.add_row(_plain("…"), _plain(more), _plain(""), _plain(""))
        console.print(table)
    if diff.metrics:
        table = Table(title="metrics (outcomes)", header_style="bold", title_justify="left")
        table.add_column("metric")
        table.add_column(_plain(_short(diff.a, 24)), justify="right")
        table.add_column(_plain(_short(diff.b, 24)), justify="right")
        table.add_column("delta", justify="right")
        for metric in diff.metrics:
            delta = metric.delta
            table.add_row(
                _plain(metric.name),
                _cell(metric.a),
                _cell(metric.b),
                "not compared (timing)"
                if metric.timing
                else ("-" if delta is None else f"{delta:+.6g}"),
            )
        console.print(table)
