"""Stopping an experiment's embedded Redis never stops a server that is not that experiment's: the
machine's own Redis, or another experiment's that took the port meanwhile, keeps running."""

from __future__ import annotations

from pathlib import Path

from hpoqueue.broker.embedded import EmbeddedRedis, ping, shut_down


def test_a_server_on_another_data_directory_is_left_running(tmp_path: Path) -> None:
    other = EmbeddedRedis(tmp_path / "other")
    other.spawn()
    try:
        url = other.wait_ready()
        assert not shut_down(url, tmp_path / "ours")  # the port is someone else's now
        assert ping(url)
        assert shut_down(url, tmp_path / "other")  # its own experiment does stop it
        other.process.wait(10)  # type: ignore[union-attr]
        assert not ping(url)
    finally:
        other.stop()
