"""`mlrepro capture`: the record for this checkout and interpreter, without any tracker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from repro_common.cli import InputError, json_option

if TYPE_CHECKING:
    from repro_common.manifest import Manifest


@click.command("capture")
@click.option(
    "--track",
    type=click.Choice(["exploratory", "production"]),
    default=None,
    help="Track to record (default: $MLREPRO_TRACK, else exploratory).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Also write the run files there: manifest.json, requirements.txt, code.diff (when dirty).",
)
@json_option
def capture_command(track: str | None, output: Path | None, as_json: bool) -> None:
    """Record what a run started here would depend on: environment, code, seeds and data.

    Run it from inside your project's git checkout with the interpreter you train
    with. The record names every installed distribution and where it came from,
    the commit with any uncommitted changes, and local modules git does not hold.
    Nothing is sent anywhere.

    \b
    Examples:
      mlrepro capture                       readable summary
      mlrepro capture --json > manifest.json
      mlrepro capture -o repro/             manifest.json, requirements.txt, code.diff
      mlrepro capture --track production    record for the production track
      pip install -r repro/requirements.txt rebuild the environment elsewhere
      git apply repro/code.diff             on the recorded commit: the exact code
    """
    from repro_common import capture

    manifest = capture(track=track)
    written = _write_files(manifest, output) if output is not None else []
    if as_json:
        click.echo(manifest.to_json())
        return
    from repro_common.render import print_card

    print_card(manifest)
    if written:
        click.echo(f"wrote {output}{os.sep}: {', '.join(written)}")


def _write_files(manifest: Manifest, output: Path) -> list[str]:
    """Write the run files; a code.diff left from an earlier, dirtier capture is removed."""
    from repro_common.artifacts import CODE_DIFF, artifact_files

    try:
        output.mkdir(parents=True, exist_ok=True)
        files = artifact_files(manifest)
        for name, content in files.items():
            (output / name).write_bytes(content)
        if CODE_DIFF not in files and (output / CODE_DIFF).exists():
            (output / CODE_DIFF).unlink()
    except OSError as exc:
        raise InputError(f"cannot write to {output}: {exc.strerror or exc}") from None
    return list(files)


COMMANDS = [capture_command]
