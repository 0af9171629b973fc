"""The schema's version: a new database is made at HEAD, an older one upgraded by Alembic or refused.

The revisions live in migrations/versions/ and Alembic's ``alembic_version`` table records the one a database
is at. A database made before versions existed (create_all, no version table) is the baseline revision.
Opening a database at HEAD costs two small queries. A new database is made without Alembic: the models'
create_all and the version table written at HEAD, as Alembic's stamp writes it, in one transaction (importing
alembic and mako and running the stamp cost the scheduler 12 MiB of resident memory for its whole run).
Alembic is loaded only to upgrade or stamp an old database.
To change the schema: change _models.py, add migrations/versions/vNNNN_what.py revising HEAD, set HEAD;
tests/storage/test_migrations.py checks that the revisions build exactly what the models describe, and that
a database made here is the one they build.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, Engine, MetaData, PrimaryKeyConstraint, String, Table, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from hpoqueue.errors import StorageError, redact
from hpoqueue.storage._engine import one_line, open_engine, parse_url
from hpoqueue.storage._models import Base

if TYPE_CHECKING:
    from alembic.config import Config

#: the newest revision in migrations/versions/: what this hpoqueue creates and reads
HEAD = "0001"
#: the revision of a database made before schema versions (tables present, no version table) ...
BASELINE = "0001"
#: ... which revision() reports as this, so that it is stamped BASELINE before anything reads it as such
UNVERSIONED = "none (made before schema versions)"
VERSION_TABLE = "alembic_version"
MIGRATIONS = Path(__file__).with_name("migrations")
CREATE_TRIES = 20  #: attempts when several processes create or upgrade the same database at once
#: the version table exactly as Alembic makes it (alembic.ddl.impl.DefaultImpl.version_table_impl), so that a
#: later upgrade or stamp by Alembic reads and updates the one written here
_VERSIONS = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False),
                  PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"))


def ensure(engine: Engine, where: str, *, upgrade: bool, create: bool = True, secret: str | None = None) -> None:
    """Make a new database at HEAD (only when ``create``, else refuse it); upgrade an older one when
    ``upgrade``, else refuse it; refuse a newer one.

    ``where`` is the redacted URL for messages; ``secret`` (the password) never appears in them.
    """
    for attempt in range(CREATE_TRIES):
        try:
            found = revision(engine)
            if found is None and not create:
                raise StorageError(f"storage {where} holds no hpoqueue record: nothing was submitted with it "
                                   "(check --storage and $HPOQUEUE_STORAGE_URL, or `hpoqueue submit` first)")
            if found is None:
                if _create(engine):
                    return
                continue  # another process made it since we looked: check what it made
            if found != HEAD:
                _change(engine, found, where, upgrade=upgrade)
            return
        except SQLAlchemyError as exc:
            # another process (the CLI beside a starting `submit`) may create the same tables at this moment;
            # SQLite refuses the second writer at once ("locked"): the next try finds them there
            racing = any(word in str(exc).lower() for word in ("already exists", "duplicate", "locked"))
            if racing and attempt + 1 < CREATE_TRIES:
                time.sleep(random.uniform(0.05, 0.2))
                continue
            raise StorageError(f"cannot set up the tables in {where}: {one_line(exc, secret)}") from None


def upgrade(url: str) -> tuple[str, str | None, str]:
    """`hpoqueue db upgrade`: bring the database at ``url`` to HEAD; (the URL redacted, the revision it had
    (None: a new database), HEAD)."""
    parsed = parse_url(url)
    engine = open_engine(parsed)
    try:
        found = revision(engine)
        ensure(engine, redact(parsed), upgrade=True, secret=parsed.password)
    finally:
        engine.dispose()
    return redact(parsed), found, HEAD


def revision(engine: Engine) -> str | None:
    """The database's revision: the version table's, UNVERSIONED for a database older than versions, None
    when it has no hpoqueue tables yet."""
    with engine.connect() as connection:
        return _revision(connection)


def _revision(connection: Connection) -> str | None:
    # the tables are asked about before the version table: once they are seen, the version row written in the
    # same transaction is seen too (the other way round, another process's commit between the two questions
    # would read as UNVERSIONED)
    tables = inspect(connection).has_table("experiments")
    if inspect(connection).has_table(VERSION_TABLE):
        found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        if found:
            return ",".join(sorted(found))
    return UNVERSIONED if tables else None


def _create(engine: Engine) -> bool:
    """Make a new database at HEAD in one transaction, without Alembic; False when, inside the transaction,
    the database is no longer new (another process made it since revision() looked). Two processes creating
    at once: PostgreSQL fails the second's CREATE ("already exists", "duplicate key"), SQLite its write
    ("locked"), and ensure() tries again."""
    with engine.begin() as connection:
        if _revision(connection) is not None:
            return False
        Base.metadata.create_all(connection)
        _VERSIONS.create(connection)
        connection.execute(_VERSIONS.insert().values(version_num=HEAD))
    return True


def _change(engine: Engine, found: str, where: str, *, upgrade: bool) -> None:
    """The slow path: Alembic stamps or upgrades an old database, after checking the revision is one it knows."""
    from alembic import command
    from alembic.script import ScriptDirectory

    known = {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}
    if found not in (UNVERSIONED, *known):
        raise StorageError(f"storage {where} has schema revision {found}, newer than this hpoqueue knows "
                           f"(its newest is {HEAD}): use the hpoqueue version that wrote it, or a newer one")
    if not upgrade:
        had = "was made before schema versions" if found == UNVERSIONED else f"has schema revision {found}"
        raise StorageError(f"storage {where} {had}; this hpoqueue needs schema revision {HEAD}: upgrade it "
                           f"with `hpoqueue db upgrade --storage {where}`")
    with engine.connect() as connection:
        _foreign_keys(connection, on=False)  # SQLite: copying a table in batch mode must not cascade deletes
        try:
            with connection.begin():
                config = _config(connection)
                if found == UNVERSIONED:
                    command.stamp(config, BASELINE)
                command.upgrade(config, HEAD)
        finally:
            _foreign_keys(connection, on=True)


def _foreign_keys(connection: Connection, *, on: bool) -> None:
    """PRAGMA foreign_keys outside any transaction (inside one SQLite ignores it)."""
    if connection.dialect.name == "sqlite":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
        cursor.close()


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config
