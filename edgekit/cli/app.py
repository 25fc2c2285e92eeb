"""The one Typer app every verb module registers on, and the one way a verb reports a user error."""

from __future__ import annotations

from typing import NoReturn

import typer

from edgekit.errors import EdgekitError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Qwen3.5 small models as int4 bundles, run on device without torch.")


def fail(err: EdgekitError) -> NoReturn:
    """Print ``error: problem (fix)`` on stderr and exit 2."""
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2)
