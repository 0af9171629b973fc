"""Turn a storage URL into a connected SQLAlchemy engine, and any failure into one readable StorageError."""

from __future__ import annotations

import logging
import random
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError, StatementError
from sqlalchemy.pool import StaticPool

from hpoqueue.errors import StorageError, redact

log = logging.getLogger(__name__)

#: how long a SQLite writer waits for another writer's lock before giving up ("database is locked")
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: how long connecting to PostgreSQL may take before the server counts as unreachable
PG_CONNECT_TIMEOUT_S = 5

_HINT = "use sqlite:///ABSOLUTE/PATH.db or postgresql://USER:PASSWORD@HOST:PORT/DB"


def parse_url(url: str) -> URL:
    """Parse and normalize: plain ``postgresql://`` (or ``postgres://``) gets the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StorageError(f"bad storage URL {redact(url)!r}: {one_line(exc)} ({_HINT})") from None
    backend = parsed.get_backend_name()
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise StorageError(f"unsupported storage URL {redact(parsed)}: backend {backend!r} ({_HINT})")
    return parsed


def one_line(exc: BaseException, secret: str | None = None) -> str:
    """The root cause of ``exc`` on one line, without SQLAlchemy's SQL echo and doc links, secrets masked."""
    cause: BaseException = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    text = str(cause).split("\n(Background on this error")[0].split("\n[SQL:")[0]
    text = re.sub(r"\s+", " ", text).strip() or type(cause).__name__
    if secret:
        text = text.replace(secret, "***")
    return text


def open_engine(url: URL, *, create: bool = True) -> Engine:
    """Create the engine and connect once, so a bad path, host or password fails here and not later;
    without `create`, a SQLite file that does not exist is an error instead of a new database."""
    where = redact(url)
    log.debug("opening the database %s", where)
    try:
        engine = _sqlite_engine(url, create) if url.get_backend_name() == "sqlite" else _postgres_engine(url)
        with engine.connect():
            pass
    except StorageError:
        raise
    except (SQLAlchemyError, OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot open storage {where}: {one_line(exc, url.password)}") from None
    return engine


def _postgres_engine(url: URL) -> Engine:
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S})


def _sqlite_engine(url: URL, create: bool) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:")
    kwargs: dict[str, Any] = {}
    if in_memory:
        # one shared connection, or every pooled connection would see its own empty database
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    else:
        path = Path(database).expanduser().absolute()
        if not create and not path.is_file():
            raise StorageError(f"no database at {path}: nothing was submitted with this storage (check "
                               "--storage and $HPOQUEUE_STORAGE_URL, or `hpoqueue submit` first)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = "is not a directory" if path.parent.exists() else f"cannot be created: {exc.strerror}"
            raise StorageError(f"cannot open storage {redact(url)}: {path.parent} {problem}") from None
        url = url.set(database=str(path))
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect(in_memory))
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(in_memory: bool) -> Any:
    def on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # pysqlite's own BEGIN handling breaks SAVEPOINT; SQLAlchemy emits BEGIN itself (see _sqlite_on_begin)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if not in_memory:
            # WAL: the CLI reads while the scheduler writes; NORMAL is durable enough with WAL
            _journal_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def _journal_to_wal(cursor: sqlite3.Cursor) -> None:
    """PRAGMA journal_mode=WAL, tried again while another process holds the lock: on a new file, several
    processes switching at once get "database is locked" at once, without SQLite's busy handler."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.01, 0.05))


def _sqlite_on_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")
