"""`mlrepro capture`: the record for this checkout and interpreter."""

from __future__ import annotations

import click

from repro_common.cli import json_option


@click.command("capture")
@click.option(
    "--track",
    type=click.Choice(["exploratory", "production"]),
    default=None,
    help="Track to record (default: $MLREPRO_TRACK, else exploratory).",
)
@json_option
def capture_command(track: str | None, as_json: bool) -> None:
    """Capture environment, code, seeds and data for this process and print it.

    \b
    Examples:
      mlrepro capture                 readable summary
      mlrepro capture --json > m.json the full manifest
      MLREPRO_TRACK=production mlrepro capture
    """
    from repro_common import capture
    from repro_common.render import print_card

    manifest = capture(track=track)
    if as_json:
        click.echo(manifest.to_json())
    else:
        print_card(manifest)


COMMANDS = [capture_command]
