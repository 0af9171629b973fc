"""`hpoqueue db upgrade`: bring a database's schema to this hpoqueue's, which the reading commands require."""

from __future__ import annotations

import argparse
from typing import Any

from hpoqueue import settings


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register `hpoqueue db ...` on the CLI's subcommands; `parents` holds the options every (sub)command
    takes (-v, -q)."""
    text = "the database's schema version"
    db = sub.add_parser("db", help=text, description=text, parents=parents)
    actions = db.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    text = ("upgrade the database to this hpoqueue's schema (submit, resume and stop do it themselves; the "
            "reading commands refuse an older schema)")
    upgrade = actions.add_parser("upgrade", help=text, description=text, parents=parents)
    # SUPPRESS: without --storage here, the one given before `db` (or its default) stays
    upgrade.add_argument("--storage", default=argparse.SUPPRESS,
                         help="database URL (default: $HPOQUEUE_STORAGE_URL or SQLite under $HPOQUEUE_HOME)")
    upgrade.set_defaults(func=cmd_upgrade)


def cmd_upgrade(args: argparse.Namespace) -> int:
    from hpoqueue.storage import upgrade_schema

    where, found, head = upgrade_schema(settings.storage_url(args.storage))
    if found is None:
        print(f"created {where} at schema revision {head}")
    elif found == head:
        print(f"{where} is already at schema revision {head}, this hpoqueue's newest")
    else:
        print(f"upgraded {where} from schema revision {found} to {head}")
    return 0
