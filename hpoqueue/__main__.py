"""`python -m hpoqueue` runs the CLI."""

from hpoqueue.cli import entry

entry()
