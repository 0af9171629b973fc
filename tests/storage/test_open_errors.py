"""Opening storage: URL normalization, and every failure as one readable StorageError line without secrets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hpoqueue.errors import StorageError
from hpoqueue.storage import Storage

SECRET = "s3cret-Pa55"


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def open_error(url: str) -> str:
    with pytest.raises(StorageError) as info:
        Storage(url)
    text = str(info.value)
    assert "\n" not in text, text
    assert SECRET not in text, text
    assert "sqlalche.me" not in text and "[SQL:" not in text, text
    return text


def test_unreachable_postgres_names_the_redacted_url() -> None:
    port = unused_port()
    text = open_error(f"postgresql://bob:{SECRET}@127.0.0.1:{port}/hpo")
    assert f"postgresql+psycopg://bob:***@127.0.0.1:{port}/hpo" in text
    assert "refused" in text.lower() or "failed" in text.lower()


def test_unknown_role_and_database_on_real_postgres(postgres_url: str) -> None:
    base, _, database = postgres_url.rpartition("/")
    text = open_error(f"{base}/no_such_db_{database}")
    assert "does not exist" in text
    host = base.split("@", 1)[1]
    text = open_error(f"postgresql://nosuchrole:{SECRET}@{host}/{database}")
    assert "nosuchrole:***@" in text and "nosuchrole" in text.split(": ", 1)[1]


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_plain_postgresql_url_uses_psycopg3(postgres_url: str, scheme: str) -> None:
    store = Storage(postgres_url.replace("postgresql+psycopg://", f"{scheme}://"))
    try:
        assert store.url == postgres_url
        assert store.list_experiments() == []
    finally:
        store.close()


@pytest.mark.parametrize("path", ["/proc/forbidden/x.db", "/proc/version/x.db"])
def test_unwritable_sqlite_path(path: str) -> None:
    text = open_error(f"sqlite:///{path}")
    assert path in text


def test_sqlite_path_that_is_a_directory(tmp_path: Path) -> None:
    text = open_error(f"sqlite:///{tmp_path}")
    assert str(tmp_path) in text and "unable to open" in text


@pytest.mark.parametrize(("url", "expect"), [
    ("not a url", "bad storage URL"),
    ("mysql://root@localhost/hpo", "unsupported storage URL"),
    ("", "bad storage URL"),
    (f"postgresql://bob:{SECRET}@127.0.0.1:port/hpo", "bad storage URL"),
])
def test_bad_urls_say_what_to_use(url: str, expect: str) -> None:
    text = open_error(url)
    assert expect in text and "sqlite:///" in text and "postgresql://" in text


def test_several_processes_may_open_a_new_sqlite_database_at_once(tmp_path: Path) -> None:
    """`hpoqueue status` beside a starting `submit`: both create the tables; neither may fail."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = f"from hpoqueue.storage import Storage; Storage({url!r}).list_experiments()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.stderr.read().decode() for p in procs if p.wait() != 0]  # type: ignore[union-attr]
    assert errors == []
