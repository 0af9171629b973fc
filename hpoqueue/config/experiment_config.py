"""Experiment config: NNI v2 YAML (camelCase) plus hpoqueue's own fields; legacy v1 files are converted
with NNI's mapping. Every mistake is a ConfigError naming the file, the dotted field and the fix."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload
from urllib.parse import urlsplit

from hpoqueue.config import nni as config_nni
from hpoqueue.config.durations import format_duration, parse_duration
from hpoqueue.config.yaml_loading import parse_yaml as read_yaml
from hpoqueue.config.yaml_loading import read_document
from hpoqueue.errors import ConfigError
from hpoqueue.results.optimize_mode import MODES, OptimizeMode
from hpoqueue.settings import home_dir
from hpoqueue.space import SearchSpace

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_OPTIMIZE_MODE", "AlgorithmConfig", "ExperimentConfig", "MachineConfig", "TrainingServiceConfig",
    "config_from_dict", "default_working_directory", "load_config", "machine_from_dict", "parse_duration",
    "read_yaml",
]

#: The one default for every tuner and assessor when neither sets ``classArgs.optimize_mode``
#: (NNI's own defaults disagree: TPE minimizes, Evolution/GP/Medianstop maximize).
DEFAULT_OPTIMIZE_MODE: OptimizeMode = "minimize"
#: The tuner used when the config names none (NNI requires one): GP or TPE by space and budget.
DEFAULT_TUNER = "Auto"
#: The largest count a config may give (PostgreSQL's integer column), and the largest trialConcurrency.
MAX_INT = 2**31 - 1
MAX_CONCURRENCY = 10_000
_BROKER_SCHEMES = ("redis", "rediss", "unix")
_STORAGE_SCHEMES = ("sqlite", "postgresql", "postgres")


@dataclass(frozen=True, kw_only=True)
class AlgorithmConfig:
    """A tuner or assessor: a built-in `name`, or a user `class_name` ("module.Class") found in
    `code_directory`; `class_args` go to its constructor (``optimize_mode`` and ``seed`` included)."""

    name: str | None = None
    class_name: str | None = None
    code_directory: Path | None = None
    class_args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MachineConfig:
    """One box of ``trainingService.machineList`` (platform remote)."""

    host: str
    user: str
    port: int = 22
    password: str | None = None
    password_env: str | None = None  #: the environment variable holding the password (hpoqueue's field)
    ssh_key_file: Path | None = None
    ssh_passphrase: str | None = None
    use_active_gpu: bool | None = None
    max_trial_number_per_gpu: int = 1
    gpu_indices: tuple[int, ...] | None = None
    python_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class TrainingServiceConfig:
    """Where trials run: this box (``local``) or the boxes of `machine_list` (``remote``)."""

    platform: Literal["local", "remote"] = "local"
    gpu_indices: tuple[int, ...] | None = None
    max_trial_number_per_gpu: int = 1
    use_active_gpu: bool | None = None
    machine_list: tuple[MachineConfig, ...] = ()


def default_working_directory() -> Path:
    """hpoqueue's home, as an absolute path (NNI's default is ``~/nni-experiments``)."""
    return Path(os.path.abspath(home_dir()))


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """A validated experiment. Paths are absolute, durations in seconds; see docs/config.md."""

    search_space: SearchSpace
    trial_command: str
    source: str | None = field(default=None, compare=False)
    experiment_name: str | None = None
    trial_code_directory: Path = field(default_factory=Path.cwd)
    trial_concurrency: int = 1
    trial_gpu_number: int | None = None
    max_experiment_duration: float | None = None
    max_trial_number: int | None = None
    max_trial_duration: float | None = None
    tuner: AlgorithmConfig = field(default_factory=lambda: AlgorithmConfig(name=DEFAULT_TUNER))
    assessor: AlgorithmConfig | None = None
    training_service: TrainingServiceConfig = field(default_factory=TrainingServiceConfig)
    experiment_working_directory: Path = field(default_factory=default_working_directory)
    broker: str | None = None
    storage: str | None = None
    #: A failed or lost trial is run again up to this many times before it counts as failed.
    max_trial_retries: int = 1
    #: A running trial whose worker sends no heartbeat for this many seconds is LOST.
    heartbeat_timeout: float = 60.0
    metric_name: str = "default"
    metric_pattern: str | None = None
    optimize_mode: OptimizeMode = DEFAULT_OPTIMIZE_MODE
    seed: int | None = None
    #: two or more (metric key, mode) searched at once for their Pareto front; () for one objective
    objectives: tuple[tuple[str, str], ...] = ()
    #: Pack trialCodeDirectory and send it to the workers: None means yes with an external broker, no with
    #: the embedded one (its workers run on this machine); sharedStorage makes it no.
    ship_code: bool | None = None
    shared_storage: dict[str, Any] | None = None  #: NNI's sharedStorage section, as written

    def to_dict(self) -> dict[str, Any]:
        """The v2 camelCase form (search space inline, absolute paths as strings); JSON-able, and
        `config_from_dict` reads it back to an equal config."""
        service = _camel(dataclasses.asdict(self.training_service))
        drop = ("gpuIndices", "maxTrialNumberPerGpu", "useActiveGpu") if service["platform"] == "remote" \
            else ("machineList",)
        service = {k: v for k, v in service.items() if k not in drop}
        return {
            "experimentName": self.experiment_name,
            "searchSpace": self.search_space.raw,
            "trialCommand": self.trial_command,
            "trialCodeDirectory": str(self.trial_code_directory),
            "trialConcurrency": self.trial_concurrency,
            "trialGpuNumber": self.trial_gpu_number,
            "maxExperimentDuration": format_duration(self.max_experiment_duration),
            "maxTrialNumber": self.max_trial_number,
            "maxTrialDuration": format_duration(self.max_trial_duration),
            "experimentWorkingDirectory": str(self.experiment_working_directory),
            "tuner": _camel(dataclasses.asdict(self.tuner)),
            "assessor": _camel(dataclasses.asdict(self.assessor)) if self.assessor else None,
            "trainingService": service,
            "broker": self.broker,
            "storage": self.storage,
            "maxTrialRetries": self.max_trial_retries,
            "heartbeatTimeout": format_duration(self.heartbeat_timeout),
            "metricName": self.metric_name,
            "metricPattern": self.metric_pattern,
            "objectives": [{"metric": m, "mode": d} for m, d in self.objectives] or None,
            "shipCode": self.ship_code,
            "sharedStorage": self.shared_storage,
        }

    def with_overrides(self, **changes: Any) -> ExperimentConfig:
        """A copy with `changes` applied (snake_case field names); not re-validated."""
        return dataclasses.replace(self, **changes)


def _camel(value: Any) -> Any:
    """A dataclasses.asdict() result in the YAML's form: camelCase keys (classArgs kept as they are),
    paths as strings, tuples as lists."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): v if k == "class_args" else _camel(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_camel(v) for v in value]
    return str(value) if isinstance(value, Path) else value


# ---------------------------------------------------------------------------------------------- reading

def load_config(path: str | Path) -> ExperimentConfig:
    """Read an experiment YAML; relative paths in it are relative to its directory."""
    path = Path(os.path.abspath(os.path.expanduser(str(path))))
    text = read_document(path, ConfigError, "config file", "check the path")
    return config_from_dict(read_yaml(text, source=str(path)), source=str(path), base_dir=path.parent)


def config_from_dict(raw: Any, *, source: str | None = None,
                     base_dir: Path | None = None) -> ExperimentConfig:
    """Validate a parsed config (v2, or v1 converted); relative paths resolve against `base_dir` (CWD)."""
    ctx = _Ctx(source, Path(os.path.abspath(os.path.expanduser(str(base_dir or Path.cwd())))))
    if not isinstance(raw, dict):
        what = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(f"the config must be a mapping of fields, but it is {what}", source=source,
                          hint="start with 'trialCommand: ...' and 'searchSpaceFile: ...' at the top level")
    config_nni.refuse_other_platform(raw, source)
    if not _is_v1(raw):
        return _build(config_nni.canonical_config(raw, _SPELLINGS, source), ctx)
    converted = _v1_to_v2(raw, ctx)
    try:
        return _build(converted, ctx)
    except ConfigError as exc:
        raise _renamed(exc) from None


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


class _Ctx:
    """The file being read and its directory, with typed getters that fail naming the field's path."""

    def __init__(self, source: str | None, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def fail(self, problem: str, where: str, hint: str | None = None) -> ConfigError:
        return ConfigError(problem, source=self.source, field=where or None, hint=hint)

    def mapping(self, value: Any, where: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"must be a mapping, not {value!r}", where)
        return value

    def keys(self, raw: dict, allowed: Iterable[str], where: str) -> None:
        allowed = list(allowed)
        for key in raw:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"accepted here: {', '.join(allowed)}"
                raise self.fail(f"unknown field '{key}'", _join(where, str(key)), hint)

    @overload
    def int_(self, value: Any, where: str, *, minimum: int, maximum: int = MAX_INT, example: str) -> int: ...
    @overload
    def int_(self, value: Any, where: str, *, minimum: int, maximum: int = MAX_INT,
             example: None = None) -> int | None: ...
    def int_(self, value: Any, where: str, *, minimum: int, maximum: int = MAX_INT,
             example: str | None = None) -> int | None:
        """An integer in [minimum, maximum], None when unset; `example` makes it required."""
        if value is None:
            if example:
                raise self.fail("is required", where, f"for example {example}")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"must be an integer, not {value!r}", where)
        if value < minimum or value > maximum:
            shown = str(value) if len(str(value)) <= 20 else f"{str(value)[:17]}..."
            bound = f">= {minimum}" if value < minimum and maximum == MAX_INT else \
                f"between {minimum} and {maximum}"
            raise self.fail(f"must be {bound}, got {shown}", where)
        return value

    def bool_(self, value: Any, where: str) -> bool | None:
        if value is not None and not isinstance(value, bool):
            raise self.fail(f"must be true or false, not {value!r}", where)
        return value

    @overload
    def str_(self, value: Any, where: str, *, example: str) -> str: ...
    @overload
    def str_(self, value: Any, where: str, *, example: None = None) -> str | None: ...
    def str_(self, value: Any, where: str, *, example: str | None = None) -> str | None:
        """A non-empty string, None when unset; `example` makes it required."""
        if value is None:
            if example:
                raise self.fail("is required", where, f"for example {example}")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"must be a non-empty string, not {value!r}", where)
        return value

    def path(self, value: Any, where: str, *, kind: Literal["dir", "file"] | None = None) -> Path | None:
        """An absolute path (``~`` expanded, relative to the config's directory) that must exist as `kind`."""
        if value is None:
            return None
        if not isinstance(value, (str, Path)) or not str(value).strip():
            raise self.fail(f"must be a path, not {value!r}", where)
        path = Path(os.path.abspath(self.base_dir / os.path.expanduser(str(value))))
        if kind == "dir" and not path.is_dir():
            raise self.fail(f"directory not found: {path}", where,
                            "relative paths are relative to the config file's directory")
        if kind == "file" and not (path.is_file() and os.access(path, os.R_OK)):
            raise self.fail(f"{'cannot read' if path.is_file() else 'file not found'}: {path}", where,
                            "relative paths are relative to the config file's directory")
        return path

    def duration(self, value: Any, where: str) -> float | None:
        return None if value is None else parse_duration(value, field=where, source=self.source)


_V2_FIELDS = (
    "experimentName", "searchSpaceFile", "searchSpace", "trialCommand", "trialCodeDirectory",
    "trialConcurrency", "trialGpuNumber", "maxExperimentDuration", "maxTrialNumber", "maxTrialDuration",
    "experimentWorkingDirectory", "tuner", "assessor", "advisor", "trainingService", "useAnnotation",
    "sharedStorage",
)
_OURS = ("broker", "storage", "maxTrialRetries", "heartbeatTimeout", "metricName", "metricPattern", "objectives",
         "shipCode")
#: NNI fields accepted for compatibility and ignored (a warning says so when they are set).
_IGNORED = ("nniManagerIp", "debug", "logLevel", "tunerGpuIndices", "experimentType")
_ALGORITHM_FIELDS = ("name", "className", "codeDirectory", "classArgs")
_SERVICE_FIELDS = ("platform", "useActiveGpu", "maxTrialNumberPerGpu", "gpuIndices", "reuseMode", "machineList")


def _build(raw: dict, ctx: _Ctx) -> ExperimentConfig:
    ctx.keys(raw, (*_V2_FIELDS, *_OURS, *_IGNORED), "")
    for key in _IGNORED:
        if raw.get(key) not in (None, False, "hpo"):
            log.warning("%s: %s is ignored by hpoqueue", ctx.source or "config", key)
    if ctx.bool_(raw.get("useAnnotation"), "useAnnotation"):
        raise ctx.fail("annotation mode is not supported", "useAnnotation",
                       "remove useAnnotation and give searchSpaceFile; trials call nni.get_next_parameter()")
    gpus = ctx.int_(raw.get("trialGpuNumber"), "trialGpuNumber", minimum=0)
    tuner, assessor = _algorithms(raw, ctx)
    objectives = _objectives(raw.get("objectives"), tuner, ctx)
    if objectives:  # the multi-objective tuner learns them through its classArgs
        tuner = dataclasses.replace(tuner, class_args={**tuner.class_args, "objectives": [
            {"metric": m, "mode": d} for m, d in objectives]})
    seed = ctx.int_(tuner.class_args.get("seed"), "tuner.classArgs.seed", minimum=0, maximum=2**32 - 1)
    return ExperimentConfig(
        source=ctx.source,
        experiment_name=ctx.str_(raw.get("experimentName"), "experimentName"),
        search_space=_search_space(raw, ctx),
        trial_command=ctx.str_(raw.get("trialCommand"), "trialCommand",
                               example="'trialCommand: python train.py'"),
        # never None (the value is not): the same ignore as for searchSpaceFile below
        trial_code_directory=ctx.path(raw.get("trialCodeDirectory") or ".", "trialCodeDirectory",  # type: ignore[arg-type]
                                      kind="dir"),
        trial_concurrency=ctx.int_(raw.get("trialConcurrency"), "trialConcurrency", minimum=1,
                                   maximum=MAX_CONCURRENCY, example="'trialConcurrency: 2'"),
        trial_gpu_number=gpus,
        max_experiment_duration=ctx.duration(raw.get("maxExperimentDuration"), "maxExperimentDuration"),
        max_trial_number=ctx.int_(raw.get("maxTrialNumber"), "maxTrialNumber", minimum=1),
        max_trial_duration=ctx.duration(raw.get("maxTrialDuration"), "maxTrialDuration"),
        tuner=tuner,
        assessor=assessor,
        training_service=_training_service(raw.get("trainingService"), gpus, ctx),
        experiment_working_directory=_default(
            ctx.path(raw.get("experimentWorkingDirectory"), "experimentWorkingDirectory"),
            default_working_directory()),
        broker=_url(raw.get("broker"), "broker", _BROKER_SCHEMES, ctx),
        storage=_storage_url(raw.get("storage"), ctx),
        max_trial_retries=_default(ctx.int_(raw.get("maxTrialRetries"), "maxTrialRetries", minimum=0), 1),
        heartbeat_timeout=_default(ctx.duration(raw.get("heartbeatTimeout"), "heartbeatTimeout"), 60.0),
        metric_name=_metric_name(raw.get("metricName"), ctx),
        metric_pattern=_metric_pattern(raw.get("metricPattern"), ctx),
        optimize_mode=_optimize_mode(tuner, assessor, ctx),
        seed=seed,
        objectives=objectives,
        shared_storage=_shared_storage(raw.get("sharedStorage"), ctx),
        ship_code=_ship_code(raw, ctx),
    )


def _objectives(value: Any, tuner: AlgorithmConfig, ctx: _Ctx) -> tuple[tuple[str, str], ...]:
    """Two or more {metric, mode} to search at once; only a tuner that searches for a Pareto front may
    have them."""
    if value is None:
        return ()
    example = "objectives: [{metric: accuracy, mode: maximize}, {metric: latency, mode: minimize}]"
    if not isinstance(value, list) or len(value) < 2:
        raise ctx.fail("must be a list of two or more objectives", "objectives", f"for example {example}")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(value):
        where = f"objectives[{i}]"
        raw = ctx.mapping(item, where)
        ctx.keys(raw, ("metric", "mode"), where)
        metric = ctx.str_(raw.get("metric"), f"{where}.metric", example="metric: accuracy")
        mode = raw.get("mode")
        if mode not in MODES:
            raise ctx.fail(f"must be 'minimize' or 'maximize', not {mode!r}", f"{where}.mode")
        if metric in (m for m, _ in out):
            raise ctx.fail(f"metric {metric!r} is named twice", f"{where}.metric")
        out.append((metric, mode))
    from hpoqueue.tuners import TUNERS

    if tuner.class_name or not getattr(TUNERS.resolve(tuner.name or "", source=ctx.source), "multi_objective", False):
        raise ctx.fail(f"tuner {tuner.name or tuner.class_name} searches for one objective", "objectives",
                       "use tuner: {name: NSGA2}, which searches for the Pareto front, or give one metric")
    return tuple(out)


def _shared_storage(value: Any, ctx: _Ctx) -> dict[str, Any] | None:
    """NNI's sharedStorage (NFS, AzureBlob): the boxes see the code where it is, so it is not shipped."""
    if value is None:
        return None
    section = ctx.mapping(value, "sharedStorage")
    kind = section.get("storageType")
    if kind not in ("NFS", "AzureBlob"):
        raise ctx.fail(f"storageType must be NFS or AzureBlob, not {kind!r}", "sharedStorage.storageType",
                       "or remove sharedStorage and let hpoqueue ship the code (see shipCode in docs/config.md)")
    for key in ("localMountPoint", "remoteMountPoint"):
        ctx.str_(section.get(key), f"sharedStorage.{key}")
    return dict(section)


def _ship_code(raw: dict, ctx: _Ctx) -> bool | None:
    ship = ctx.bool_(raw.get("shipCode"), "shipCode")
    return False if ship is None and raw.get("sharedStorage") is not None else ship


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _search_space(raw: dict, ctx: _Ctx) -> SearchSpace:
    inline, file = raw.get("searchSpace"), raw.get("searchSpaceFile")
    if inline is not None and file is not None:
        raise ctx.fail("both searchSpace and searchSpaceFile are set", "searchSpace",
                       "keep only one of them")
    if file is not None:
        return SearchSpace.from_file(ctx.path(file, "searchSpaceFile", kind="file"))  # type: ignore[arg-type]
    if inline is None:
        raise ctx.fail("the search space is missing", "searchSpaceFile",
                       "set searchSpaceFile: search_space.json, or an inline searchSpace ({} if empty)")
    return SearchSpace.from_dict(inline, source=ctx.source)


def _algorithms(raw: dict, ctx: _Ctx) -> tuple[AlgorithmConfig, AlgorithmConfig | None]:
    """The tuner (`advisor` is NNI's deprecated spelling of it) and the assessor."""
    if raw.get("tuner") is not None and raw.get("advisor") is not None:
        raise ctx.fail("both tuner and advisor are set", "advisor",
                       "advisor is the deprecated name of tuner: keep only tuner")
    key = "advisor" if raw.get("advisor") is not None else "tuner"
    tuner = AlgorithmConfig(name=DEFAULT_TUNER) if raw.get(key) is None else _algorithm(raw[key], key, ctx)
    assessor = _algorithm(raw["assessor"], "assessor", ctx) if raw.get("assessor") is not None else None
    return tuner, assessor


def _algorithm(value: Any, where: str, ctx: _Ctx) -> AlgorithmConfig:
    if isinstance(value, str):
        raise ctx.fail(f"must be a mapping, not {value!r}", where, f"write {where}: {{name: {value}}}")
    raw = ctx.mapping(value, where)
    ctx.keys(raw, _ALGORITHM_FIELDS, where)
    name = ctx.str_(raw.get("name"), f"{where}.name")
    if name and where != "assessor":
        config_nni.refuse_unsupported_tuner(name, where, ctx.source)
    class_name = ctx.str_(raw.get("className"), f"{where}.className")
    if name and class_name:
        raise ctx.fail("both name and className are set", where, "name: a built-in; className: your class")
    if not (name or class_name):
        raise ctx.fail("needs a name or a className", where, f"for example {where}: {{name: TPE}}")
    if class_name and not re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", class_name):
        raise ctx.fail(f"{class_name!r} is not of the form module.ClassName", f"{where}.className",
                       "for example my_tuner.MyTuner")
    args = ctx.mapping(raw.get("classArgs"), f"{where}.classArgs")
    for key in args:
        if not isinstance(key, str):
            raise ctx.fail(f"argument names must be strings, not {key!r}", f"{where}.classArgs")
    code = ctx.path(raw.get("codeDirectory"), f"{where}.codeDirectory", kind="dir")
    return AlgorithmConfig(name=name, class_name=class_name, code_directory=code, class_args=dict(args))


def _optimize_mode(tuner: AlgorithmConfig, assessor: AlgorithmConfig | None, ctx: _Ctx) -> OptimizeMode:
    """The tuner's classArgs.optimize_mode, else the assessor's, else DEFAULT_OPTIMIZE_MODE (must agree)."""
    modes: dict[str, OptimizeMode] = {}
    for where, algo in (("tuner", tuner), ("assessor", assessor)):
        mode = algo.class_args.get("optimize_mode") if algo else None
        if mode is None:
            continue
        if mode not in MODES:
            raise ctx.fail(f"must be 'minimize' or 'maximize', not {mode!r}",
                           f"{where}.classArgs.optimize_mode")
        modes[where] = mode
    if len(set(modes.values())) > 1:
        raise ctx.fail(f"the tuner's optimize_mode is {modes['tuner']} but the assessor's is "
                       f"{modes['assessor']}", "assessor.classArgs.optimize_mode", "make them agree")
    return next(iter(modes.values()), DEFAULT_OPTIMIZE_MODE)


def _training_service(value: Any, gpus: int | None, ctx: _Ctx) -> TrainingServiceConfig:
    where = "trainingService"
    if isinstance(value, list):
        raise ctx.fail("a list of training services (hybrid mode) is not supported", where,
                       "give one mapping with platform local or remote")
    raw = ctx.mapping(value, where)
    platform = raw.get("platform") or "local"
    if platform not in ("local", "remote"):
        raise ctx.fail(f"platform {platform!r} is not supported", f"{where}.platform",
                       "hpoqueue runs trials on this box (local) or on your own boxes over ssh (remote)")
    if platform == "remote":
        ctx.keys(raw, ("platform", "machineList", "reuseMode"), where)
        machines = raw.get("machineList")
        if not isinstance(machines, list) or not machines:
            raise ctx.fail("platform remote needs a non-empty list of machines", f"{where}.machineList",
                           "for example machineList: [{host: 10.0.0.2, user: alice}]")
        return TrainingServiceConfig(platform="remote", machine_list=tuple(
            _machine(m, f"{where}.machineList[{i}]", gpus, ctx) for i, m in enumerate(machines)))
    ctx.keys(raw, ("platform", "useActiveGpu", "maxTrialNumberPerGpu", "gpuIndices", "reuseMode"), where)
    active = ctx.bool_(raw.get("useActiveGpu"), f"{where}.useActiveGpu")
    return TrainingServiceConfig(
        platform="local",
        gpu_indices=_gpu_indices(raw.get("gpuIndices"), f"{where}.gpuIndices", ctx),
        max_trial_number_per_gpu=_per_gpu(raw, where, gpus, ctx),
        # NNI refuses trialGpuNumber > 0 with useActiveGpu unset; we take False (skip busy GPUs) instead.
        use_active_gpu=False if active is None and gpus else active,
    )


def _per_gpu(raw: dict, where: str, gpus: int | None, ctx: _Ctx) -> int:
    per_gpu = ctx.int_(raw.get("maxTrialNumberPerGpu"), f"{where}.maxTrialNumberPerGpu", minimum=1) or 1
    if per_gpu != 1 and not gpus:
        raise ctx.fail("maxTrialNumberPerGpu only works with trialGpuNumber", f"{where}.maxTrialNumberPerGpu",
                       "set trialGpuNumber: 1 (or more), or remove maxTrialNumberPerGpu")
    return per_gpu


_MACHINE_FIELDS = ("host", "port", "user", "password", "passwordEnv", "sshKeyFile", "sshPassphrase", "useActiveGpu",
                   "maxTrialNumberPerGpu", "gpuIndices", "pythonPath")
#: NNI matches field names ignoring case and underscores (search_space is searchSpace): the fields of
#: each section, for config_nni.canonical_config
_SPELLINGS = {"": (*_V2_FIELDS, *_OURS, *_IGNORED), **dict.fromkeys(("tuner", "assessor", "advisor"),
                                                                    _ALGORITHM_FIELDS),
              "trainingService": _SERVICE_FIELDS, "trainingService.machineList": _MACHINE_FIELDS}


def _machine(value: Any, where: str, gpus: int | None, ctx: _Ctx) -> MachineConfig:
    raw = ctx.mapping(value, where)
    ctx.keys(raw, _MACHINE_FIELDS, where)
    return MachineConfig(
        host=ctx.str_(raw.get("host"), f"{where}.host", example="host: 10.0.0.2"),
        user=ctx.str_(raw.get("user"), f"{where}.user", example="user: alice"),
        port=_default(ctx.int_(raw.get("port"), f"{where}.port", minimum=1, maximum=65535), 22),
        password=ctx.str_(raw.get("password"), f"{where}.password"),
        password_env=ctx.str_(raw.get("passwordEnv"), f"{where}.passwordEnv"),
        ssh_key_file=ctx.path(raw.get("sshKeyFile"), f"{where}.sshKeyFile", kind="file"),
        ssh_passphrase=ctx.str_(raw.get("sshPassphrase"), f"{where}.sshPassphrase"),
        use_active_gpu=bool(ctx.bool_(raw.get("useActiveGpu"), f"{where}.useActiveGpu")),
        max_trial_number_per_gpu=_per_gpu(raw, where, gpus, ctx),
        gpu_indices=_gpu_indices(raw.get("gpuIndices"), f"{where}.gpuIndices", ctx),
        python_path=ctx.str_(raw.get("pythonPath"), f"{where}.pythonPath"),
    )


def machine_from_dict(raw: Any, where: str, *, source: str | None, base_dir: Path) -> MachineConfig:
    """One machine entry outside an experiment (a hosts file of `hpoqueue workers up`), checked as in
    machineList; maxTrialNumberPerGpu is allowed there without a trialGpuNumber."""
    return _machine(raw, where, 1, _Ctx(source, base_dir))


def _gpu_indices(value: Any, where: str, ctx: _Ctx) -> tuple[int, ...] | None:
    """NNI accepts a list of ints, one int, or a string "0,3"."""
    if value is None:
        return None
    hint = "give GPU indices as a list [0, 3], a string \"0,3\" or one integer"
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        bad = next((p for p in parts if not p.isdigit()), None)
        if bad is not None:
            raise ctx.fail(f"{bad!r} in {value!r} is not a GPU index", where, hint)
        items: list[int | None] = [int(p) for p in parts]
    elif isinstance(value, list):
        if not value:
            raise ctx.fail("is an empty list", where, hint + ", or remove it to use every GPU")
        items = [ctx.int_(v, f"{where}[{i}]", minimum=0) for i, v in enumerate(value)]
        bad_at = next((i for i, v in enumerate(items) if v is None), None)
        if bad_at is not None:
            raise ctx.fail("must be an integer, not None", f"{where}[{bad_at}]", hint)
    else:
        items = [ctx.int_(value, where, minimum=0)]
    if len(set(items)) != len(items):
        raise ctx.fail(f"{value!r} lists a GPU twice", where, hint)
    return tuple(i for i in items if i is not None)


def _url(value: Any, where: str, schemes: tuple[str, ...], ctx: _Ctx) -> str | None:
    text = ctx.str_(value, where)
    if text is None:
        return None
    scheme = urlsplit(text).scheme.split("+")[0].lower()
    if scheme not in schemes:
        examples = {"broker": "redis://HOST:6379/0, rediss://... or unix:///path/redis.sock",
                    "storage": "sqlite:///path/hpoqueue.db or postgresql://USER:PASSWORD@HOST:5432/DB"}
        raise ctx.fail(f"{text!r} is not a {' / '.join(s + '://' for s in schemes)} URL", where,
                       f"for example {examples[where]}")
    return text


def _storage_url(value: Any, ctx: _Ctx) -> str | None:
    """The storage URL; a relative SQLite file is made absolute against the config's directory."""
    url = _url(value, "storage", _STORAGE_SCHEMES, ctx)
    match = re.fullmatch(r"(sqlite(?:\+\w+)?):///([^?]+)(\?.*)?", url or "")
    if match and match[2] != ":memory:" and not match[2].startswith("/"):
        return f"{match[1]}:///{os.path.abspath(ctx.base_dir / os.path.expanduser(match[2]))}{match[3] or ''}"
    return url


def _metric_name(value: Any, ctx: _Ctx) -> str:
    name = ctx.str_(value, "metricName")
    if name is not None and not re.fullmatch(r"[^\s=]+", name):
        raise ctx.fail(f"{name!r} may not contain spaces or '='", "metricName",
                       "trials print lines like 'accuracy=0.93' for metricName: accuracy")
    return name or "default"


def _metric_pattern(value: Any, ctx: _Ctx) -> str | None:
    text = ctx.str_(value, "metricPattern")
    if text is None:
        return None
    hint = r"for example 'val_acc: (?P<value>[-+.0-9eE]+)'"
    try:
        compiled = re.compile(text)
    except re.error as exc:
        raise ctx.fail(f"{text!r} is not a valid regular expression: {exc}", "metricPattern", hint) from None
    if "value" not in compiled.groupindex:
        raise ctx.fail(f"{text!r} has no group named 'value'", "metricPattern", hint)
    return text


# ------------------------------------------------------------------------------ legacy v1 (NNI convert.py)

#: v1 top-level fields copied under their v2 name (None: dropped, as NNI drops them).
_V1_TOP: dict[str, str | None] = {
    "authorName": None, "description": None, "multiThread": None, "versionCheck": None,
    "logCollection": None, "maxExecDuration": "maxExperimentDuration", "maxTrialNum": "maxTrialNumber",
    "searchSpacePath": "searchSpaceFile", "logDir": "experimentWorkingDirectory",
    **{k: k for k in ("experimentName", "trialConcurrency", "maxTrialDuration", "useAnnotation",
                      "nniManagerIp", "debug", "logLevel", "sharedStorage")},
}
_V1_TRIAL = {"command": "trialCommand", "codeDir": "trialCodeDirectory", "gpuNum": "trialGpuNumber"}
_V1_LOCAL = {"gpuIndices": "gpuIndices", "maxTrialNumPerGpu": "maxTrialNumberPerGpu",
             "useActiveGpu": "useActiveGpu"}
_V1_MACHINE = {"ip": "host", "username": "user", "passwd": "password", "sshKeyPath": "sshKeyFile",
               "passphrase": "sshPassphrase", **_V1_LOCAL, "port": "port", "pythonPath": "pythonPath"}
_V1_BUILTIN = {"tuner": "builtinTunerName", "assessor": "builtinAssessorName",
               "advisor": "builtinAdvisorName"}
_V1_SPECIAL = ("trainingServicePlatform", "multiPhase", "trial", "localConfig", "machineList", "remoteConfig",
               "tuner", "assessor", "advisor")
#: v2 field -> the v1 field it came from, so that errors name what the user wrote.
_V1_RENAMES: dict[str, str] = {
    **{v2: v1 for v1, v2 in _V1_TOP.items() if v2}, **{v2: f"trial.{v1}" for v1, v2 in _V1_TRIAL.items()},
    **{f"trainingService.{v2}": f"localConfig.{v1}" for v1, v2 in _V1_LOCAL.items()},
    "trainingService.platform": "trainingServicePlatform", "trainingService.machineList": "machineList",
    **{f"{k}.name": f"{k}.{b}" for k, b in _V1_BUILTIN.items()},
    **{f"{k}.codeDirectory": f"{k}.codeDir" for k in _V1_BUILTIN},
}


def _is_v1(raw: dict) -> bool:
    """A v1 file has a v1-only top-level field, a `trial` section, or a builtin*Name in an algorithm."""
    if any(k in raw for k in ("authorName", "trainingServicePlatform", "maxExecDuration", "maxTrialNum",
                              "searchSpacePath", "localConfig")) or isinstance(raw.get("trial"), dict):
        return True
    return any(isinstance(raw.get(k), dict) and b in raw[k] for k, b in _V1_BUILTIN.items())


def _v1_to_v2(raw: dict, ctx: _Ctx) -> dict[str, Any]:
    """NNI's v1 -> v2 mapping (nni/experiment/config/convert.py); the result is validated as v2."""
    mixed = next((k for k in raw if k in _V2_FIELDS and k not in _V1_TOP and k not in _V1_SPECIAL), None)
    if mixed is not None:
        raise ctx.fail(f"v2 field '{mixed}' in a file in NNI's v1 format", mixed,
                       "write every field the v1 way, or convert the whole file to v2: see docs/config.md")
    ctx.keys(raw, (*_V1_TOP, *_V1_SPECIAL, *_OURS), "")
    out: dict[str, Any] = {v2: raw[v1] for v1, v2 in _V1_TOP.items() if v2 and v1 in raw}
    out.update({k: raw[k] for k in _OURS if k in raw})
    if ctx.bool_(raw.get("multiPhase"), "multiPhase"):
        raise ctx.fail("multi-phase trials are not supported (NNI v2 dropped them too)", "multiPhase",
                       "remove multiPhase and request parameters once per trial")
    out.update(_v1_section(raw, "trial", _V1_TRIAL, ctx))
    platform = raw.get("trainingServicePlatform") or "local"
    service: dict[str, Any] = {"platform": "openpai" if platform == "pai" else platform}
    service.update(_v1_section(raw, "localConfig", _V1_LOCAL, ctx))
    if raw.get("machineList") is not None:
        if not isinstance(raw["machineList"], list):
            raise ctx.fail(f"must be a list of machines, not {raw['machineList']!r}", "machineList")
        service["machineList"] = [_v1_section({"m": m}, "m", _V1_MACHINE, ctx, f"machineList[{i}]")
                                  for i, m in enumerate(raw["machineList"])]
    _v1_section(raw, "remoteConfig", {"reuse": "reuseMode"}, ctx)  # reuse mode means nothing here
    out["trainingService"] = service
    for key, builtin in _V1_BUILTIN.items():
        if raw.get(key) is not None:
            out[key] = _v1_algorithm(raw[key], key, builtin, ctx)
    return out


def _v1_section(raw: dict, key: str, names: dict[str, str], ctx: _Ctx, where: str | None = None) -> dict:
    """Section `raw[key]` with its fields renamed by `names` (v1 -> v2); unknown fields are errors."""
    section = ctx.mapping(raw.get(key), where or key)
    ctx.keys(section, names, where or key)
    return {names[k]: v for k, v in section.items()}


def _v1_algorithm(value: Any, where: str, builtin: str, ctx: _Ctx) -> dict[str, Any]:
    """builtin*Name -> name; codeDir + classFileName (x.py) + className -> codeDirectory + "x.ClassName"."""
    raw = ctx.mapping(value, where)
    ctx.keys(raw, (builtin, "className", "classFileName", "codeDir", "classArgs",
                   "includeIntermediateResults", "gpuIndices", "gpuNum"), where)
    out = {"name": raw.get(builtin), "codeDirectory": raw.get("codeDir"), "classArgs": raw.get("classArgs")}
    class_name, file_name = raw.get("className"), raw.get("classFileName")
    if file_name is not None and not (isinstance(file_name, str) and file_name.endswith(".py")):
        raise ctx.fail(f"must be a Python file name like my_tuner.py, not {file_name!r}",
                       f"{where}.classFileName")
    if class_name is not None:
        out["className"] = f"{Path(file_name).stem}.{class_name}" if file_name else class_name
    return {k: v for k, v in out.items() if v is not None}


def _renamed(exc: ConfigError) -> ConfigError:
    """`exc` with its v2 field path turned back into the v1 path the user wrote."""
    path = exc.field or ""
    for new in sorted(_V1_RENAMES, key=len, reverse=True):
        if path == new or path.startswith((new + ".", new + "[")):
            path = _V1_RENAMES[new] + path[len(new):]
            break
    inverse = {v2: v1 for v1, v2 in _V1_MACHINE.items()}
    path = re.sub(r"^(machineList\[\d+\])\.(\w+)", lambda m: f"{m[1]}.{inverse.get(m[2], m[2])}", path)
    if path == (exc.field or ""):
        return exc
    return type(exc)(exc.problem, source=exc.source, field=path, hint=exc.hint)
