"""The commands that add to or change an experiment's record by hand: enqueue, import, delete, and
update's --search-space; registered by cli.build_parser."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpoqueue.errors import HpoQueueError
from hpoqueue.states import ACTIVE_STATES, ExperimentState

log = logging.getLogger(__name__)


def cmd_enqueue(args: argparse.Namespace) -> int:
    from hpoqueue.cli.commands import _live_channel, _storage
    from hpoqueue.config.experiment_config import config_from_dict
    from hpoqueue.experiment.manual_trials import ManualQueue, check_params, read_params

    items, source = read_params(args.parameters)
    storage = _storage(args)
    exp = storage.get_experiment(args.experiment)
    check_params(config_from_dict(exp.config, source=f"experiment {exp.id}"), items, source)
    waiting = ManualQueue(Path(exp.work_dir)).add(items)
    when = ("in the next free slots" if _live_channel(storage, exp.id) is not None else
            f"first when `hpoqueue resume {exp.id}` continues it")
    print(f"queued {len(items)} configuration(s) for {exp.id} ({waiting} waiting); they run {when}")
    if exp.state is not ExperimentState.RUNNING and exp.max_trial_number is not None and \
            exp.max_trial_number <= exp.next_seq - 1:
        log.warning("its %d trials are used up; `hpoqueue update %s --max-trials N` makes room",
                    exp.max_trial_number, exp.id)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from hpoqueue.cli.commands import _storage
    from hpoqueue.experiment.launch import new_experiment_id
    from hpoqueue.experiment.records import import_experiment

    exp_id = new_experiment_id()
    count = import_experiment(_storage(args, create=True), Path(args.file).absolute(), exp_id, name=args.name,
                              optimize_mode=args.optimize_mode)
    print(exp_id)
    log.info("imported %d trial(s) as finished experiment %s; `hpoqueue trials %s`, or "
             "`hpoqueue submit CONFIG --warm-start %s`", count, exp_id, exp_id, exp_id)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from hpoqueue.cli.commands import _storage
    from hpoqueue.experiment.records import delete_experiment

    storage = _storage(args)
    exp = storage.get_experiment(args.experiment)
    trials = sum(storage.count_trials(exp.id).values())
    if not args.yes:
        if not sys.stdin.isatty():
            raise HpoQueueError(f"deleting {exp.id} needs confirmation: run it in a terminal, or add --yes")
        answer = input(f"delete experiment {exp.id} ({exp.name or 'unnamed'}, {trials} trials) and its directory "
                       f"{exp.work_dir}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1
    removed = delete_experiment(storage, exp.id)
    print(f"deleted experiment {exp.id} ({trials} trials)" + (f" and {removed}" if removed else ""))
    return 0


def update_search_space(args: argparse.Namespace) -> int:
    """`hpoqueue update EXP --search-space FILE`: checked, stored, and sent to a live scheduler."""
    from hpoqueue.broker import control
    from hpoqueue.cli.commands import _live_channel, _storage
    from hpoqueue.config.experiment_config import config_from_dict
    from hpoqueue.experiment.space_update import check
    from hpoqueue.space import SearchSpace

    raw = SearchSpace.from_file(args.search_space).raw  # a bad file is refused before anything is read
    storage = _storage(args)
    exp = storage.get_experiment(args.experiment)
    running = [t.params for t in storage.trials(exp.id, states=ACTIVE_STATES)]
    config = check(config_from_dict(exp.config, source=f"experiment {exp.id}"), raw, running,
                   str(Path(args.search_space).absolute()))
    storage.update_experiment(exp.id, config={**exp.config, "searchSpace": config.search_space.raw})
    channel = _live_channel(storage, exp.id)
    if channel is not None:
        channel.send_control(control.SearchSpace(space=config.search_space.raw))
        print(f"sent the new search space to the scheduler of {exp.id}")
    else:
        print(f"updated the search space of {exp.id}; it takes effect on `hpoqueue resume {exp.id}`")
    return 0


def register(add: Callable[[str, Any, str], argparse.ArgumentParser]) -> None:
    """Add enqueue, import and delete to the `hpoqueue` parser."""
    p = add("enqueue", cmd_enqueue, "queue configurations of your own to run next in an experiment")
    p.add_argument("experiment")
    p.add_argument("parameters", help="a JSON file, or inline JSON: one object of parameters or a list of them")
    p = add("import", cmd_import, "record an `export --format json` file as a finished experiment")
    p.add_argument("file")
    p.add_argument("--name", help="the experiment's name (default: the file's name)")
    p.add_argument("--optimize-mode", choices=["minimize", "maximize"], default="minimize",
                   help="how its values compare (default minimize)")
    p = add("delete", cmd_delete, "delete a finished experiment: its record and its directory")
    p.add_argument("experiment")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
