"""Schema versions: a database made before them is refused for reading and upgraded for writing, a newer one
is refused, and the revisions build exactly the schema the models describe."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from hpoqueue.cli.commands import main
from hpoqueue.errors import StorageError
from hpoqueue.storage import Storage, _schema
from hpoqueue.storage._models import Base

V0 = Path(__file__).parents[1] / "data" / "schema_v0"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def v0_url(request: pytest.FixtureRequest) -> str:
    """A database made by hpoqueue before schema versions (tests/data/schema_v0), on every backend."""
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.executescript((V0 / "sqlite.sql").read_text())
    else:
        url = request.getfixturevalue("postgres_url")
        import psycopg

        with psycopg.connect(url.replace("+psycopg", "")) as connection:
            connection.execute((V0 / "postgresql.sql").read_text())  # type: ignore[arg-type]
    return url


def backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def plain(record: Any) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in dataclasses.asdict(record).items()}


def version_rows(url: str) -> list[str] | None:
    """The alembic_version table's rows, None when there is no such table; read without hpoqueue."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def set_version(url: str, version: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": version})
    engine.dispose()


def refusal(url: str, *, upgrade: bool = False) -> str:
    with pytest.raises(StorageError) as info:
        Storage(url, upgrade=upgrade)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_previous_schema_is_refused_for_reading_and_upgraded_for_writing(v0_url: str) -> None:
    text_ = refusal(v0_url)
    assert f"was made before schema versions; this hpoqueue needs schema revision {_schema.HEAD}" in text_
    assert "upgrade it with `hpoqueue db upgrade --storage " in text_
    assert version_rows(v0_url) is None  # refusing wrote nothing

    expected = json.loads((V0 / f"{backend(v0_url)}.json").read_text())
    with Storage(v0_url, upgrade=True) as store:
        assert [plain(e) for e in store.list_experiments()] == expected["experiments"]
        trials = store.trials("legacy1")
        assert [plain(t) for t in trials] == expected["trials"]
        assert [plain(m) for t in trials for m in store.metrics(t.id)] == expected["metrics"]
        assert [plain(e) for t in trials[:2] for e in store.events(t.id)] == expected["events"]
        assert store.intermediate_values("legacy1") == expected["intermediate_values"]
    assert version_rows(v0_url) == [_schema.HEAD]

    with Storage(v0_url) as store:  # now the reading commands open it too, and seqs go on where they were
        assert [t.seq for t in store.create_trials("legacy1", [{"lr": 0.5}])] == [4]


def test_cli_refuses_an_older_schema_and_db_upgrade_upgrades_it(v0_url: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--storage", v0_url, "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hpoqueue db upgrade --storage" in err
    assert main(["db", "upgrade", "--storage", v0_url]) == 0
    assert "from schema revision none (made before schema versions) to 0001" in capsys.readouterr().out
    assert main(["--storage", v0_url, "db", "upgrade"]) == 0
    assert "already at schema revision 0001" in capsys.readouterr().out
    assert main(["--storage", v0_url, "list"]) == 0
    assert "legacy1  mnist  DONE" in capsys.readouterr().out


def test_a_new_database_is_made_at_head(storage_url: str) -> None:
    Storage(storage_url).close()
    assert version_rows(storage_url) == [_schema.HEAD]
    Storage(storage_url).close()
    assert version_rows(storage_url) == [_schema.HEAD]


def test_db_upgrade_creates_a_new_database(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--storage", sqlite_url]) == 0
    assert f"created {sqlite_url} at schema revision {_schema.HEAD}" in capsys.readouterr().out
    assert version_rows(sqlite_url) == [_schema.HEAD]


def test_a_database_newer_than_the_code_is_refused(storage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Storage(storage_url) as store:
        store.create_experiment("e", name=None, config={}, work_dir="/tmp/e", optimize_mode="maximize",
                                concurrency=1, max_trial_number=None, max_duration=None)
    set_version(storage_url, "9999")
    for upgrade in (False, True):
        text_ = refusal(storage_url, upgrade=upgrade)
        assert "schema revision 9999, newer than this hpoqueue knows" in text_
    assert main(["db", "upgrade", "--storage", storage_url]) == 2
    assert "newer than this hpoqueue" in capsys.readouterr().err
    assert version_rows(storage_url) == ["9999"]


def test_the_revisions_build_what_the_models_describe(storage_url: str) -> None:
    """A schema change without its revision (or HEAD not moved to it) fails here."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(_schema._config()).get_heads() == [_schema.HEAD]
    engine = create_engine(storage_url)
    try:
        with engine.begin() as connection:
            command.upgrade(_schema._config(connection), "head")
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        with engine.begin() as connection:
            command.downgrade(_schema._config(connection), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def schema(engine: Engine) -> dict[str, Any]:
    """Everything the inspector reads of every table, the version table included."""
    found = inspect(engine)
    tables = {}
    for name in sorted(found.get_table_names()):
        columns = [{**column, "type": str(column["type"])} for column in found.get_columns(name)]
        tables[name] = {"columns": columns, "primary key": found.get_pk_constraint(name),
                        "foreign keys": found.get_foreign_keys(name), "indexes": found.get_indexes(name),
                        "unique": found.get_unique_constraints(name), "checks": found.get_check_constraints(name)}
    return tables


def test_a_new_database_is_what_the_revisions_build(storage_url: str) -> None:
    """ensure() makes a new database without Alembic: the same tables, columns, keys, indexes and version
    table as Alembic's revisions build, at HEAD as Alembic itself reads it."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    Storage(storage_url).close()
    engine = create_engine(storage_url)
    try:
        made = schema(engine)
        assert "alembic_version" in made and "experiments" in made
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == _schema.HEAD
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        with engine.begin() as connection:  # Alembic reads and takes down what ensure() made...
            command.downgrade(_schema._config(connection), "base")
            connection.execute(text("DROP TABLE alembic_version"))
        assert inspect(engine).get_table_names() == []
        with engine.begin() as connection:  # ... and builds it again from the revisions
            command.upgrade(_schema._config(connection), "head")
        assert schema(engine) == made
    finally:
        engine.dispose()


CREATE_AND_LIST_MODULES = """
import sys
from hpoqueue.storage import Storage
Storage(sys.argv[1]).close()
print(" ".join(sorted(name for name in sys.modules if name.split(".")[0] in ("alembic", "mako"))))
"""


def test_making_a_new_database_does_not_load_alembic(sqlite_url: str) -> None:
    """Alembic and mako stay out of the scheduler's memory (12 MiB resident) unless an old database needs
    them."""
    for _ in ("new", "at HEAD"):
        done = subprocess.run([sys.executable, "-c", CREATE_AND_LIST_MODULES, sqlite_url],
                              capture_output=True, text=True, timeout=60, check=True)
        assert done.stdout.strip() == ""
    assert version_rows(sqlite_url) == [_schema.HEAD]


RACE = """
import os, sys, time
from hpoqueue.storage import Storage
while not os.path.exists(sys.argv[2]):
    time.sleep(0.005)
Storage(sys.argv[1]).close()
"""


def test_processes_making_the_same_database_at_once(storage_url: str, tmp_path: Path) -> None:
    """Several processes (the CLI beside a starting `submit`) create the same new database at once: one makes
    it, the others find it made."""
    start = tmp_path / "start"
    racers = [subprocess.Popen([sys.executable, "-c", RACE, storage_url, str(start)],
                               stderr=subprocess.PIPE, text=True) for _ in range(6)]
    time.sleep(1.5)  # their imports done
    start.touch()
    for racer in racers:
        _, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
    assert version_rows(storage_url) == [_schema.HEAD]
