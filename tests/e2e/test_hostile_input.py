"""Input a hostile or careless user can give (issue 17): each is one line, exit 2, and nothing written, or,
from a trial, data that is checked and at worst dropped for that trial; never a traceback or a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpoqueue.cli.commands import main
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage
from tests.e2e.conftest import Project, processes_under

pytestmark = [pytest.mark.e2e]

GOOD: dict[str, Any] = {"trialCommand": "python trial.py", "trialConcurrency": 1, "maxTrialNumber": 1,
                        "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}}


def _yaml(**changes: Any) -> str:
    return yaml.safe_dump({**GOOD, **changes})


def _nested(depth: int) -> str:
    """A search space nested `depth` levels deep, as flow YAML (a few KiB of text)."""
    return "searchSpace: " + "{a: " * depth + "1" + "}" * depth + "\n"


ALIAS_BOMB = """trialCommand: python trial.py
trialConcurrency: 1
searchSpace:
  a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

#: (id, config text, file written beside it or None, what the one line must name)
HOSTILE_CONFIGS = [
    ("huge-max-trial-number", _yaml(maxTrialNumber=10**29 - 1), None, "maxTrialNumber"),
    ("huge-concurrency", _yaml(trialConcurrency=10**12), None, "trialConcurrency"),
    ("huge-duration", _yaml(maxTrialDuration=10**400), None, "maxTrialDuration"),
    ("huge-seed", _yaml(tuner={"name": "Random", "classArgs": {"seed": 2**70}}), None, "tuner.classArgs.seed"),
    ("nested-5000-deep", _yaml(searchSpace=None).replace("searchSpace: null\n", "") + _nested(5000), None,
     "nested more than"),
    ("alias-bomb", ALIAS_BOMB, None, "aliases expand to more than"),
    ("duplicate-key", _yaml() + "trialConcurrency: 4\n", None, "duplicate key 'trialConcurrency'"),
    ("duplicate-nested-key", _yaml(searchSpace=None).replace("searchSpace: null\n", "")
     + "searchSpace:\n  x: {_type: choice, _value: [1]}\n  x: {_type: choice, _value: [2]}\n", None,
     "duplicate key 'x'"),
    ("huge-randint", _yaml(searchSpace={"x": {"_type": "randint", "_value": [0, 10**400]}}), None,
     "searchSpace.x._value[1]"),
    ("tiny-q", _yaml(searchSpace={"x": {"_type": "quniform", "_value": [0, 1e9, 1e-9]}}), None,
     "searchSpace.x._value[2]"),
    ("lognormal-overflow", _yaml(searchSpace={"x": {"_type": "lognormal", "_value": [0, 1000]}}), None,
     "searchSpace.x._value"),
    ("huge-population", _yaml(tuner={"name": "PBT", "classArgs": {"population_size": 10**29}}), None,
     "population_size"),
    ("oversized-config", _yaml() + "# " + "x" * (3 * 2**20) + "\n", None, "MiB"),
    ("json-space-duplicate-key", _yaml(searchSpace=None, searchSpaceFile="space.json"),
     '{"x": {"_type": "choice", "_value": [1]}, "x": {"_type": "choice", "_value": [2]}}', "duplicate key"),
    ("json-space-5000-deep", _yaml(searchSpace=None, searchSpaceFile="space.json"),
     '{"a": ' * 5000 + "1" + "}" * 5000, "nested more than"),
]


@pytest.mark.parametrize(("text", "side_file", "names"), [c[1:] for c in HOSTILE_CONFIGS],
                         ids=[c[0] for c in HOSTILE_CONFIGS])
def test_a_hostile_config_is_one_line_and_creates_nothing(
        project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        text: str, side_file: str | None, names: str) -> None:
    for key in [k for k in os.environ if k.startswith("HPOQUEUE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HPOQUEUE_HOME", str(project.home))
    monkeypatch.chdir(project.root)
    path = project.root / "config.yml"
    path.write_text(text.replace("searchSpace: null\n", ""))
    if side_file is not None:
        (project.root / "space.json").write_text(side_file)
    started = time.monotonic()
    code = main(["submit", str(path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("hpoqueue: error: ") and names in err, err
    assert time.monotonic() - started < 10  # the alias bomb used to spin for ever
    assert not project.home.exists() or list(project.home.iterdir()) == []  # not even the database
    assert processes_under(project.home) == []


def test_read_commands_never_create_storage(project: Project) -> None:
    missing = project.root / "nonexistent" / "dir" / "x.db"
    for argv in (["--storage", f"sqlite:///{missing}", "list"], ["list"], ["status", "abc"], ["trials", "abc"]):
        run = project.cli(*argv, timeout=60)
        assert run.code == 2 and len(run.stderr.strip().splitlines()) == 1, run
        assert "no database at" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert not missing.parent.parent.exists()
    assert not project.home.exists()


def test_output_into_a_closed_pipe_is_no_traceback(project: Project) -> None:
    """`hpoqueue list | head -0`: the reader went away before hpoqueue wrote."""
    Storage(project.storage_url).close()
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "hpoqueue", "list"], cwd=project.root, env=project.env,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and proc.stderr == "", proc.stderr
    assert proc.returncode == 141


HOSTILE_TRIAL = r'''
import json, os, sys
import hpoqueue.trial as nni
with open(os.environ["HPOQUEUE_METRIC_FILE"], "a") as fh:
    fh.write('{"kind": "intermediate", "value": {"default": 0.5, "x": NaN}}\n')
    fh.write('{"kind": "intermediate", "value": {"default": 0.5, "x": [1e999]}}\n')
    fh.write('{"kind": "intermediate", "value": ' + "[" * 3000 + "]" * 3000 + '}\n')
    fh.write('{"kind": "intermediate", "value": {"default": 0.25, "note": "fine"}}\n')
print("loss=0x10", flush=True)
print("loss=1.5abc", flush=True)
print("loss=1_000", flush=True)
print("loss=0.75.", flush=True)
if nni.get_sequence_id() == 1:
    sys.stderr.write("bad\x00byte\n")  # a NUL byte, which PostgreSQL's text columns refuse
    sys.exit(127)
'''


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_hostile_trial_output_is_dropped_for_that_trial_only(project: Project, request: pytest.FixtureRequest,
                                                             backend: str) -> None:
    """NaN in any key, infinities, deep nesting, `loss=0x10`, and an exit message PostgreSQL cannot store:
    the experiment ends DONE, the good metrics are kept, the bad ones are counted in trial.log."""
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    (project.root / "hostile.py").write_text(HOSTILE_TRIAL)
    config = project.config(trialCommand="python hostile.py", metricName="loss", maxTrialNumber=2,
                            trialConcurrency=1, storage=url, maxTrialRetries=0)
    run = project.cli("submit", str(config), "--quiet", timeout=120)
    assert run.code == 0, run
    with Storage(url) as storage:
        [exp] = storage.list_experiments()
        assert exp.state is ExperimentState.DONE
        first, second = storage.trials(exp.id)
        assert first.state is TrialState.FAILED and first.exit_code == 127, first
        assert second.state is TrialState.SUCCEEDED, second
        for trial in (first, second):
            values = [(m.value, m.data) for m in storage.metrics(trial.id, kind="intermediate")]
            assert values == [(0.25, {"default": 0.25, "note": "fine"}), (0.75, 0.75)], values
        log = (Path(exp.work_dir) / "trials" / "2" / "attempt-1" / "trial.log").read_text()
        assert log.count("rejected metric") == 6, log
        assert json.dumps(second.params)  # the trial's record is intact


FLOOD_TRIAL = '''
import json, os
with open(os.environ["HPOQUEUE_METRIC_FILE"], "a") as fh:
    for step in range(60):
        fh.write(json.dumps({"kind": "intermediate", "value": step}) + "\\n")
    for _ in range(300):
        fh.write("not a metric\\n")
'''


def test_a_flood_of_metric_lines_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Metrics per attempt are capped (MAX_METRICS, lowered here) and trial.log names only the first
    rejections: a trial in a runaway loop cannot fill the database or the disk through hpoqueue."""
    from hpoqueue.worker import runner

    monkeypatch.setattr(runner, "MAX_METRICS", 50)
    (tmp_path / "flood.py").write_text(FLOOD_TRIAL)
    reported: list[Any] = []
    spec = runner.RunSpec(command=f"{sys.executable} flood.py", cwd=tmp_path, env=dict(os.environ),
                          stdout_path=tmp_path / "out", stderr_path=tmp_path / "err",
                          metric_path=tmp_path / "metrics.jsonl", log_path=tmp_path / "trial.log")
    outcome = runner.TrialRunner(spec, on_metrics=reported.extend).run()
    assert outcome.exit_code == 0 and [m.value for m in reported] == list(range(50))
    assert outcome.metrics_rejected == 10 + 300
    log = (tmp_path / "trial.log").read_text()
    assert log.count("rejected metric") == runner.MAX_LOGGED_REJECTIONS, log
    assert "more than 50 metrics from one attempt" in log and "further rejections are counted, not logged" in log
