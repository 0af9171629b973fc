"""The simulated cluster and clock: whole experiments against the real scheduler in milliseconds."""
