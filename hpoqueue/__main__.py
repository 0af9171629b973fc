"""`python -m hpoqueue` runs the CLI."""

from hpoqueue.cli.commands import entry

entry()
