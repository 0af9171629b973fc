"""The `hpoqueue` command: each subcommand parses its arguments, calls one library function, prints."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from hpoqueue import log as log_setup
from hpoqueue import settings
from hpoqueue.cli import db as db_cli
from hpoqueue.cli.tables import clock, print_table
from hpoqueue.credentials import private_umask
from hpoqueue.errors import HpoQueueError, NotFoundError
from hpoqueue.experiment.interrupts import outlive_terminal, raise_interrupt, signals_handled
from hpoqueue.results import metric_keys
from hpoqueue.states import ACTIVE_STATES, ExperimentState, TrialState
from hpoqueue.worker.quick_exit import exit_now

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from hpoqueue.broker.protocol import Channel
    from hpoqueue.storage import ExperimentRecord, Storage, TrialRecord


def _storage(args: argparse.Namespace, config_value: str | None = None, *, upgrade: bool = False,
             create: bool = False) -> Storage:
    """The storage the command works on, closed when main() returns. Only the commands that record an
    experiment (``create``: submit, import) make a new database; an older schema is upgraded only by the
    commands that run the scheduler (``upgrade``), refused by the others."""
    from hpoqueue.storage import Storage  # SQLAlchemy: a third of a second, loaded when first needed

    url = settings.storage_url(args.storage, config_value)
    resources: ExitStack = args.resources
    return resources.enter_context(Storage(url, upgrade=upgrade, create=create))


# ---- running experiments ---------------------------------------------------------------------------
def cmd_submit(args: argparse.Namespace) -> int:
    from hpoqueue.config.experiment_config import load_config
    from hpoqueue.experiment import launch

    config = load_config(args.config)
    storage_url = settings.storage_url(args.storage, config.storage)
    broker_url = launch.check(config, broker=args.broker, storage_url=storage_url)
    exp_id = launch.new_experiment_id()
    work_dir = config.experiment_working_directory / exp_id
    queues = None
    recorded = False

    def discard_unrecorded() -> None:
        """An experiment that was never recorded leaves no directory behind."""
        if not recorded:
            shutil.rmtree(work_dir, ignore_errors=True)

    with ExitStack() as early:
        if broker_url is None and not args.detach and config.training_service.platform == "local":
            # a local run: Redis and the workers boot while the storage and the scheduler load. run() takes
            # them over and stops them at the end; `early` stops them if anything (a SIGTERM, a failure to
            # record the experiment) ends `submit` before run() has, and a second stop does nothing
            early.callback(discard_unrecorded)
            redis_server = launch.spawn_embedded(work_dir, early)
            queues = launch.trial_queues(config, local=True, notify=launch.warn_user)
            # grace 0: by the time `early` unwinds, run() has drained the workers of any trial it dispatched
            launch.start_local_workers(config, work_dir, redis_server.url, queues, early, grace=0,
                                       watch=False)  # run() watches them
            redis_server.wait_ready()  # while the workers boot
        storage = _storage(args, config.storage, upgrade=True, create=True)
        from hpoqueue.experiment import run as experiments
        from hpoqueue.experiment import warm_start

        warm = warm_start.select(storage, args.warm_start, config) if args.warm_start else None
        experiments.create(config, storage, exp_id, broker_url)
        recorded = True
        args.created_experiment = exp_id  # for the Python API, which runs this command in its process
        # the command's result, also with --quiet: the id of the experiment it runs
        print(f"experiment {exp_id} created ({config.experiment_name or Path(args.config).name}); "
              f"follow it with `hpoqueue status {exp_id}`", file=sys.stderr)
        from hpoqueue.tuners._auto import tuner_summary

        log.info("tuner: %s", tuner_summary(config.tuner.name, config.tuner.class_name, config.search_space))
        if warm is not None:
            warm_start.save(work_dir, args.warm_start, warm[0])
            log.info("warm start: the tuner observes %d finished trial(s) of %s%s", len(warm[0]), args.warm_start,
                     f"; {warm[1]} skipped (their parameters do not fit this search space)" if warm[1] else "")
        return _drive(args, storage, exp_id, queues)


def cmd_resume(args: argparse.Namespace) -> int:
    storage = _storage(args, upgrade=True)
    storage.get_experiment(args.experiment)
    return _drive(args, storage, args.experiment, None)


def _drive(args: argparse.Namespace, storage: Storage, exp_id: str, queues: list[str] | None) -> int:
    args.interrupt_hint = f"`hpoqueue resume {exp_id}` continues the experiment"
    if args.detach:
        return _detach(args, storage, exp_id)
    from hpoqueue.cli.progress import ProgressBar
    from hpoqueue.experiment import run as experiments

    log_file = Path(storage.get_experiment(exp_id).work_dir) / "scheduler.log"
    with signals_handled(outlive_terminal(log_file), signal.SIGHUP):
        with nullcontext(None) if args.quiet else ProgressBar() as bar:
            state = experiments.run(exp_id, storage, broker=args.broker,
                                    local_workers=True if args.local_workers else None, queues=queues,
                                    on_progress=bar)
        _print_outcome(storage, exp_id)
    return 0 if state is ExperimentState.DONE else 1


def _detach(args: argparse.Namespace, storage: Storage, exp_id: str) -> int:
    """Run the scheduler in a background process of its own (`hpoqueue resume EXP`), refused here, not in
    its log, beside a live scheduler (a scheduler in the foreground is refused by the lock run() takes)."""
    from hpoqueue.experiment.lock import ensure_no_scheduler, ensure_not_running

    exp = storage.get_experiment(exp_id)
    ensure_not_running(Path(exp.work_dir), exp_id)
    if (channel := _channel(storage, exp_id)) is not None:
        ensure_no_scheduler(channel, exp_id)  # on another machine
    log_file = Path(exp.work_dir) / "scheduler.log"
    # the storage URL travels by environment, not argv, so a password in it does not show in `ps`
    env = {**os.environ, settings.ENV_STORAGE: storage.url}
    command = [sys.executable, "-m", "hpoqueue", "resume", exp_id, "--quiet"]
    if args.broker:  # recorded for the experiment at creation; a resume with --broker records it again
        settings.remember_broker(Path(exp.work_dir), args.broker)
    if args.local_workers:
        command.append("--local-workers")
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                start_new_session=True)
    (Path(exp.work_dir) / "scheduler.pid").write_text(str(proc.pid))
    print(exp_id)
    log.info("running in the background (pid %d, log %s); `hpoqueue status %s`", proc.pid, log_file, exp_id)
    return 0


def _print_outcome(storage: Storage, exp_id: str) -> None:
    """The best trial; without one, why not and where to look (a run of failures, or no metric reported)."""
    best = _best_trial(storage, exp_id)
    if best is not None:
        print(f"best: {best.final_value:.6g} from trial {best.id} with {json.dumps(best.params)}")
        return
    exp = storage.get_experiment(exp_id)
    failed = storage.trials(exp_id, states=[TrialState.FAILED])
    succeeded = storage.count_trials(exp_id)[TrialState.SUCCEEDED]
    if failed:
        last = _last_line(_trial_file(exp, failed[0], "trial.stderr"))
        log.warning("no result: %d trial(s) failed; `hpoqueue logs %s --stderr` shows why%s", len(failed),
                    failed[0].id, f" (it ends: {last})" if last else "")
    elif succeeded:
        pattern = exp.config.get("metricPattern")
        lines = (f"lines matching metricPattern {pattern!r}" if pattern else
                 f"`{exp.config.get('metricName') or 'default'}=<number>` lines")
        log.warning("no result: %d trial(s) succeeded but reported none; print %s or call "
                    "hpoqueue.trial.report_final_result(value)", succeeded, lines)


def _trial_file(exp: ExperimentRecord, trial: TrialRecord, name: str) -> Path:
    """A file of the trial's current attempt: trial.stdout, trial.stderr or trial.log."""
    return settings.attempt_dir(exp.work_dir, trial.seq, trial.attempt) / name


def _last_line(path: Path, limit: int = 200) -> str | None:
    """The last non-blank line of a text file (cut to `limit` characters), None when there is none."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            lines = [line.strip() for line in fh.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1][:limit] if lines else None


def _best_trial(storage: Storage, exp_id: str) -> TrialRecord | None:
    exp = storage.get_experiment(exp_id)
    top = storage.trials(exp_id, states=[TrialState.SUCCEEDED], sort="value", optimize_mode=exp.optimize_mode,
                         limit=1)
    return top[0] if top and top[0].final_value is not None else None


# ---- looking at experiments ------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    storage = _storage(args)
    rows = []
    for exp in storage.list_experiments():
        counts = storage.count_trials(exp.id)
        best = _best_trial(storage, exp.id)
        rows.append([exp.id, exp.name or "-", exp.state.value, sum(counts.values()),
                     best.final_value if best else None, exp.created_at.strftime("%Y-%m-%d %H:%M")])
    if rows:
        print_table(["id", "name", "state", "trials", "best", "created"], rows)
    else:
        print("no experiments")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    storage = _storage(args)
    exp = storage.get_experiment(args.experiment)
    counts = storage.count_trials(exp.id)
    best = _best_trial(storage, exp.id)
    total = exp.max_trial_number if exp.max_trial_number is not None else "unlimited"
    lines = [
        f"experiment  {exp.id} ({exp.name or 'unnamed'})",
        f"state       {exp.state.value}" + (f": {exp.message}" if exp.message else ""),
        f"trials      {sum(counts.values())} created of {total}, concurrency {exp.concurrency}",
        "            " + ", ".join(f"{s.value.lower()} {n}" for s, n in counts.items() if n) if any(
            counts.values()) else "            none yet",
        f"best        {best.final_value:.6g} (trial {best.id})" if best else "best        -",
        f"optimize    {exp.optimize_mode}",
        f"tuner       {_tuner_summary(exp.config, sum(counts.values()))}",
        f"directory   {exp.work_dir}",
    ]
    if exp.state is ExperimentState.RUNNING:
        lines.insert(2, "scheduler   running" if _live_channel(storage, exp.id) is not None else
                     f"scheduler   not running (killed?): `hpoqueue resume {exp.id}` continues the experiment, "
                     f"`hpoqueue stop {exp.id}` ends it")
    for trial in storage.trials(exp.id, states=[TrialState.WAITING]):
        why = next((e.data.get("why") for e in reversed(storage.events(trial.id)) if e.kind == "waiting"), None)
        lines.append(f"waiting     {trial.id}: {why or 'queued, no worker has taken it yet'}")
    print("\n".join(lines))
    return 0


def _tuner_summary(config: dict, trials: int) -> str:
    """The recorded config's tuner (for Auto: which tuner it runs now)."""
    from hpoqueue.space import SearchSpace
    from hpoqueue.tuners._auto import tuner_summary

    tuner = config.get("tuner") or {}
    return tuner_summary(tuner.get("name"), tuner.get("className"),
                         SearchSpace.from_dict(config.get("searchSpace") or {}), trials)


def cmd_trials(args: argparse.Namespace) -> int:
    storage = _storage(args)
    exp = storage.get_experiment(args.experiment)
    states = [TrialState(args.state.upper())] if args.state else None
    if args.sort in ("seq", "state", "value") and not args.pareto:
        # order and limit in the database: a long experiment is never loaded whole for a top 20
        trials = storage.trials(exp.id, states=states, sort=args.sort, optimize_mode=exp.optimize_mode,
                                limit=args.top or None)
    else:
        trials = storage.trials(exp.id, states=states)
        if args.pareto:
            trials = _front(exp, [t for t in trials if t.state is TrialState.SUCCEEDED])
        if args.sort == "state":
            trials.sort(key=lambda t: t.state.value)
        elif args.sort != "seq":  # a metric key: best first
            metric_keys.check_key(trials, args.sort, "--sort")
            trials = metric_keys.ranked(trials, args.sort, exp.optimize_mode)
        if args.top:
            trials = trials[: args.top]
    extra = metric_keys.extra_keys(trials)
    rows = [[t.id, t.state.value, t.final_value, *(metric_keys.extras(t).get(k) for k in extra), t.attempt,
             _duration(t), t.host or "-", json.dumps(t.params, separators=(",", ":"))] for t in trials]
    if rows:
        print_table(["trial", "state", "value", *extra, "attempt", "duration", "host", "parameters"], rows)
    else:
        print("no trials")
    started = storage.started_events([(t.id, t.attempt) for t in trials if t.host])
    elsewhere = sorted({m for e in started.values() if (m := _other_machine(e.data))})
    if elsewhere:
        log.info("files the trials wrote (NNI_OUTPUT_DIR) stay on the machine that ran them (%s); "
                 "`hpoqueue logs TRIAL` names the directory there", ", ".join(elsewhere))
    return 0


def _front(exp: ExperimentRecord, trials: list[TrialRecord]) -> list[TrialRecord]:
    """The trials no other trial beats on every objective of a multi-objective experiment."""
    from hpoqueue.results.pareto import recorded_objectives, trial_front

    objectives = recorded_objectives(exp.config)
    if not objectives:
        raise HpoQueueError(f"experiment {exp.id} has one objective: --pareto needs `objectives` in its config")
    return trial_front(trials, objectives)


def _duration(t: TrialRecord) -> str:
    if t.started_at is None:
        return "-"
    end = t.ended_at.timestamp() if t.ended_at else time.time()
    return clock(end - t.started_at.timestamp())


def cmd_best(args: argparse.Namespace) -> int:
    storage = _storage(args)
    best = _best_trial(storage, args.experiment)
    exp = storage.get_experiment(args.experiment)
    if args.metric is None and exp.config.get("objectives"):  # several objectives: the Pareto front
        front = _front(exp, storage.trials(exp.id, states=[TrialState.SUCCEEDED]))
        print(json.dumps([{"trial": t.id, "value": t.final_value, "metrics": metric_keys.extras(t),
                           "parameters": t.params} for t in front], indent=2))
        return 0 if front else 1
    if args.metric is not None:
        done = storage.trials(exp.id, states=[TrialState.SUCCEEDED])
        metric_keys.check_key(done, args.metric, "--metric")
        ranked = [t for t in metric_keys.ranked(done, args.metric, args.mode or exp.optimize_mode)
                  if metric_keys.number(t, args.metric) is not None]
        best = ranked[0] if ranked else None
    if best is None:
        print("no successful trial with a result yet")
        return 1
    print(json.dumps({"trial": best.id, "value": best.final_value, "metrics": metric_keys.extras(best),
                      "parameters": best.params}, indent=2))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    storage = _storage(args)
    trial = storage.get_trial(args.trial)
    exp = storage.get_experiment(trial.experiment_id)
    name = "trial.stderr" if args.stderr else "trial.log" if args.hpoqueue else "trial.stdout"
    path = _trial_file(exp, trial, name)
    if not path.exists() and not args.follow:
        raise NotFoundError(f"no {name} for trial {trial.id} yet ({path})")
    box = _ran_elsewhere(storage, trial)
    if box:
        log.info("%s", box)
    offset = 0
    while True:
        # whether it ended, asked before reading: the last output written before the end is read too
        ended = not args.follow or storage.get_trial(trial.id).state not in ACTIVE_STATES
        if path.exists():
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            offset += len(chunk)
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
        if ended:
            return 0
        time.sleep(0.5)


def _other_machine(started: dict[str, Any]) -> str | None:
    """The machine named by a `started` event's data when it is not this one."""
    import socket

    machine = started.get("machine")
    return machine if machine and machine != socket.gethostname() else None


def _started_elsewhere(storage: Storage, trial: TrialRecord) -> dict[str, Any] | None:
    """The `started` event of the trial's attempt when another machine ran it (its `machine`, worker `host`
    and `log_dir` there); None when this machine did, or it has not started."""
    event = storage.started_events([(trial.id, trial.attempt)]).get(trial.id)
    return event.data if event is not None and _other_machine(event.data) else None


def _ran_elsewhere(storage: Storage, trial: TrialRecord) -> str | None:
    """Which other machine ran the trial's attempt and where its files stay there; None when this one did."""
    started = _started_elsewhere(storage, trial)
    if started is None:
        return None
    return (f"{trial.id} ran on {started['machine']} (worker {started.get('host')}); its output comes back here, "
            f"the files it wrote (NNI_OUTPUT_DIR) stay there in {started.get('log_dir')}")


def cmd_export(args: argparse.Namespace) -> int:
    from hpoqueue.cli.export import export

    storage = _storage(args)
    exp = storage.get_experiment(args.experiment)
    with open(args.output, "w", newline="") if args.output else nullcontext(sys.stdout) as out:
        export(storage, exp.id, args.format, args.intermediate, out, newline=not args.output)
    return 0


# ---- changing running experiments --------------------------------------------------------------------
def _channel(storage: Storage, exp_id: str) -> Channel | None:
    """The experiment's broker channel if its broker answers, else None."""
    from hpoqueue.broker.client import redis_client
    from hpoqueue.broker.embedded import ping
    from hpoqueue.broker.protocol import Channel

    url = settings.stored_broker(Path(storage.get_experiment(exp_id).work_dir))
    if url is None or not ping(url, timeout=1.0):
        return None
    return Channel(redis_client(url), exp_id)


def _live_channel(storage: Storage, exp_id: str) -> Channel | None:
    """The experiment's broker channel if its scheduler is alive, else None."""
    channel = _channel(storage, exp_id)
    return channel if channel is not None and channel.scheduler_alive() else None


def cmd_kill(args: argparse.Namespace) -> int:
    from hpoqueue.broker import control
    from hpoqueue.broker.protocol import attempt_id

    storage = _storage(args)
    trial = storage.get_trial(args.trial)
    channel = _channel(storage, trial.experiment_id)
    if trial.state not in ACTIVE_STATES:
        print(f"trial {trial.id} already ended ({trial.state.value})")
        return 0
    if channel is not None and channel.scheduler_alive():
        channel.send_control(control.Kill(trial=trial.id))
        print(f"asked the scheduler to kill trial {trial.id}")
        return 0
    if channel is not None:  # its worker stops it; the next scheduler records how it ended (a result too)
        channel.stop(attempt_id(trial.id, trial.attempt), "user_canceled")
        print(f"asked the worker of trial {trial.id} to stop it; no scheduler is running, so it is recorded "
              f"by the next (`hpoqueue resume {trial.experiment_id}` or `hpoqueue stop {trial.experiment_id}`)")
        return 0
    storage.transition(trial.id, TrialState.USER_CANCELED, expected=ACTIVE_STATES,
                       exit_reason="killed while no scheduler or broker ran")
    print(f"trial {trial.id} marked USER_CANCELED (neither its scheduler nor its broker is running)")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    storage = _storage(args, upgrade=True)
    channel = _live_channel(storage, args.experiment)
    if channel is not None:
        from hpoqueue.broker import control

        channel.send_control(control.Stop())
        print(f"asked the scheduler of {args.experiment} to stop")
        return 0
    if storage.get_experiment(args.experiment).state is not ExperimentState.RUNNING:
        print(f"experiment {args.experiment} is not running")
        return 0
    from hpoqueue.experiment import run as experiments

    # its scheduler was killed: one that records what finished meanwhile, then stops what is left
    experiments.run(args.experiment, storage, stop=True)
    counts = storage.count_trials(args.experiment)
    print(f"experiment {args.experiment} stopped (no scheduler was running): "
          f"{counts[TrialState.USER_CANCELED]} trial(s) recorded USER_CANCELED")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from hpoqueue.config.experiment_config import parse_duration

    if args.search_space is not None:
        if any(v is not None for v in (args.concurrency, args.max_trials, args.duration)):
            raise HpoQueueError("--search-space is given alone: update the limits in a second command")
        from hpoqueue.cli.manual import update_search_space

        return update_search_space(args)

    changes = {"concurrency": args.concurrency, "max_trial_number": args.max_trials,
               "max_duration": parse_duration(args.duration, field="--duration") if args.duration else None}
    if all(v is None for v in changes.values()):
        raise HpoQueueError("nothing to update: give --concurrency, --max-trials, --duration or --search-space")
    from hpoqueue.config.experiment_config import MAX_CONCURRENCY, MAX_INT

    for flag, value, top in (("--concurrency", args.concurrency, MAX_CONCURRENCY),
                             ("--max-trials", args.max_trials, MAX_INT)):
        if value is not None and not 1 <= value <= top:
            raise HpoQueueError(f"{flag} must be between 1 and {top}, not {value}")
    storage = _storage(args)
    channel = _live_channel(storage, args.experiment)
    if channel is not None:
        from hpoqueue.broker import control

        channel.send_control(control.Update(**changes))
        print(f"sent the update to the scheduler of {args.experiment}")
    else:
        storage.update_experiment(args.experiment, **changes)
        print(f"updated {args.experiment}; it takes effect on `hpoqueue resume {args.experiment}`")
    return 0


# ---- workers and Flower ----------------------------------------------------------------------------
def cmd_workers(args: argparse.Namespace) -> int:
    from hpoqueue.cli.workers import workers_command

    return workers_command(args)


def cmd_flower(args: argparse.Namespace) -> int:
    from hpoqueue.broker.embedded import resolve_broker_url

    url = resolve_broker_url(args.broker) or "redis://127.0.0.1:6379/0"
    command = [sys.executable, "-m", "celery", "-A", "hpoqueue", "--broker", url, "flower",
               f"--address={args.address}", f"--port={args.port}"]
    if args.basic_auth:
        command.append(f"--basic-auth={args.basic_auth}")
    os.execv(sys.executable, command)  # become Flower: stopping this process stops Flower, no orphan


# ---- parser ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpoqueue", description=(
        "Hyperparameter optimization on your own GPU boxes. Runs any command as a trial over Celery "
        "queues on Redis; reads NNI experiment configs."))
    parser.add_argument("--storage", help="database URL (default: $HPOQUEUE_STORAGE_URL or SQLite under "
                                          "$HPOQUEUE_HOME, ~/hpoqueue-experiments)")
    _verbosity_options(parser, default=False)
    # every command and subcommand takes them after its name too: `hpoqueue submit x.yml -q`, `hpoqueue db upgrade -v`
    after = argparse.ArgumentParser(add_help=False)
    _verbosity_options(after, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[after])
        p.set_defaults(func=func)
        return p

    for name, func, text in (("submit", cmd_submit, "run an experiment from a YAML config"),
                             ("resume", cmd_resume, "continue an experiment after a crash or stop")):
        p = add(name, func, text)
        if name == "submit":
            p.add_argument("config", help="experiment YAML (NNI v2 or v1 format)")
            p.add_argument("--warm-start", metavar="EXP", help="the tuner first observes the finished trials "
                           "of experiment EXP that fit this search space")
        else:
            p.add_argument("experiment", help="experiment id")
        p.add_argument("--detach", action="store_true", help="run the scheduler in the background")
        p.add_argument("--broker", help="Redis URL of a cluster (default: config, $HPOQUEUE_BROKER_URL, "
                                        "else an embedded Redis with local workers)")
        p.add_argument("--local-workers", action="store_true",
                       help="also start workers on this machine when using an external broker")

    add("list", cmd_list, "list experiments")
    add("status", cmd_status, "show an experiment's progress").add_argument("experiment")
    p = add("trials", cmd_trials, "list an experiment's trials")
    p.add_argument("experiment")
    p.add_argument("--sort", default="seq", metavar="KEY",
                   help="seq (default), state, value, or any key of the trials' final results (best first)")
    p.add_argument("--top", type=int, help="show only the first N rows")
    p.add_argument("--pareto", action="store_true", help="only the Pareto front (experiments with objectives)")
    p.add_argument("--state", choices=[s.value.lower() for s in TrialState], help="only trials in this state")
    p = add("best", cmd_best, "print the best trial (the Pareto front, with objectives) as JSON")
    p.add_argument("experiment")
    p.add_argument("--metric", metavar="KEY", help="rank by this key of the final results (default: the result)")
    p.add_argument("--mode", choices=["minimize", "maximize"],
                   help="direction for --metric (default: the experiment's optimize_mode)")
    p = add("logs", cmd_logs, "print a trial's output")
    p.add_argument("trial", help="trial id, e.g. ab12cd34-7")
    p.add_argument("--stderr", action="store_true", help="standard error instead of standard output")
    p.add_argument("--hpoqueue", action="store_true", help="hpoqueue's own log of the trial")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the trial ends")
    add("kill", cmd_kill, "stop one trial (recorded USER_CANCELED)").add_argument("trial")
    add("stop", cmd_stop, "stop an experiment and its running trials").add_argument("experiment")
    p = add("update", cmd_update, "change a running experiment's limits")
    p.add_argument("experiment")
    p.add_argument("--concurrency", type=int)
    p.add_argument("--max-trials", type=int)
    p.add_argument("--duration", help="maxExperimentDuration, e.g. 2h")
    p.add_argument("--search-space", metavar="FILE",
                   help="a new search space for the trials to come (tuners that can take one)")
    from hpoqueue.cli import manual as manual_cli

    manual_cli.register(add)
    p = add("export", cmd_export, "export trials as CSV or JSON")
    p.add_argument("experiment")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--intermediate", action="store_true", help="include intermediate results")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    db_cli.add_parser(sub, parents=[after])
    p = add("workers", cmd_workers, "start, stop or list Celery workers for this machine's GPUs (start|stop|"
            "status), or over SSH on the boxes of a hosts file (up|down|status HOSTS.yml)")
    p.add_argument("action", choices=["start", "stop", "status", "up", "down"])
    p.add_argument("hosts", nargs="?", help="hosts file for up/down/status (see workers/hosts.example.yml)")
    p.add_argument("--known-hosts", help="known_hosts file checked and added to (default: $HPOQUEUE_KNOWN_HOSTS "
                                         "or ~/.ssh/known_hosts)")
    p.add_argument("--accept-new-host-keys", action="store_true",
                   help="accept and record host keys not yet known (a changed key is always refused)")
    p.add_argument("--install", action="store_true",
                   help="up: install this machine's hpoqueue into a venv on boxes that lack it")
    p.add_argument("--gpus", help="comma-separated GPU indices (default: every GPU found)")
    p.add_argument("--cap", type=int, default=1, help="trials per GPU (maxTrialNumberPerGpu)")
    p.add_argument("--cpu", type=int, default=0, help="also start a `cpu` worker running this many trials")
    p.add_argument("--broker", help="Redis URL (default: $HPOQUEUE_BROKER_URL)")
    p = add("flower", cmd_flower, "open Flower, Celery's monitor, on 127.0.0.1")
    p.add_argument("--broker", help="Redis URL (default: $HPOQUEUE_BROKER_URL)")
    p.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1 only)")
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--basic-auth", help="user:password required to view it")
    from hpoqueue.dashboard.commands import add_commands

    add_commands(add)
    return parser


def _verbosity_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """-v/--verbose and -q/--quiet, before the command (`default` False) or after it (SUPPRESS: not given
    there, the value given before the command stands)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="also hpoqueue's debug messages, and tracebacks")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="only warnings and errors: no progress bar, no notes")


def _warning_line(message: Warning | str, *_args: Any, **_kwargs: Any) -> str:
    """A library's warning as the CLI shows it: one line, like its errors (not Python's file:line and
    source). hpoqueue's own warnings go through its logger."""
    return f"hpoqueue: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _warning_line
    args = build_parser().parse_args(argv)
    verbosity = log_setup.VERBOSE if args.verbose else log_setup.QUIET if args.quiet else log_setup.NORMAL
    try:
        # SIGTERM (and SIGHUP, until a run outlives its terminal) as Ctrl-C: what `submit` started (Redis,
        # workers, trials) is stopped and recorded, not left running; the scheduler makes the first a clean stop
        with ExitStack() as args.resources, signals_handled(raise_interrupt, signal.SIGTERM, signal.SIGHUP):
            args.resources.enter_context(log_setup.configured(verbosity))
            # the database, logs, parameters and Redis's files are the owner's alone (main() called from
            # Python gives the caller its own umask back)
            args.resources.callback(os.umask, private_umask())
            return int(args.func(args) or 0)
    except HpoQueueError as exc:
        print(f"hpoqueue: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `hpoqueue status EXP | head`: the reader has what it wanted
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:  # before an experiment is recorded, `submit` leaves nothing to resume
        hint = getattr(args, "interrupt_hint", None)
        print(f"hpoqueue: interrupted{'; ' + hint if hint else ''}", file=sys.stderr)
        return 130


def entry() -> NoReturn:
    """The `hpoqueue` command: main(), which closes what it opened, then a quick exit."""
    exit_now(main())


if __name__ == "__main__":
    entry()
