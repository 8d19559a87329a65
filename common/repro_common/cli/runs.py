"""`mlrepro show`, `diff`, `check` and `promote`: read runs from any source and judge them."""

from __future__ import annotations

import json
from typing import Any

import click

from repro_common.cli import EXIT_FAIL, EXIT_OK, InputError, json_option, tracking_uri_option

RUN_HELP = (
    "RUN is an MLflow run id (with --tracking-uri or MLFLOW_TRACKING_URI), runs:/<id>, "
    "a W&B run directory (wandb/offline-run-..., or wandb/ for the latest run) or a manifest.json."
)


def _load(ref: str, tracking_uri: str | None) -> Any:
    from repro_common.runs import RunNotFound, load_run

    try:
        return load_run(ref, tracking_uri)
    except RunNotFound as exc:
        raise InputError(str(exc)) from None


def _echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))


def _exit(code: int) -> None:
    """Leave with `code`; SystemExit reaches main() whatever click's standalone mode does with Exit."""
    if code != EXIT_OK:
        raise SystemExit(code)


@click.command("show", epilog=RUN_HELP)
@click.argument("run", metavar="RUN")
@tracking_uri_option
@json_option
def show_command(run: str, tracking_uri: str | None, as_json: bool) -> None:
    """Print a run's reproducibility card: environment, code, seeds, data, track and gate status.

    A run whose repro/ upload never landed (process killed, store down) is shown as
    "record incomplete: repro/manifest.json never arrived" with what its tags say, exit 1.

    \b
    Examples:
      mlrepro show 3f2a9c0d4b5e6f708192a3b4c5d6e7f8 --tracking-uri http://mlflow:5000
      mlrepro show runs:/3f2a9c0d4b5e6f708192a3b4c5d6e7f8
      mlrepro show wandb/latest-run
      mlrepro show repro/manifest.json --json | jq .manifest.seeds
    """
    from repro_common.gate import check_run
    from repro_common.render import print_card
    from repro_common.runs import INCOMPLETE, capture_errors_note
    from repro_common.text import printable
    from repro_common.tracks import TRACKS, run_track

    record = _load(run, tracking_uri)
    if record.manifest is None and (record.manifest_error or "").startswith(INCOMPLETE):
        _show_incomplete(record, as_json)
    if record.manifest is None:
        raise InputError(f"{run}: {record.manifest_error or 'no readable manifest'}")
    track = run_track(record)
    gates = [check_run(record, name) for name in TRACKS]
    reason = gates[0].rule("manifest").reason
    incomplete = reason if reason.startswith(INCOMPLETE) else None
    if as_json:
        _echo_json(
            {
                "run": record.run_id or record.ref,
                "source": record.kind,
                "location": record.location,
                "track": track,
                "incomplete": incomplete,
                "tags": {k: v for k, v in record.tags.items() if k.startswith("repro.")},
                "manifest": record.manifest.to_dict(),
                "gate": {gate.track: gate.to_dict() for gate in gates},
            }
        )
        return
    title = f"{record.kind} run {record.run_id}" if record.run_id else str(record.location or run)
    print_card(record.manifest, title=f"mlrepro record: {title}", track=track, gates=gates)
    if incomplete:
        click.echo(incomplete)
    note = capture_errors_note(record.tags)
    if note:
        click.echo(f"note: the run's repro.capture.errors tag says: {printable(note, 500)}")


def _show_incomplete(record: Any, as_json: bool) -> None:
    """A run whose upload never landed: what its tags say, the missing file named, exit 1."""
    from repro_common.runs import capture_errors_note
    from repro_common.text import printable

    tags = {k: v for k, v in record.tags.items() if k.startswith("repro.")}
    if as_json:
        _echo_json(
            {
                "run": record.run_id or record.ref,
                "source": record.kind,
                "location": record.location,
                "incomplete": record.manifest_error,
                "tags": tags,
                "manifest": None,
            }
        )
    else:
        click.echo(f"mlrepro record: {record.kind} run {record.run_id or record.ref}")
        click.echo(printable(record.manifest_error, 1000))
        for key in sorted(tags):
            if key != "repro.capture.errors":
                click.echo(f"  {printable(key, 250)} = {printable(tags[key], 500)}")
        note = capture_errors_note(record.tags)
        if note:
            click.echo(f"note: the run's repro.capture.errors tag says: {printable(note, 500)}")
    _exit(EXIT_FAIL)


@click.command("diff", epilog=RUN_HELP)
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option(
    "--compare-metric",
    "compare_metrics",
    multiple=True,
    metavar="GLOB",
    help="Compare these clock metrics too (repeatable); timing metrics (*_runtime, "
    "*_per_second, *_time, *_seconds, *duration*, ...) are otherwise shown, not compared.",
)
@tracking_uri_option
@json_option
def diff_command(
    run_a: str,
    run_b: str,
    compare_metrics: tuple[str, ...],
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Explain why two runs may differ: each group is same, differs or unknown.

    Compares packages, interpreter/OS/CUDA, environment variables, code, seeds and
    determinism switches, data fingerprints and params, and the final metrics.
    Seeds of an unseeded run are unknown, never "the same": the RNG states taken
    at capture are compared instead. Runs from MLflow and W&B compare with each
    other: they share one manifest.

    \b
    Exit codes:
      0  identical: every group compared and the same, and no compared metric differs
      1  a group differs, a group is unknown (e.g. unseeded runs), or the records
         match but a metric differs (something the record does not hold changed)
      2  a run cannot be read

    \b
    Examples:
      mlrepro diff 3f2a9c0d4b5e6f708192a3b4c5d6e7f8 9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b
      mlrepro diff runs:/3f2a9c0d4b5e6f708192a3b4c5d6e7f8 wandb/offline-run-20240101_120000-abc123
      mlrepro diff old/manifest.json new/manifest.json --json | jq .differing
    """
    from repro_common.diff import diff_runs
    from repro_common.render import print_diff

    a, b = _load(run_a, tracking_uri), _load(run_b, tracking_uri)
    try:
        result = diff_runs(a, b, compare_metrics)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if as_json:
        _echo_json(result.to_dict())
    else:
        print_diff(result)
    _exit(EXIT_OK if result.identical else EXIT_FAIL)


@click.command("check", epilog=RUN_HELP)
@click.argument("run", metavar="RUN")
@click.option(
    "--track",
    type=click.Choice(["production", "exploratory"]),
    default=None,
    help="Track to judge against (default: the run's own track).",
)
@click.option(
    "--allow-package",
    "allow_packages",
    multiple=True,
    metavar="NAME",
    help="Waive the reinstallability of this distribution (repeatable; the report names it).",
)
@tracking_uri_option
@json_option
def check_command(
    run: str,
    track: str | None,
    allow_packages: tuple[str, ...],
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """The completeness gate: exit 0 when RUN passes, 1 when a rule fails (all listed), 2 when
    RUN cannot be read.

    Rules: manifest (present, schema-valid, untampered, matching the run's digest
    tag), code (commit; clean or diff stored), environment (every package
    reinstallable; Dockerfile and requirements.txt stored), seeds (global seed and
    determinism switches recorded), data (every input fingerprinted in full and
    retrievable: DVC md5 or snapshot). The exploratory track requires only manifest.

    \b
    Examples:
      mlrepro check $RUN_ID --track production          in CI, before model registration
      mlrepro check wandb/latest-run --track production
      mlrepro check $RUN_ID --track production --json | jq '.rules[] | select(.passed|not)'
      mlrepro check $RUN_ID --track production --allow-package our-internal-lib
    """
    from repro_common.gate import check_run
    from repro_common.render import print_gate

    record = _load(run, tracking_uri)
    report = check_run(record, track, allow_packages)
    if as_json:
        _echo_json(report.to_dict())
    else:
        print_gate(report)
        click.echo(report.summary())
    _exit(EXIT_OK if report.passed else EXIT_FAIL)


@click.command("promote", epilog=RUN_HELP)
@click.argument("run", metavar="RUN")
@click.option(
    "--allow-package",
    "allow_packages",
    multiple=True,
    metavar="NAME",
    help="As for `check`: waive the reinstallability of this distribution (repeatable).",
)
@tracking_uri_option
@json_option
def promote_command(
    run: str, allow_packages: tuple[str, ...], tracking_uri: str | None, as_json: bool
) -> None:
    """Move a finished exploratory run to the production track.

    Checks the record is intact and the data at the recorded paths still matches
    its fingerprints (refuses, listing mismatches, exit 1), stores the environment
    spec (repro/Dockerfile) and a snapshot of small inputs without a DVC reference
    (repro/data/, limit MLREPRO_SNAPSHOT_LIMIT_MB, default 100), then tags the run
    repro.track=production and repro.promoted_at. Running it twice changes nothing.
    Exit 0 when the promoted run passes the production gate, 1 when it was refused
    or still fails a rule (each failing rule names its fix), 2 when RUN cannot be read.

    \b
    Examples:
      mlrepro promote 3f2a9c0d4b5e6f708192a3b4c5d6e7f8 && mlrepro check 3f2a9c0d4b5e6f708192a3b4c5d6e7f8
      mlrepro promote wandb/offline-run-20240101_120000-abc123   (local run dir only)
    """
    from repro_common.promote import PromotionError, promote
    from repro_common.render import print_gate

    record = _load(run, tracking_uri)
    if record.kind == "manifest":
        raise InputError(
            f"{run} is a manifest file, not a run: promote the MLflow run or W&B run directory"
        )
    try:
        result = promote(record, allow_packages)
    except PromotionError as exc:
        if as_json:
            _echo_json(
                {
                    "run": record.run_id or run,
                    "promoted": False,
                    "problems": exc.problems or [str(exc)],
                }
            )
        else:
            click.echo(f"mlrepro: {str(exc).splitlines()[0]}", err=True)
            for problem in exc.problems[1:] if len(exc.problems) > 1 else []:
                click.echo(f"  - {problem}", err=True)
        raise SystemExit(EXIT_FAIL) from None
    still_failing = result.report is not None and not result.report.passed
    if as_json:
        _echo_json({"promoted": True, **result.to_dict()})
        _exit(EXIT_FAIL if still_failing else EXIT_OK)
        return
    if result.already:
        click.echo(
            f"{result.run} is already on the production track (since {result.promoted_at}); nothing to do"
        )
    else:
        click.echo(f"promoted {result.run} to the production track at {result.promoted_at}")
        for path in result.stored:
            click.echo(f"  stored {path}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    if still_failing and result.report is not None:
        print_gate(result.report)
        click.echo(f"still failing for production: {', '.join(result.report.failed)}")
        raise SystemExit(EXIT_FAIL)


COMMANDS = [show_command, diff_command, check_command, promote_command]
