"""`mlrepro reproduce` (rebuild a run from its record and check the numbers) and `mlrepro init`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from repro_common.cli import EXIT_FAIL, InputError, json_option, tracking_uri_option

MAX_WARNINGS = 12


class _Progress:
    """A spinner that shows the current step and the last line of output (stderr, terminals
    only); when the folder is rebuilt, its summary (stderr) and the JSON report's fields."""

    def __init__(self, quiet: bool, report: dict[str, Any], venv: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.quiet = quiet
        self.report = report
        self.venv = venv
        self.status: Any = None
        self.current = ""

    def __enter__(self) -> _Progress:
        if self.console.is_terminal and not self.quiet:
            self.status = self.console.status("starting")
            self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def step(self, message: str) -> None:
        """A new step: shown as the spinner's text, or as a plain line when not on a terminal."""
        self.current = message
        if self.status is not None:
            self.status.update(f"[bold]{_escape(message)}")
        elif not self.quiet:
            self.console.print(f"mlrepro: {_escape(message)}", highlight=False)

    def line(self, text: str) -> None:
        """A line of a subprocess' output, under the current step."""
        if self.status is not None:
            self.status.update(f"[bold]{_escape(self.current)}[/] [dim]{_escape(text[-100:])}")

    def rebuilt(self, rebuild: Any) -> None:
        """The folder is ready: its part of the report, and its summary unless --json."""
        ws = rebuild.workspace
        self.report["record"] = _record_trust(ws)
        self.report["cloned_from"] = ws.cloned_from
        if rebuild.venv is not None:
            self.report["not_pinned"] = [
                {"package": p, "reason": r} for p, r in rebuild.venv.not_pinned
            ]
            self.report["installed_from_checkout"] = rebuild.venv.installed_from_checkout
        self.report["warnings"] = rebuild.warnings
        self.report["script"] = str(ws.script)
        if not self.quiet:
            _print_materialised(ws, rebuild.warnings, self.venv)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@click.command("reproduce")
@click.argument("run", metavar="RUN")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to rebuild the run (default: <user cache>/mlrepro/reproduce/<run id>, "
    "outside your repository); must be new or empty.",
)
@click.option("--run", "execute", is_flag=True, help="Run it to a new tracked run and compare.")
@click.option("--venv", is_flag=True, help="Install the pinned requirements in DIR/.venv first.")
@click.option(
    "--system-site-packages",
    is_flag=True,
    help="With --venv: let the venv see this interpreter's packages, so only missing or "
    "mismatched pins are installed.",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="T",
    help="Metrics match when equal within T (absolute, or relative to the value); 0 is bitwise.",
)
@click.option(
    "--ignore-metric",
    multiple=True,
    metavar="GLOB",
    help="Leave matching metrics out of the comparison (repeatable; listed as ignored).",
)
@click.option(
    "--compare-metric",
    "compare_metrics",
    multiple=True,
    metavar="GLOB",
    help="Compare these clock metrics anyway (repeatable). Timing metrics (_*, system/*, "
    "*_time, *_seconds, *_runtime, *_per_second, *duration*, ...) are otherwise listed as "
    "'not compared (timing)'.",
)
@click.option(
    "--compare",
    "outcomes",
    type=click.Choice(["metrics", "artifacts"]),
    multiple=True,
    default=("metrics",),
    show_default=True,
    help="Outcomes to compare (repeatable): final metrics (always), and with 'artifacts' "
    "the content digests of the run's logged files (model weights, predictions; repro/ excluded, an MLflow "
    "model's MLmodel listed as not compared: it holds the run id and creation time).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=None,
    metavar="SECONDS",
    help="Stop the run after this long.",
)
@click.option(
    "--trust-record",
    is_flag=True,
    help="Use a record that fails its integrity check (edited, incomplete or without a "
    "digest) as it is. The verdict says so. Values are still quoted and validated.",
)
@tracking_uri_option
@json_option
def reproduce_command(
    run: str,
    directory: Path | None,
    execute: bool,
    venv: bool,
    system_site_packages: bool,
    tolerance: float,
    ignore_metric: tuple[str, ...],
    compare_metrics: tuple[str, ...],
    outcomes: tuple[str, ...],
    timeout: float | None,
    trust_record: bool,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Rebuild RUN from its record alone and, with --run, check that its numbers come back.

    DIR gets code/ (a clone at the recorded commit with the recorded diff applied),
    requirements.txt (pinned), Dockerfile, the record (manifest.json) and
    reproduce.sh, which sets the recorded seed and numerics variables and runs the
    entry point with its argv. With --run the script runs to a new run tagged
    repro.reproduces=<RUN> (same MLflow store), and inputs and outcomes (final
    metrics; with --compare artifacts the logged files) are compared. REPRODUCED
    needs at least one outcome compared and all agreeing; an unseeded original is
    said first. The record's integrity (digest, run tag, every stored file) is
    checked before anything is cloned or run: a record that fails it is refused
    (exit 1) unless --trust-record, which the verdict then repeats.

    \b
    Exit codes:
      0  REPRODUCED (or, without --run, rebuilt)
      1  NOT REPRODUCED: an input or a compared outcome differs, or the rerun failed;
         or the record failed its integrity check (refused, nothing run)
      2  bad input, or the record cannot be rebuilt
      3  REBUILT, NOT VERIFIED: rerun, but nothing could be compared (no metrics
         or artifacts logged): log a final metric, or use --compare artifacts

    \b
    Examples:
      mlrepro reproduce 3f2a9c41d0e8...            rebuild in the user cache dir (printed)
      mlrepro reproduce runs:/3f2a9c41d0e8 --run   rebuild, rerun, compare exactly
      mlrepro reproduce RUN --run --tolerance 1e-6 allow float noise
      mlrepro reproduce RUN --venv --run           in a fresh venv with the pinned packages
      mlrepro reproduce wandb/offline-run-20250101_120000-abc123 --run
      mlrepro reproduce repro/manifest.json --dir /tmp/rebuilt
      mlrepro reproduce RUN --run --compare metrics --compare artifacts
      mlrepro reproduce RUN --run --compare-metric train_runtime
    """
    from repro_common import reproduce as rp
    from repro_common.runs import RunNotFound, load_run

    try:
        record = load_run(run, tracking_uri)
    except RunNotFound as exc:
        raise InputError(str(exc)) from exc
    target = directory if directory is not None else rp.default_dir(record)
    report: dict[str, Any] = {"run": run, "dir": str(target.resolve())}
    with _Progress(quiet=as_json, report=report, venv=venv) as progress:
        try:
            verdict = rp.reproduce(
                record,
                execute=execute,
                directory=target,
                tracking_uri=tracking_uri,
                venv=venv,
                system_site_packages=system_site_packages,
                tolerance=tolerance,
                ignore_metrics=tuple(ignore_metric),
                compare_metrics=tuple(compare_metrics),
                artifacts="artifacts" in outcomes,
                timeout=timeout,
                trust_record=trust_record,
                progress=progress,
            )
        except rp.UntrustedRecord as exc:
            _refuse(report, str(exc), as_json)
        except rp.ReproduceError as exc:
            raise InputError(str(exc)) from exc
    assert verdict.rebuild is not None
    ws = verdict.rebuild.workspace
    if not execute:
        if as_json:
            click.echo(json.dumps(report, indent=2))
        return
    if verdict.rerun is not None:
        report["seconds"] = round(verdict.rerun.seconds, 3)
        if verdict.rerun.returncode != 0 and not as_json:
            click.echo("\n".join(verdict.rerun.tail[-10:]), err=True)
    report["verdict"] = verdict.to_dict()
    report["verdict"]["trust_record"] = ws.trusted_by_flag
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_verdict(record.ref, verdict)
        if ws.trusted_by_flag:
            click.echo(f"record NOT verified, used as given (--trust-record): {ws.integrity}")
    sys.exit(verdict.exit_code)


def _record_trust(ws: Any) -> dict[str, Any]:
    return {
        "verified": not ws.trusted_by_flag,
        "trust_record": ws.trusted_by_flag,
        "integrity": ws.integrity,
    }


def _refuse(report: dict[str, Any], message: str, as_json: bool) -> NoReturn:
    """A record that fails its integrity check: one line (or the JSON report), exit 1."""
    report["record"] = {"verified": False, "trust_record": False, "integrity": message}
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"mlrepro: {message}", err=True)
    sys.exit(EXIT_FAIL)


def _print_materialised(ws: Any, warnings: list[str], venv: bool) -> None:
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    code = ws.manifest.code
    console.print(
        f"[bold]Rebuilt[/] {ws.record.kind} run {ws.reproduces} in [cyan]{ws.root}[/]\n"
        f"  code/              commit {str(code.get('commit'))[:10]} from {ws.cloned_from}"
        + (" + recorded diff" if code.get("dirty") else "")
        + "\n  requirements.txt   pinned packages"
        + ("  (installed in .venv)" if venv else "")
        + "\n  Dockerfile         docker build -t repro . && docker run --rm repro"
        + f"\n  reproduce.sh       bash {ws.script}"
    )
    if warnings:
        console.print(f"[yellow]{len(warnings)} warning(s):[/]")
        for line in warnings[:MAX_WARNINGS]:
            console.print(f"  [yellow]![/] {_escape(line)}")
        if len(warnings) > MAX_WARNINGS:
            console.print(f"  ... and {len(warnings) - MAX_WARNINGS} more (--json lists all)")


def _print_verdict(ref: str, verdict: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    marks = {True: "[green]same[/]", False: "[red]DIFFERS[/]"}
    notes = any(c.note and c.ok is not None for c in verdict.checks)
    table = Table(title=f"reproduction of {ref}", header_style="bold")
    table.add_column("check", overflow="fold", min_width=12)
    table.add_column("original", overflow="fold", min_width=19)  # a float's repr, unbroken
    table.add_column("reproduced", overflow="fold", min_width=19)
    table.add_column("result", no_wrap=True)
    if notes:
        table.add_column("note", overflow="fold")
    for check in verdict.checks:
        # informational rows (commit, environment, seed) say same/differs, dimmed: not judged
        result = marks[check.ok] if check.ok is not None else f"[dim]{_escape(check.note)}[/]"
        row = [
            f"[dim]{check.section}[/] {_escape(check.name)}",
            _escape(check.original),
            _escape(check.reproduced),
            result,
        ]
        if notes:
            row.append(_escape(check.note) if check.ok is not None else "")
        table.add_row(*row)
    console = Console()
    if verdict.checks:
        console.print(table)
    colour = "green" if verdict.reproduced else ("yellow" if not verdict.verified else "red")
    console.print(f"[bold {colour}]{verdict.word}[/]: {_escape(verdict.reason)}", highlight=False)


@click.command("init")
@click.argument("name", metavar="NAME")
@click.option("--wandb", "with_wandb", is_flag=True, help="Also log to W&B (offline by default).")
def init_command(name: str, with_wandb: bool) -> None:
    """Create an experiment project ready for both tracks in the new folder NAME.

    It holds train.py (seed_everything, track_data, MLflow autolog on a Lightning
    model, and with --wandb the W&B callback), data/, pinned requirements.txt, a
    Dockerfile, a Makefile (train, check, reproduce, register) and a CI workflow
    that runs `mlrepro check --track production` before registering the model.

    \b
    Examples:
      mlrepro init churn-model
      mlrepro init churn-model --wandb
      cd churn-model && git add -A && git commit -m start && make train check
    """
    from repro_common.template import TemplateError, create_project

    try:
        written = create_project(Path(name), with_wandb=with_wandb)
    except TemplateError as exc:
        raise InputError(str(exc)) from exc
    click.echo(f"Created {name}/ with {len(written)} files:")
    for path in written:
        click.echo(f"  {path}")
    click.echo(
        f"\nNext:\n  cd {name}\n  git add -A && git commit -m 'Start {name}'\n"
        "  make train      # a tracked, seeded run on the production track\n"
        "  make check      # the gate CI runs before registration\n"
        "  make reproduce  # rebuild the last run from its record and compare"
    )


COMMANDS = [reproduce_command, init_command]
