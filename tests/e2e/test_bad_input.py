"""Bad input of every kind: exit code 2, one line on stderr naming the problem, and nothing half-written
(no experiment row, no experiment directory). Trial-side bad input (a missing command, NaN or text
metrics) is accepted at submit and recorded on the trial instead."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpoqueue.broker.embedded import free_port
from hpoqueue.cli.commands import main
from hpoqueue.states import TrialState
from tests.e2e.conftest import Project, processes_under

pytestmark = [pytest.mark.e2e]

GOOD: dict[str, Any] = {"trialCommand": "python trial.py", "trialConcurrency": 2, "maxTrialNumber": 2,
                        "tuner": {"name": "Random"}, "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}}
UNIFORM = {"_type": "uniform", "_value": [0, 1]}


def _config(**changes: Any) -> str:
    """GOOD with `changes` applied (a value of None removes the field), as YAML."""
    raw = {**GOOD, **changes}
    return yaml.safe_dump({k: v for k, v in raw.items() if v is not None})


#: (id, config text, extra environment, what the one-line message must name)
BAD_CONFIGS = [
    ("malformed-yaml", "trialCommand: [python trial.py\nsearchSpace: {", {}, "config.yml"),
    ("not-a-mapping", "- trialCommand\n- python\n", {}, "config.yml"),
    ("empty-file", "", {}, "config.yml"),
    ("missing-trial-command", _config(trialCommand=None), {}, "trialCommand"),
    ("wrong-type-concurrency", _config(trialConcurrency="two"), {}, "trialConcurrency"),
    ("wrong-type-max-trials", _config(maxTrialNumber=1.5), {}, "maxTrialNumber"),
    ("negative-concurrency", _config(trialConcurrency=-1), {}, "trialConcurrency"),
    ("unknown-field", _config(trialCommandd="python x.py"), {}, "trialCommandd"),
    ("bad-duration", _config(maxExperimentDuration="10 parsecs"), {}, "maxExperimentDuration"),
    ("bad-trial-duration", _config(maxTrialDuration="-5s"), {}, "maxTrialDuration"),
    ("bad-heartbeat", _config(heartbeatTimeout="soon"), {}, "heartbeatTimeout"),
    ("negative-retries", _config(maxTrialRetries=-1), {}, "maxTrialRetries"),
    ("missing-search-space-file", _config(searchSpace=None, searchSpaceFile="nope.json"), {}, "nope.json"),
    ("no-search-space", _config(searchSpace=None), {}, "searchSpace"),
    ("unknown-tuner", _config(tuner={"name": "Randomm"}), {}, "Randomm"),
    ("unknown-assessor", _config(assessor={"name": "Mediann"}), {}, "Mediann"),
    ("bad-class-args", _config(tuner={"name": "Random", "classArgs": {"nope": 1}}), {}, "nope"),
    ("bad-optimize-mode", _config(tuner={"name": "TPE", "classArgs": {"optimize_mode": "sideways"}}), {},
     "optimize_mode"),
    ("unknown-space-type", _config(searchSpace={"x": {"_type": "uniformm", "_value": [0, 1]}}), {}, "uniformm"),
    ("low-not-below-high", _config(searchSpace={"x": {"_type": "uniform", "_value": [1, 0]}}), {}, "searchSpace.x"),
    ("empty-choice", _config(searchSpace={"x": {"_type": "choice", "_value": []}}), {}, "searchSpace.x"),
    ("space-value-not-a-list", _config(searchSpace={"x": {"_type": "randint", "_value": 3}}), {}, "searchSpace.x"),
    ("not-a-redis-broker", _config(broker="amqp://127.0.0.1:5672//"), {}, "amqp://"),
    ("unreachable-broker", _config(broker=f"redis://:hunter2@127.0.0.1:{free_port()}/0"), {}, "cannot reach"),
    ("gpus-the-box-lacks", _config(trialGpuNumber=3), {"HPOQUEUE_FAKE_GPUS": "2"}, "trialGpuNumber"),
    ("gpus-on-a-box-without", _config(trialGpuNumber=1), {"HPOQUEUE_FAKE_GPUS": "0"}, "trialGpuNumber"),
    ("bad-storage-url", _config(storage="notadb://x"), {}, "notadb"),
    ("unwritable-working-directory", _config(experimentWorkingDirectory="/dev/null/experiments"), {},
     "experimentWorkingDirectory"),
    # found only when the database is opened, after a local run's Redis and workers have started
    ("unreachable-database", _config(storage=f"postgresql://nobody:hunter2@127.0.0.1:{free_port()}/x"), {},
     "127.0.0.1"),
]


def _assert_one_line_error(capsys: pytest.CaptureFixture[str], code: int, names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("hpoqueue: error: ") and names in err, err
    return err


def _assert_nothing_written(project: Project) -> None:
    home = list(project.home.iterdir()) if project.home.exists() else []
    leftovers = [p.name for p in home if not p.name.startswith("hpoqueue.db")]  # the db and its WAL files
    assert leftovers == []
    if (project.home / "hpoqueue.db").exists():
        assert project.storage().list_experiments() == []
    assert processes_under(project.home) == []  # no embedded Redis or local worker left running


@pytest.fixture
def home(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The project's HPOQUEUE_HOME for CLI calls made in this process."""
    for key in [k for k in list(__import__("os").environ) if k.startswith("HPOQUEUE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HPOQUEUE_HOME", str(project.home))
    monkeypatch.chdir(project.root)
    return project


@pytest.mark.parametrize(("text", "env", "names"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_a_bad_config_is_refused_in_one_line_and_nothing_is_written(
        home: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        text: str, env: dict[str, str], names: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = home.root / "config.yml"
    path.write_text(text)
    err = _assert_one_line_error(capsys, main(["submit", str(path), "--quiet"]), names)
    assert "hunter2" not in err  # a broker password is never printed
    _assert_nothing_written(home)


def test_an_embedded_redis_that_cannot_start_is_one_line_and_leaves_nothing(
        home: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`submit` starts the workers before its Redis answers: when Redis fails (here its port is taken),
    the error quotes Redis's own reason, and the workers, Redis and the experiment directory are gone."""
    from hpoqueue.experiment import launch

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(launch, "free_port", lambda: port)
        monkeypatch.setattr(launch, "_port_free", lambda _port: True)
        path = home.root / "config.yml"
        path.write_text(_config())
        _assert_one_line_error(capsys, main(["submit", str(path), "--quiet"]), f"listening on port {port}")
    _assert_nothing_written(home)


def _pg_listening() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", 5432)) == 0


OTHER_COMMANDS = [
    pytest.param(["submit", "no-such-config.yml"], "no-such-config.yml", id="missing-config-file"),
    pytest.param(["status", "nosuchexp"], "nosuchexp", id="status-unknown-experiment"),
    pytest.param(["trials", "nosuchexp"], "nosuchexp", id="trials-unknown-experiment"),
    pytest.param(["resume", "nosuchexp", "--quiet"], "nosuchexp", id="resume-unknown-experiment"),
    pytest.param(["logs", "nosuchexp-1"], "nosuchexp-1", id="logs-unknown-trial"),
    pytest.param(["kill", "nosuchexp-1"], "nosuchexp-1", id="kill-unknown-trial"),
    pytest.param(["update", "nosuchexp"], "nothing to update", id="update-nothing"),
    pytest.param(["update", "nosuchexp", "--concurrency", "0"], "--concurrency", id="update-zero-concurrency"),
    pytest.param(["update", "nosuchexp", "--duration", "forever"], "--duration", id="update-bad-duration"),
    pytest.param(["--storage", "postgresql://nobody:wrong@127.0.0.1:5432/nonexistent", "status", "x"],
                 "127.0.0.1:5432", id="storage-wrong-password",
                 marks=pytest.mark.skipif(not _pg_listening(), reason="no PostgreSQL at 127.0.0.1:5432")),
]


@pytest.mark.parametrize(("argv", "names"), OTHER_COMMANDS)
def test_other_commands_refuse_bad_arguments_in_one_line(home: Project, capsys: pytest.CaptureFixture[str],
                                                         argv: list[str], names: str) -> None:
    home.storage().close()  # a database with no experiment in it
    err = _assert_one_line_error(capsys, main(argv), names)
    assert "wrong" not in err  # the database password is masked
    _assert_nothing_written(home)


def test_the_real_command_exits_2_with_one_line(project: Project) -> None:
    config = project.root / "bad.yml"
    config.write_text(_config(tuner={"name": "Randomm"}))
    proc = subprocess.run([sys.executable, "-m", "hpoqueue", "submit", str(config)], cwd=project.root,
                          env=project.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"hpoqueue: error: {config}: tuner.name: unknown tuner 'Randomm' (did you mean 'Random'?)"]
    _assert_nothing_written(project)


METRICS_TRIAL = '''
import json, os
with open(os.environ["HPOQUEUE_METRIC_FILE"], "a") as fh:
    fh.write(json.dumps({"kind": "intermediate", "value": float("nan")}) + "\\n")
    fh.write(json.dumps({"kind": "intermediate", "value": "abc"}) + "\\n")
    fh.write("not json at all\\n")
print("loss=nan", flush=True)
print("loss=0.5", flush=True)
'''


@pytest.mark.slow
def test_trial_side_bad_input_is_recorded_on_the_trial(project: Project) -> None:
    (project.root / "metrics.py").write_text(METRICS_TRIAL)
    config = project.config(trialCommand="python metrics.py", metricName="loss", maxTrialNumber=1)
    project.cli("submit", str(config), "--quiet", check=True)
    missing = project.config("missing.yml", trialCommand="no-such-command-xyz --flag", maxTrialNumber=1)
    project.cli("submit", str(missing), "--quiet", check=True)
    storage = project.storage()
    metrics_exp, missing_exp = sorted(storage.list_experiments(), key=lambda e: e.created_at)
    [trial] = storage.trials(metrics_exp.id)
    assert trial.state is TrialState.SUCCEEDED  # the exit code decides; bad metric lines are dropped
    assert [m.value for m in storage.metrics(trial.id, kind="intermediate")] == [0.5]
    log = (Path(metrics_exp.work_dir) / "trials" / "1" / "attempt-1" / "trial.log").read_text()
    assert log.count("rejected metric") == 4, log
    [gone] = storage.trials(missing_exp.id)
    assert gone.state is TrialState.FAILED and gone.exit_code == 127
    assert "no-such-command-xyz" in (gone.exit_reason or "")
