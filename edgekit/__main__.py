"""``python -m edgekit``: the same CLI as the ``edgekit`` command."""

from edgekit.cli import app

app()
