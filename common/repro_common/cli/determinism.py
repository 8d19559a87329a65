"""Commands filled in by their issue."""

COMMANDS: list = []
