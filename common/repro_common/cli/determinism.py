"""`mlrepro check-determinism`: run a script twice under one seed and compare its metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from repro_common.cli import EXIT_FAIL, InputError, json_option

METRICS_PREFIX = "MLREPRO_METRICS "


def metrics_from_stdout(stdout: str) -> Any:
    """The metrics a script reported: its MLREPRO_METRICS lines, else its last line if it is a JSON object.

    One marked line gives its object; several give the list of them, in order.
    Returns None when the script reported nothing usable.
    """
    lines = stdout.splitlines()
    marked = [line[len(METRICS_PREFIX) :] for line in lines if line.startswith(METRICS_PREFIX)]
    if marked:
        objects = []
        for number, text in enumerate(marked, 1):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise InputError(
                    f"MLREPRO_METRICS line {number} is not valid JSON: {exc}"
                ) from None
            if not isinstance(value, dict):
                raise InputError(f"MLREPRO_METRICS line {number} is not a JSON object")
            objects.append(value)
        return objects[0] if len(objects) == 1 else objects
    last = next((line for line in reversed(lines) if line.strip()), "")
    try:
        value = json.loads(last)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _seed_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from repro_common.seeds import parse_seed

    if value is None:
        return None
    try:
        return parse_seed(value, "--seed")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _run_script(script: Path, args: tuple[str, ...], seed: int, index: int) -> Any:
    env = dict(os.environ)
    env["MLREPRO_SEED"] = str(seed)
    proc = subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        raise InputError(
            f"run {index} of {script} exited with status {proc.returncode}: {tail}".rstrip(": ")
        )
    metrics = metrics_from_stdout(proc.stdout)
    if metrics is None:
        raise InputError(
            f"run {index} of {script} reported no metrics: print a line "
            f'`{METRICS_PREFIX}{{"loss": 0.25}}` (or end stdout with one JSON object)'
        )
    return metrics


@click.command(
    "check-determinism",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--runs",
    type=click.IntRange(min=2),
    default=2,
    show_default=True,
    help="How many runs to compare.",
)
@click.option(
    "--seed",
    callback=_seed_option,
    default=None,
    metavar="S",
    help="Seed for every run, 0..2**32-1 (default: $MLREPRO_SEED, else one drawn and printed).",
)
@click.option(
    "--rtol",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Relative tolerance (default 0: bitwise).",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Absolute tolerance (default 0: bitwise).",
)
@json_option
@click.argument("script", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def check_determinism_command(
    runs: int,
    seed: int | None,
    rtol: float,
    atol: float,
    as_json: bool,
    script: Path,
    args: tuple[str, ...],
) -> None:
    """Run SCRIPT [ARGS]... several times with the same seed and compare the metrics it reports.

    Each run is a fresh `python SCRIPT ARGS...` with MLREPRO_SEED set; the script
    picks the seed up with `repro_common.seed_everything()`, or with no code change
    at its first tracked run (MLflow `start_run`, the W&B callback). Options go before
    SCRIPT; everything after SCRIPT is passed to it.

    \b
    Convention: the script prints its metrics as one JSON object on a line
    starting with `MLREPRO_METRICS `, e.g.
      print("MLREPRO_METRICS " + json.dumps({"loss": 0.25, "acc": [0.5, 0.75]}))
    Several such lines are compared in order. Without one, the last line of
    stdout must be a JSON object. PYTHONHASHSEED is passed through as it is.

    \b
    Exit status: 0 every run matched, 1 the runs differ (the first difference is
    printed), 2 bad input (missing script, script failed, no metrics).

    \b
    Examples:
      mlrepro check-determinism train.py --epochs 1
      mlrepro check-determinism --runs 3 --seed 42 --atol 1e-6 train.py
      mlrepro check-determinism --json train.py
    """
    from repro_common.determinism import compare
    from repro_common.seeds import resolve_seed

    if not script.is_file():
        raise InputError(f"no such script: {script}")
    try:
        chosen, _source = resolve_seed(seed)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    results = [_run_script(script, args, chosen, index) for index in range(1, runs + 1)]
    difference, differing_run = None, None
    for index, other in enumerate(results[1:], 2):
        difference = compare(results[0], other, rtol=rtol, atol=atol)
        if difference:
            differing_run = index
            break
    if as_json:
        doc = {
            "deterministic": difference is None,
            "script": str(script),
            "args": list(args),
            "seed": chosen,
            "runs": runs,
            "rtol": rtol,
            "atol": atol,
            "first_difference": difference.path if difference else None,
            "values": [difference.first, difference.second] if difference else None,
            "reason": difference.reason if difference else None,
            "differing_run": differing_run,
            "metrics": results,
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    elif difference is None:
        how = "bitwise" if rtol == 0 and atol == 0 else f"within rtol={rtol}, atol={atol}"
        click.echo(
            f"deterministic: {runs} runs of {script} with seed {chosen} reported the same metrics ({how})"
        )
    else:
        click.echo(
            f"not deterministic: run {differing_run} of {script} (seed {chosen}) differs from run 1 "
            f"at {difference.path} ({difference.reason}): {difference.first} vs {difference.second}"
        )
    if difference is not None:
        raise SystemExit(
            EXIT_FAIL
        )  # reaches main() whatever click's standalone mode does with Exit


COMMANDS = [check_determinism_command]
