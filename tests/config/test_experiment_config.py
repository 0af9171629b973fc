"""Experiment configs: NNI v2 and v1 files load with NNI's meaning, and every mistake names its field."""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.config.experiment_config import (
    DEFAULT_OPTIMIZE_MODE,
    AlgorithmConfig,
    ExperimentConfig,
    config_from_dict,
    load_config,
    parse_duration,
)
from hpoqueue.errors import ConfigError, SearchSpaceError
from hpoqueue.space import SearchSpace

DATA = Path(__file__).parent.parent / "data" / "config"
SPACE = json.loads((DATA / "search_space.json").read_text())
BASE: dict[str, Any] = {"searchSpaceFile": "search_space.json", "trialCommand": "python train.py",
                        "trialConcurrency": 2}


def load(raw: dict) -> ExperimentConfig:
    return config_from_dict(raw, source="exp.yml", base_dir=DATA)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HPOQUEUE_HOME", raising=False)
    return home


def test_v1_example_loads_unchanged() -> None:
    cfg = load_config(DATA / "v1_example.yml")
    assert cfg.source == str(DATA / "v1_example.yml")
    assert cfg.experiment_name == "demo"
    assert cfg.trial_concurrency == 5
    assert cfg.max_experiment_duration == 86400
    assert cfg.max_trial_number == 10
    assert cfg.search_space == SearchSpace.from_dict(SPACE)
    assert cfg.tuner == AlgorithmConfig(name="TPE")
    assert cfg.trial_command == "python3 run_demo.py"
    assert cfg.trial_code_directory == DATA
    assert cfg.trial_gpu_number == 1
    ts = cfg.training_service
    assert (ts.platform, ts.gpu_indices, ts.max_trial_number_per_gpu, ts.use_active_gpu) == \
        ("local", (0, 3), 2, False)
    assert cfg.optimize_mode == DEFAULT_OPTIMIZE_MODE == "minimize"


def test_v2_file_with_every_field(_home: Path) -> None:
    cfg = load_config(DATA / "v2_full.yml")
    assert cfg.experiment_name == "full"
    assert cfg.search_space.names() == ["batch_size", "hidden_size", "lr", "momentum"]
    assert cfg.trial_command == "python train.py --epochs 3"
    assert cfg.trial_code_directory == DATA / "trial_code"
    assert (cfg.trial_concurrency, cfg.trial_gpu_number, cfg.max_trial_number) == (3, 2, 40)
    assert (cfg.max_experiment_duration, cfg.max_trial_duration) == (5400, 600)
    assert cfg.experiment_working_directory == _home / "hpo-runs"
    assert cfg.tuner == AlgorithmConfig(name="TPE", class_args={"optimize_mode": "maximize", "seed": 7})
    assert cfg.assessor == AlgorithmConfig(name="Medianstop",
                                           class_args={"optimize_mode": "maximize", "start_step": 3})
    assert (cfg.optimize_mode, cfg.seed) == ("maximize", 7)
    ts = cfg.training_service
    assert (ts.gpu_indices, ts.max_trial_number_per_gpu, ts.use_active_gpu) == ((0, 1, 3), 2, True)
    assert cfg.broker == "redis://127.0.0.1:6379/0"
    assert cfg.storage == f"sqlite:///{DATA / 'runs' / 'hpo.db'}"
    assert (cfg.max_trial_retries, cfg.heartbeat_timeout) == (3, 30)
    assert (cfg.metric_name, cfg.metric_pattern) == ("accuracy", "val_acc: (?P<value>[-+.0-9eE]+)")


def test_v2_remote_file_with_inline_space_and_advisor() -> None:
    cfg = load_config(DATA / "v2_remote.yml")
    assert cfg.search_space.dims[0].low == 1e-4  # YAML 1e-4 is a number, as in JSON
    assert cfg.tuner == AlgorithmConfig(class_name="my_tuner.MyTuner", code_directory=DATA / "trial_code")
    a, b = cfg.training_service.machine_list
    assert (a.host, a.user, a.port, a.password, a.gpu_indices, a.use_active_gpu) == \
        ("10.0.0.2", "alice", 22, "secret", (0, 1), False)
    assert (b.host, b.port, b.ssh_key_file, b.max_trial_number_per_gpu, b.python_path) == \
        ("gpu-box.example", 2222, DATA / "ssh_key.placeholder", 2, "/home/bob/.venv/bin")
    assert cfg.storage == "postgresql://hpo:pw@db.example:5432/hpo"


def test_defaults(_home: Path) -> None:
    cfg = load(BASE)
    assert cfg.tuner == AlgorithmConfig(name="Auto") and cfg.assessor is None
    assert cfg.trial_code_directory == DATA
    assert cfg.training_service.platform == "local" and cfg.training_service.gpu_indices is None
    assert cfg.trial_gpu_number is None and cfg.training_service.use_active_gpu is None
    assert (cfg.max_experiment_duration, cfg.max_trial_number, cfg.max_trial_duration) == (None, None, None)
    assert (cfg.broker, cfg.storage, cfg.max_trial_retries, cfg.heartbeat_timeout) == (None, None, 1, 60)
    assert (cfg.metric_name, cfg.metric_pattern, cfg.seed) == ("default", None, None)
    assert cfg.experiment_working_directory == _home / "hpoqueue-experiments"


def test_hpoqueue_home_sets_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_HOME", str(tmp_path / "exps"))
    assert load(BASE).experiment_working_directory == tmp_path / "exps"


def test_relative_paths_follow_the_yaml_not_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "proj" / "code").mkdir(parents=True)
    (tmp_path / "proj" / "space.json").write_text(json.dumps(SPACE))
    (tmp_path / "proj" / "exp.yml").write_text(
        "searchSpaceFile: space.json\ntrialCommand: python t.py\ntrialConcurrency: 1\n"
        "trialCodeDirectory: code\nexperimentWorkingDirectory: runs\nstorage: sqlite:///db/h.db\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(Path("..") / "proj" / "exp.yml")
    assert cfg.trial_code_directory == tmp_path / "proj" / "code"
    assert cfg.experiment_working_directory == tmp_path / "proj" / "runs"
    assert cfg.storage == f"sqlite:///{tmp_path / 'proj' / 'db' / 'h.db'}"
    assert cfg.source == str(tmp_path / "proj" / "exp.yml")


def test_loading_writes_nothing_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_HOME", str(tmp_path / "not-created"))
    before = files_under(DATA) | files_under(tmp_path)
    for name in ("v1_example.yml", "v2_full.yml", "v2_remote.yml"):
        load_config(DATA / name)
    assert files_under(DATA) | files_under(tmp_path) == before
    assert not (tmp_path / "not-created").exists()


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("10m", 600), ("1.5h", 5400), ("2d", 172800), ("0.5h", 1800), (".5m", 30), ("90", 90),
    (" 10 m ", 600), ("1e3s", 1000), (45, 45), (2.5, 2.5),
])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10 minutes", "-5m", "abc", "", "5x", "0s", 0, -3, True, "1h30m", None])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(text, field="maxTrialDuration", source="exp.yml")
    assert info.value.field == "maxTrialDuration" and str(info.value).startswith("exp.yml: maxTrialDuration:")


@pytest.mark.parametrize("name", ["v1_example.yml", "v2_full.yml", "v2_remote.yml"])
def test_to_dict_round_trips(name: str) -> None:
    cfg = load_config(DATA / name)
    data = cfg.to_dict()
    assert json.loads(json.dumps(data)) == data
    again = config_from_dict(data)
    assert again == cfg
    assert again.to_dict() == data
    assert config_from_dict(json.loads(json.dumps(data)), source="stored") == cfg


def test_with_overrides_replaces_fields() -> None:
    cfg = load(BASE)
    other = cfg.with_overrides(trial_concurrency=9, broker="redis://h:1/0")
    assert (other.trial_concurrency, other.broker, cfg.trial_concurrency) == (9, "redis://h:1/0", 2)


@pytest.mark.parametrize(("tuner", "assessor", "mode"), [
    (None, None, "minimize"),
    ({"name": "TPE", "classArgs": {"optimize_mode": "maximize"}}, None, "maximize"),
    ({"name": "TPE"}, {"name": "Medianstop", "classArgs": {"optimize_mode": "maximize"}}, "maximize"),
    ({"name": "TPE", "classArgs": {"optimize_mode": "minimize"}}, {"name": "Medianstop"}, "minimize"),
])
def test_optimize_mode_resolution(tuner: dict | None, assessor: dict | None, mode: str) -> None:
    cfg = load({**BASE, "tuner": tuner, "assessor": assessor})
    assert cfg.optimize_mode == mode
    if tuner and "classArgs" in tuner:  # kept for the tuner's constructor too
        assert cfg.tuner.class_args == tuner["classArgs"]


def test_gpu_trials_default_to_skipping_active_gpus() -> None:
    assert load({**BASE, "trialGpuNumber": 1}).training_service.use_active_gpu is False
    assert load({**BASE, "trialGpuNumber": 0}).training_service.use_active_gpu is None


def test_ignored_nni_fields_are_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hpoqueue"):
        cfg = load({**BASE, "nniManagerIp": "10.0.0.1", "debug": False, "logLevel": None,
                    "useAnnotation": False, "experimentType": "hpo",
                    "trainingService": {"platform": "local", "reuseMode": True}})
        assert cfg.trial_concurrency == 2
        assert [r.getMessage() for r in caplog.records] == ["exp.yml: nniManagerIp is ignored by hpoqueue"]
        caplog.clear()
        load({**BASE, "useAnnotation": False, "debug": False})
    assert caplog.records == []


def test_v1_class_file_becomes_class_name(tmp_path: Path) -> None:
    v1 = {"authorName": "a", "experimentName": "e", "trialConcurrency": 1,
          "searchSpacePath": "search_space.json", "useAnnotation": False, "trainingServicePlatform": "local",
          "trial": {"command": "python t.py", "codeDir": "."},
          "tuner": {"codeDir": "trial_code", "classFileName": "my_tuner.py", "className": "MyTuner",
                    "classArgs": {"optimize_mode": "maximize"}},
          "assessor": {"builtinAssessorName": "Curvefitting", "classArgs": {"epoch_num": 20}}}
    cfg = load(v1)
    assert cfg.tuner == AlgorithmConfig(class_name="my_tuner.MyTuner", code_directory=DATA / "trial_code",
                                        class_args={"optimize_mode": "maximize"})
    assert cfg.assessor == AlgorithmConfig(name="Curvefitting", class_args={"epoch_num": 20})
    assert cfg.optimize_mode == "maximize"


def test_v1_remote_machines_are_converted() -> None:
    v1 = {"trialConcurrency": 1, "searchSpacePath": "search_space.json", "trainingServicePlatform": "remote",
          "trial": {"command": "python t.py"}, "remoteConfig": {"reuse": False},
          "machineList": [{"ip": "10.1.1.1", "port": 22, "username": "u", "passwd": "p", "gpuIndices": 1},
                          {"ip": "10.1.1.2", "username": "v", "sshKeyPath": "ssh_key.placeholder",
                           "passphrase": "pp"}]}
    a, b = load(v1).training_service.machine_list
    assert (a.host, a.user, a.password, a.gpu_indices) == ("10.1.1.1", "u", "p", (1,))
    assert (b.host, b.user, b.ssh_passphrase) == ("10.1.1.2", "v", "pp")
    assert b.ssh_key_file == DATA / "ssh_key.placeholder"


def with_(path: str, value: Any, base: dict | None = None) -> dict:
    """A copy of `base` (BASE by default) with the dotted `path` set to `value` (REMOVE deletes it)."""
    raw = copy.deepcopy(BASE if base is None else base)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    if value is REMOVE:
        node.pop(last, None)
    else:
        node[last] = value
    return raw


REMOVE = object()
REMOTE = {**BASE, "trainingService": {"platform": "remote", "machineList": [{"host": "h", "user": "u"}]}}
V1 = {"authorName": "a", "trialConcurrency": 1, "searchSpacePath": "search_space.json",
      "trainingServicePlatform": "local", "trial": {"command": "python t.py", "codeDir": "."}}

BAD: list[tuple[str, dict, str, str]] = [
    # (id, config, field, text in the message)
    ("no-command", with_("trialCommand", REMOVE), "trialCommand", "is required"),
    ("empty-command", with_("trialCommand", " "), "trialCommand", "non-empty string"),
    ("both-spaces", with_("searchSpace", SPACE), "searchSpace", "both searchSpace and searchSpaceFile"),
    ("no-space", with_("searchSpaceFile", REMOVE), "searchSpaceFile", "missing"),
    ("space-file-missing", with_("searchSpaceFile", "nope.json"), "searchSpaceFile", "file not found"),
    ("space-file-is-dir", with_("searchSpaceFile", "trial_code"), "searchSpaceFile", "file not found"),
    ("bad-inline-space", {**with_("searchSpaceFile", REMOVE), "searchSpace": {"lr": {"_type": "uniform",
                                                                                   "_value": [1, 0]}}},
     "searchSpace.lr._value", "below high"),
    ("typo", {**BASE, "trialConcurency": 3}, "trialConcurency", "did you mean 'trialConcurrency'?"),
    ("two-spellings", {**BASE, "trial_command": "x"}, "trial_command",
     "'trialCommand' and 'trial_command' are the same field"),
    ("concurrency-str", with_("trialConcurrency", "5"), "trialConcurrency", "must be an integer"),
    ("concurrency-bool", with_("trialConcurrency", True), "trialConcurrency", "must be an integer"),
    ("concurrency-float", with_("trialConcurrency", 2.5), "trialConcurrency", "must be an integer"),
    ("concurrency-0", with_("trialConcurrency", 0), "trialConcurrency", "between 1 and 10000"),
    ("concurrency-missing", with_("trialConcurrency", REMOVE), "trialConcurrency", "is required"),
    ("max-trials-negative", with_("maxTrialNumber", -3), "maxTrialNumber", ">= 1"),
    ("duration-words", with_("maxExperimentDuration", "10 minutes"), "maxExperimentDuration", "duration"),
    ("duration-negative", with_("maxExperimentDuration", "-5m"), "maxExperimentDuration", "duration"),
    ("duration-text", with_("maxTrialDuration", "abc"), "maxTrialDuration", "duration"),
    ("heartbeat-bool", with_("heartbeatTimeout", True), "heartbeatTimeout", "duration"),
    ("gpu-negative", with_("trialGpuNumber", -1), "trialGpuNumber", ">= 0"),
    ("gpu-index-text", with_("trainingService.gpuIndices", [0, "a"]), "trainingService.gpuIndices[1]",
     "must be an integer"),
    ("gpu-index-negative", with_("trainingService.gpuIndices", [-1]), "trainingService.gpuIndices[0]",
     ">= 0"),
    ("gpu-index-string", with_("trainingService.gpuIndices", "0,x"), "trainingService.gpuIndices",
     "'x' in '0,x'"),
    ("gpu-index-twice", with_("trainingService.gpuIndices", [1, 1]), "trainingService.gpuIndices", "twice"),
    ("gpu-index-empty", with_("trainingService.gpuIndices", []), "trainingService.gpuIndices", "empty"),
    ("gpu-index-bool", with_("trainingService.gpuIndices", True), "trainingService.gpuIndices",
     "must be an integer"),
    ("active-gpu-text", with_("trainingService.useActiveGpu", "yes"), "trainingService.useActiveGpu",
     "true or false"),
    ("per-gpu-without-gpus", with_("trainingService.maxTrialNumberPerGpu", 2),
     "trainingService.maxTrialNumberPerGpu", "only works with trialGpuNumber"),
    ("platform", with_("trainingService.platform", "openpai"), "trainingService.platform", "not supported"),
    ("hybrid", with_("trainingService", [{"platform": "local"}]), "trainingService", "hybrid"),
    ("service-typo", with_("trainingService.gpuIndice", [0]), "trainingService.gpuIndice",
     "did you mean 'gpuIndices'?"),
    ("remote-no-machines", with_("trainingService", {"platform": "remote"}), "trainingService.machineList",
     "non-empty"),
    ("machine-no-host", with_("trainingService.machineList", [{"user": "u"}], REMOTE),
     "trainingService.machineList[0].host", "is required"),
    ("machine-port", with_("trainingService.machineList", [{"host": "h", "user": "u", "port": 70000}],
                           REMOTE),
     "trainingService.machineList[0].port", "between 1 and 65535"),
    ("machine-key-missing", with_("trainingService.machineList",
                                  [{"host": "h", "user": "u", "sshKeyFile": "~/.ssh/nope"}], REMOTE),
     "trainingService.machineList[0].sshKeyFile", "file not found"),
    ("retries-negative", with_("maxTrialRetries", -1), "maxTrialRetries", ">= 0"),
    ("broker-http", with_("broker", "http://localhost:6379"), "broker", "redis://"),
    ("storage-mysql", with_("storage", "mysql://x/y"), "storage", "sqlite://"),
    ("pattern-invalid", with_("metricPattern", "acc=(?P<value>"), "metricPattern", "not a valid regular"),
    ("pattern-no-group", with_("metricPattern", r"acc=(\d+)"), "metricPattern", "no group named 'value'"),
    ("metric-name-space", with_("metricName", "val acc"), "metricName", "spaces"),
    ("code-dir-missing", with_("trialCodeDirectory", "nope"), "trialCodeDirectory", "directory not found"),
    ("tuner-string", with_("tuner", "TPE"), "tuner", "{name: TPE}"),
    ("tuner-no-name", with_("tuner", {"classArgs": {}}), "tuner", "needs a name or a className"),
    ("tuner-both", with_("tuner", {"name": "TPE", "className": "a.B"}), "tuner", "both name and className"),
    ("tuner-class-form", with_("tuner", {"className": "MyTuner"}), "tuner.className", "module.ClassName"),
    ("tuner-args-list", with_("tuner", {"name": "TPE", "classArgs": [1]}), "tuner.classArgs", "mapping"),
    ("tuner-typo", with_("tuner", {"name": "TPE", "classArg": {}}), "tuner.classArg",
     "did you mean 'classArgs'?"),
    ("tuner-code-dir", with_("tuner", {"className": "a.B", "codeDirectory": "nope"}), "tuner.codeDirectory",
     "directory not found"),
    ("mode-bad", with_("tuner", {"name": "TPE", "classArgs": {"optimize_mode": "max"}}),
     "tuner.classArgs.optimize_mode", "'minimize' or 'maximize'"),
    ("mode-conflict", {**BASE, "tuner": {"name": "TPE", "classArgs": {"optimize_mode": "minimize"}},
                       "assessor": {"name": "Medianstop", "classArgs": {"optimize_mode": "maximize"}}},
     "assessor.classArgs.optimize_mode", "agree"),
    ("seed-text", with_("tuner", {"name": "TPE", "classArgs": {"seed": "x"}}), "tuner.classArgs.seed",
     "must be an integer"),
    ("advisor-and-tuner", {**BASE, "tuner": {"name": "TPE"}, "advisor": {"name": "Hyperband"}}, "advisor",
     "both tuner and advisor"),
    ("annotation", with_("useAnnotation", True), "useAnnotation", "not supported"),
    ("name-int", with_("experimentName", 5), "experimentName", "string"),
    ("v1-gpu-indices", with_("localConfig", {"gpuIndices": "0,x"}, V1), "localConfig.gpuIndices", "'x'"),
    ("v1-gpu-num", with_("trial.gpuNum", -1, V1), "trial.gpuNum", ">= 0"),
    ("v1-duration", with_("maxExecDuration", "10 minutes", V1), "maxExecDuration", "duration"),
    ("v1-trial-num", with_("maxTrialNum", 0, V1), "maxTrialNum", ">= 1"),
    ("v1-no-command", with_("trial.command", REMOVE, V1), "trial.command", "is required"),
    ("v1-trial-typo", with_("trial.comand", "x", V1), "trial.comand", "did you mean 'command'?"),
    ("v1-space-missing", with_("searchSpacePath", "nope.json", V1), "searchSpacePath", "file not found"),
    ("v1-multiphase", with_("multiPhase", True, V1), "multiPhase", "not supported"),
    ("v1-platform", with_("trainingServicePlatform", "pai", V1), "trainingServicePlatform", "not supported"),
    ("v1-machine-user", {**V1, "trainingServicePlatform": "remote", "machineList": [{"ip": "h"}]},
     "machineList[0].username", "is required"),
    ("v1-tuner-typo", with_("tuner", {"builtinTunerNam": "TPE"}, V1), "tuner.builtinTunerNam",
     "did you mean 'builtinTunerName'?"),
    ("v1-class-file", with_("tuner", {"className": "T", "classFileName": "t.txt"}, V1), "tuner.classFileName",
     "my_tuner.py"),
    ("v1-mixed", {**V1, "trialCommand": "x"}, "trialCommand", "v2 field 'trialCommand' in a file in NNI"),
    ("v1-unknown", {**V1, "maxExecDurations": "1h"}, "maxExecDurations", "did you mean 'maxExecDuration'?"),
]


@pytest.mark.parametrize(("raw", "field", "text"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_configs_name_the_field(raw: dict, field: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(raw)
    assert info.value.field == field, str(info.value)
    assert text in str(info.value)
    assert str(info.value).startswith(f"exp.yml: {field}: ")


@pytest.mark.parametrize(("content", "text"), [
    ("trialCommand: x\n  bad: [1, 2\n", "invalid YAML at line"),
    ("- just\n- a list\n", "must be a mapping"),
    ("", "it is empty"),
])
def test_bad_yaml_files(tmp_path: Path, content: str, text: str) -> None:
    path = tmp_path / "exp.yml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path) and text in str(info.value)


def test_malformed_yaml_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "exp.yml"
    path.write_text("trialCommand: x\ntrialConcurrency: 1\ntuner: {name: TPE\n")
    with pytest.raises(ConfigError, match=r"line 4"):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yml")


def test_bad_space_file_names_the_space_file(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"lr": {"_type": "uniform", "_value": [1, 0]}}')
    (tmp_path / "exp.yml").write_text("searchSpaceFile: s.json\ntrialCommand: x\ntrialConcurrency: 1\n")
    with pytest.raises(SearchSpaceError) as info:
        load_config(tmp_path / "exp.yml")
    assert info.value.source == str(tmp_path / "s.json") and info.value.field == "searchSpace.lr._value"


def test_relative_paths_without_a_file_resolve_against_the_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    cfg = config_from_dict({**BASE, "trialCodeDirectory": "trial_code"})
    assert cfg.trial_code_directory == DATA / "trial_code"
    assert os.path.isabs(cfg.to_dict()["trialCodeDirectory"])


# ---- shipping the trial code ------------------------------------------------------------------------------
NFS = {"storageType": "NFS", "nfsServer": "10.0.0.1", "exportedDirectory": "/exp",
       "localMountPoint": "/mnt/nfs", "remoteMountPoint": "/mnt/nfs", "localMounted": "usermount"}


@pytest.mark.parametrize(("fields", "ship"), [
    ({}, None),  # decided by the run: shipped with an external broker, in place with the embedded one
    ({"shipCode": False}, False),
    ({"shipCode": True}, True),
    ({"sharedStorage": NFS}, False),  # NNI's shared storage: the boxes see the code where it is
    ({"sharedStorage": NFS, "shipCode": True}, True),
])
def test_ship_code_and_shared_storage(fields: dict, ship: bool | None) -> None:
    cfg = load({**BASE, **fields})
    assert cfg.ship_code is ship
    assert load(cfg.to_dict()) == cfg


def test_v1_shared_storage_keeps_the_code_in_place() -> None:
    cfg = load({**V1, "sharedStorage": NFS})
    assert cfg.ship_code is False and cfg.shared_storage == NFS


@pytest.mark.parametrize(("fields", "where"), [
    ({"sharedStorage": {"storageType": "S3"}}, "sharedStorage.storageType"),
    ({"sharedStorage": "nfs"}, "sharedStorage"),
    ({"shipCode": "no"}, "shipCode"),
])
def test_bad_code_shipping_fields_name_the_field(fields: dict, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({**BASE, **fields})
    assert info.value.field == where
