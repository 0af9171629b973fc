"""`python -m hpoqueue` runs the CLI."""

import sys

from hpoqueue.cli import main

sys.exit(main())
