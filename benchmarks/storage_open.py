"""What the schema version costs when storage opens: the fast path every command takes, and the slow ones.

    python benchmarks/storage_open.py [--runs 20]

Prints a table of medians: `hpoqueue list` as a process (wall and CPU time) on a database at head,
Storage() opened in-process on a database at head and creating a new database (and whether Alembic got
imported: it must not be in either), then the one-time path that loads Alembic: upgrading a database made
before schema versions (tests/data/schema_v0/sqlite.sql).
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
V0_DUMP = ROOT / "tests" / "data" / "schema_v0" / "sqlite.sql"


def median_ms(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def cli_list(home: Path, runs: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of `hpoqueue list` in a fresh process."""
    env = {**os.environ, "HPOQUEUE_HOME": str(home)}
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hpoqueue", "list"], env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return 1000 * statistics.median(walls), 1000 * statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    from hpoqueue.storage import Storage

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        head_url = f"sqlite:///{root / 'hpoqueue.db'}"
        # made by another process, so that this one has not imported Alembic when it opens the database
        subprocess.run([sys.executable, "-m", "hpoqueue", "db", "upgrade", "--storage", head_url], check=True,
                       capture_output=True)
        wall, cpu = cli_list(root, args.runs)
        rows.append(("`hpoqueue list`, database at head (process)", f"{wall:.0f} ms wall, {cpu:.0f} ms CPU"))

        opened = median_ms(lambda: Storage(head_url).close(), args.runs)
        loaded = "alembic" in sys.modules
        rows.append(("Storage() on a database at head", f"{opened:.1f} ms (Alembic imported: {loaded})"))

        counter = iter(range(10**6))

        def create() -> None:
            Storage(f"sqlite:///{root / f'new{next(counter)}.db'}").close()

        created = median_ms(create, args.runs)
        loaded = "alembic" in sys.modules
        rows.append(("Storage() creating a new database", f"{created:.1f} ms (Alembic imported: {loaded})"))

        def upgrade() -> None:
            path = root / f"v0-{next(counter)}.db"
            with sqlite3.connect(path) as connection:
                connection.executescript(V0_DUMP.read_text())
            Storage(f"sqlite:///{path}", upgrade=True).close()

        rows.append(("Storage(upgrade=True) on a schema-v0 database (load included)",
                     f"{median_ms(upgrade, args.runs):.1f} ms"))

    width = max(len(name) for name, _ in rows)
    print(f"{'what':<{width}}  median of {args.runs}")
    print(f"{'-' * width}  {'-' * 30}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
