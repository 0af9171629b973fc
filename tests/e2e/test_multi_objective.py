"""Two objectives end to end: NSGA2 runs the search, `best` prints the Pareto front, `trials --pareto`
lists it, and a tuner that searches for one objective is refused in one line."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRIAL = '''
import nni
p = nni.get_next_parameter()
nni.report_final_result({"default": p["x"], "latency": 1 - p["x"] + p["y"]})
'''
OBJECTIVES = [{"metric": "default", "mode": "maximize"}, {"metric": "latency", "mode": "minimize"}]


def test_the_pareto_front_is_printed_and_listed(project: Project) -> None:
    (project.root / "two.py").write_text(TRIAL)
    space = {"x": {"_type": "uniform", "_value": [0, 1]}, "y": {"_type": "uniform", "_value": [0, 1]}}
    config = project.config(trialCommand="python two.py", maxTrialNumber=10, trialConcurrency=3, searchSpace=space,
                            tuner={"name": "NSGA2", "classArgs": {"population_size": 4, "seed": 3}},
                            objectives=OBJECTIVES)
    run = project.cli("submit", str(config), check=True)
    exp_id = project.only_experiment()
    trials = project.storage().trials(exp_id)
    points = {t.id: (t.final_data["default"], t.final_data["latency"]) for t in trials}

    def beaten(a: tuple[float, float], b: tuple[float, float]) -> bool:  # b at least as good on both, better on one
        return b[0] >= a[0] and b[1] <= a[1] and b != a

    expected = {i for i, p in points.items() if not any(beaten(p, q) for q in points.values())}
    assert 0 < len(expected) < len(trials)
    bars = [line for line in run.stderr.splitlines() if "| pareto front " in line]  # the scheduler keeps it
    assert bars and bars[-1].startswith("[########################] 10/10") and \
        f"| pareto front {len(expected)} |" in bars[-1]
    front = json.loads(project.cli("best", exp_id, check=True).stdout)
    assert {t["trial"] for t in front} == expected and all("latency" in t["metrics"] for t in front)
    table = project.cli("trials", exp_id, "--pareto", check=True).stdout.splitlines()[2:]
    assert {line.split()[0] for line in table} == expected

    single = project.config("tpe.yml", objectives=OBJECTIVES)
    refused = project.cli("submit", str(single))
    assert refused.code == 2 and refused.stderr.count("\n") == 1 and "searches for one objective" in refused.stderr
    assert project.cli("trials", exp_id, "--pareto").code == 0
