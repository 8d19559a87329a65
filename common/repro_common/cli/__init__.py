"""`mlrepro`: capture, inspect, gate, compare and rebuild reproducible runs.

Thin over the core modules. Exit codes: 0 success / gate passed / runs match /
reproduced, 1 gate failed / runs differ or may differ / not reproduced, 2 bad usage
or input, 3 (`reproduce`) rebuilt and rerun but nothing could be compared.
Errors are one line on stderr; set MLREPRO_DEBUG=1 for a traceback.
"""

from __future__ import annotations

import os
import sys

import click

from repro_common import __version__

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_NOT_VERIFIED = 0, 1, 2, 3


class InputError(click.ClickException):
    """Bad input from the user: one clear line, exit 2."""

    exit_code = EXIT_INPUT

    def show(self, file=None) -> None:  # type: ignore[no-untyped-def]
        click.echo(f"mlrepro: error: {self.format_message()}", err=True)


tracking_uri_option = click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    default=None,
    metavar="URI",
    help="MLflow tracking URI for RUN ids (default: $MLFLOW_TRACKING_URI, else MLflow's default).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  mlrepro capture                      what this checkout and environment look like
  mlrepro fingerprint data/            full-content blake3 fingerprint of a folder
  mlrepro show 3f2a9c...               a run's reproducibility card (MLflow run id)
  mlrepro diff RUN_A RUN_B             why two runs may differ
  mlrepro check RUN --track production the CI gate before model registration
  mlrepro reproduce RUN --run          rebuild a run from its record and compare

RUN is an MLflow run id (with --tracking-uri or MLFLOW_TRACKING_URI), runs:/<id>,
a W&B run directory (wandb/run-...) or a manifest.json file.""",
)
@click.version_option(__version__, prog_name="mlrepro")
def cli() -> None:
    """Make every MLflow and W&B run reproducible: record, check, compare and rebuild runs."""


def _register() -> None:
    from repro_common.cli import capture, determinism, fingerprint, reproduce, runs

    for module in (capture, fingerprint, runs, reproduce, determinism):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: turn every failure into one line and an exit code."""
    try:
        returned = cli.main(args=argv, prog_name="mlrepro", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("mlrepro: aborted", err=True)
        return EXIT_INPUT
    except click.UsageError as exc:
        where = f"mlrepro {exc.ctx.command_path.split(' ', 1)[-1]}" if exc.ctx else "mlrepro"
        if where == "mlrepro mlrepro":
            where = "mlrepro"
        click.echo(f"mlrepro: error: {exc.format_message()} (see: {where} --help)", err=True)
        return EXIT_INPUT
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_INPUT
    except KeyboardInterrupt:
        click.echo("mlrepro: interrupted", err=True)
        return 130
    except Exception as exc:
        if os.environ.get("MLREPRO_DEBUG"):
            raise
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"mlrepro: error: {line} (set MLREPRO_DEBUG=1 for details)", err=True)
        return EXIT_INPUT
    # click returns (rather than raises) the code of `Exit` when not standalone.
    return returned if isinstance(returned, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
