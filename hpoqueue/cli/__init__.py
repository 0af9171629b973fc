"""The `hpoqueue` command: one module per command group, with its progress bar and tables."""
