"""`hpoqueue dashboard` and `hpoqueue report`: their arguments, and the calls into the server and report."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from hpoqueue import settings


def add_commands(add: Callable[[str, Any, str], argparse.ArgumentParser]) -> None:
    """Register both commands with the CLI's `add(name, func, help)`."""
    p = add("dashboard", cmd_dashboard, "serve the experiment dashboard in the browser (127.0.0.1 only)")
    p.add_argument("experiment", nargs="?", help="experiment id to open first (default: the list)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080; 0: any free one)")
    p.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1 only)")
    p.add_argument("--read-only", action="store_true", help="no actions (kill, stop, update); just looking")
    p.add_argument("--flower", help="Flower URL to link to (default: http://127.0.0.1:5555 when it answers)")
    _storage_option(p)
    p = add("report", cmd_report, "write one self-contained HTML file with an experiment's overview, "
                                  "trials and charts (opens offline)")
    p.add_argument("experiment")
    p.add_argument("-o", "--output", default=None, help="HTML file to write (default: report-EXP.html)")
    _storage_option(p)


def _storage_option(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: without it, the subcommand's default None would hide `hpoqueue --storage URL dashboard`
    p.add_argument("--storage", default=argparse.SUPPRESS, help="database URL (as `hpoqueue --storage`)")


def cmd_dashboard(args: argparse.Namespace) -> int:
    from hpoqueue.dashboard.server import serve

    return serve(settings.storage_url(args.storage), args.experiment, address=args.address, port=args.port,
                 read_only=args.read_only, flower=args.flower)


def cmd_report(args: argparse.Namespace) -> int:
    from hpoqueue.dashboard.report import write_report

    path = write_report(settings.storage_url(args.storage), args.experiment,
                        args.output or f"report-{args.experiment}.html")
    print(f"wrote {path}")
    return 0
