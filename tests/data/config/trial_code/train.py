"""Placeholder trial for config tests: only its directory matters."""
