"""`python -m hpoqueue.worker.main -Q QUEUES [-c N]`: the one command line of an hpoqueue worker, whose
defaults are set here only (node QUEUE@host, the app's threads pool, no mingle or gossip, log level INFO).
`hpoqueue workers start`, the local workers of a run, workers/launch.sh and the systemd unit all start it.

A Celery worker of hpoqueue's app started without the `celery` command line, whose loading of every CLI
plugin (Flower, click-repl, ...) costs each worker about half a second of start-up."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpoqueue.worker.main", description=__doc__.split("\n")[0])
    parser.add_argument("-Q", "--queues", required=True, help="comma-separated queues to consume")
    parser.add_argument("-c", "--concurrency", type=int, default=1, help="tasks (trials) run at once")
    parser.add_argument("-P", "--pool", default=None, help="Celery pool (default: the app's worker_pool, threads)")
    parser.add_argument("-n", "--hostname", default=None,
                        help="node name; %%h expands to the host name (default: the first queue's name@%%h)")
    parser.add_argument("--logfile", default=None)
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)

    from celery.utils.nodenames import default_nodename, host_format

    from hpoqueue.broker.app import app

    queues = args.queues.split(",")
    worker = app.Worker(hostname=host_format(default_nodename(args.hostname or f"{queues[0]}@%h")), queues=queues,
                        concurrency=args.concurrency, pool_cls=args.pool or app.conf.worker_pool,
                        loglevel=args.loglevel, logfile=args.logfile, without_mingle=True, without_gossip=True,
                        quiet=True)  # no banner: stdout goes nowhere, and it runs `uname -p`
    worker.start()
    return int(worker.exitcode or 0)


if __name__ == "__main__":
    from hpoqueue.worker.quick_exit import exit_now

    exit_now(main())  # the worker has shut down: its tasks are done and its broker connections closed
