"""``python -m andon`` is the ``andon`` command."""

from andon.platform.cli.main import cli

cli()
