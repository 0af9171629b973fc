"""The charts' reduced data on a real SQLite record of 600 trials (past every threshold of charts.py): what is
drawn one by one is the right few, and the densities and bands account for every trial."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from hpoqueue.dashboard import charts
from hpoqueue.dashboard.snapshot import Snapshot
from hpoqueue.states import TrialState
from hpoqueue.storage import MetricRow, Storage, TrialRow
from tests.dashboard.conftest import BIG, make_big_record

TRIALS = 600


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    root = tmp_path_factory.mktemp("charts")
    url = f"sqlite:///{root / 'hpoqueue.db'}"
    make_big_record(url, root / "work", TRIALS)
    with Storage(url) as opened:
        yield opened


def test_thresholds_are_passed(storage: Storage) -> None:
    succeeded = storage.trials(BIG, states=[TrialState.SUCCEEDED])
    assert len(succeeded) > charts.MARKS > charts.PARAM_MARKS and TRIALS > charts.CURVES


def test_progress_marks_the_best_and_the_density_counts_every_succeeded_trial(storage: Storage) -> None:
    succeeded = [t for t in storage.trials(BIG, states=[TrialState.SUCCEEDED]) if t.final_value is not None]
    best = min(succeeded, key=lambda t: t.final_value or 0)
    data = charts.progress(Snapshot.read(storage, BIG))
    assert data["best"] == best.id and data["total"] == len(succeeded)
    cutoff = sorted(t.final_value or 0 for t in succeeded)[charts.MARKS - 1]
    assert len(data["marks"]["id"]) == charts.MARKS and max(data["marks"]["value"]) == cutoff
    assert sum(n or 0 for row in data["density"]["z"] for n in row) == len(succeeded)
    assert data["by_seq"]["y"][-1] == best.final_value and data["by_seq"]["x"][-1] == succeeded[-1].seq
    assert data["by_seq"]["y"] == sorted(data["by_seq"]["y"], reverse=True)  # it only improves
    assert f"{len(succeeded):,} succeeded trials: the {charts.MARKS} best" in data["note"]


def current_curves(storage: Storage) -> dict[str, list[tuple[int, float]]]:
    T, M = TrialRow.__table__, MetricRow.__table__
    rows = storage.select(select(M.c.trial_id, M.c.step, M.c.value).join(T, T.c.id == M.c.trial_id).where(
        T.c.experiment_id == BIG, M.c.kind == "intermediate", M.c.attempt == T.c.attempt).order_by(M.c.step))
    out: dict[str, list[tuple[int, float]]] = {}
    for tid, step, value in rows:
        out.setdefault(tid, []).append((step, value))
    return out


def test_curves_draw_the_best_running_and_chosen_and_band_all(storage: Storage,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    trials = storage.trials(BIG)
    ranked = sorted((t for t in trials if t.final_value is not None), key=lambda t: t.final_value or 0)
    running = {t.id for t in trials if t.state is TrialState.RUNNING}
    chosen = ranked[-1].id  # the worst: drawn only because it was chosen
    data = charts.curves(Snapshot.read(storage, BIG), [chosen])
    drawn = {tid for line in data["lines"].values() for tid in line["id"] if tid}
    assert drawn == {t.id for t in ranked[:charts.CURVES]} | running | {chosen}
    assert data["shown"] == len(drawn) and data["total"] == TRIALS
    curves = current_curves(storage)
    assert [y for y in data["lines"][chosen]["y"] if y is not None] == [v for _, v in curves[chosen]]
    stopped = [t for t in trials if t.state is TrialState.EARLY_STOPPED]
    assert set(data["early_stopped_ends"]["id"]) == {t.id for t in stopped} & drawn
    by_step = Counter(curves[t.id][-1][0] for t in stopped)
    assert dict(zip(data["stopped_at"]["step"], data["stopped_at"]["n"], strict=True)) == by_step
    band = data["band"]
    for i, step in enumerate(band["step"]):  # every trial: fewer than BAND_TRIALS
        at = [v for points in curves.values() for s, v in points if s == step]
        assert band["n"][i] == len(at)
        assert band["mid"][i] == pytest.approx(float(np.median(at)))
        assert band["low"][i] == pytest.approx(float(np.quantile(at, 0.1)))
    assert "the 10–90 % range of every trial" in data["note"]

    monkeypatch.setattr(charts, "BAND_TRIALS", 150)  # past it: every 4th trial
    sampled = charts.curves(Snapshot.read(storage, BIG), [])["band"]
    every4th = [points for tid, points in curves.items() if int(tid.rsplit("-", 1)[1]) % 4 == 0]
    assert sampled["n"][0] == len(every4th) < len(curves)
    assert sampled["mid"][0] == pytest.approx(float(np.median([p[0][1] for p in every4th])))


def test_params_kinds_lines_and_densities(storage: Storage) -> None:
    with_value = sorted((t for t in storage.trials(BIG) if t.final_value is not None), key=lambda t: t.final_value or 0)
    data = charts.params(Snapshot.read(storage, BIG))
    assert data["kinds"] == {"lr": "log", "dropout": "number", "batch": "category", "opt": "category"}
    assert data["categories"]["batch"] == ["32", "64", "128", "256"]
    # past PARCOORDS lines: the best, then the others numbered a multiple of the smallest power of two that fits
    best, room = charts.PARCOORDS_BEST, charts.PARCOORDS - charts.PARCOORDS_BEST
    every = data["sample"]["every"]
    others = [t for t in with_value[best:] if t.seq % every == 0]
    assert data["sample"]["best"] == best and len(others) <= room < sum(t.seq % (every // 2) == 0
                                                                        for t in with_value[best:])
    assert data["lines"]["id"] == [t.id for t in with_value[:best] + others]
    assert data["lines"]["value"] == [t.final_value for t in with_value[:best] + others]
    assert data["lines"]["params"]["batch"][-1] == str(others[-1].params["batch"])
    assert f"the {best} best and every {every}th of the other trials ({len(others)} of {len(with_value) - best:,})" \
        in data["note"]
    assert data["marked"] == charts.PARAM_MARKS
    lr = data["density"]["lr"]
    assert lr["x_log"] and lr["x"][0] == pytest.approx(min(t.params["lr"] for t in with_value))
    for name, grid in data["density"].items():
        assert sum(n or 0 for row in grid["z"] for n in row) == len(with_value), name


def test_timeline_grid_shows_who_held_each_slot(storage: Storage) -> None:
    trials = storage.trials(BIG)
    data = charts.timeline(Snapshot.read(storage, BIG))
    assert data["lanes"] == [f"box{b} / GPU {g}" for b in (0, 1) for g in range(4)]
    assert data["attempts"] == TRIALS and len(data["z"][0]) == charts.TIMELINE_COLUMNS
    first = trials[0]  # box0 / GPU 0 from the start
    assert data["seq"][0][0] == first.seq and data["states"][data["z"][0][0]] == first.state.value
    last = trials[-1]  # still running: holds its slot up to now, the last column
    row = data["lanes"].index(f"{last.host} / GPU {last.gpus[0]}")
    assert data["seq"][row][-1] == last.seq and data["states"][data["z"][row][-1]] == "RUNNING"
    durations = data["durations"]
    assert durations["total"] == TRIALS and len(durations["marks"]["id"]) == charts.MARKS
    assert min(durations["marks"]["seconds"]) >= sorted(
        (t.ended_at - t.started_at).total_seconds() for t in trials if t.ended_at and t.started_at)[-charts.MARKS]


def test_params_past_the_lines_sample_but_below_marks_still_dot_only_the_best(tmp_path: Path) -> None:
    """Between PARCOORDS and MARKS trials the lines are a sample: the value-against-parameter dots (the head of the
    lines) must be the PARAM_MARKS best over a density of all, not the sample taken for dots of every trial."""
    url = f"sqlite:///{tmp_path / 'hpoqueue.db'}"
    make_big_record(url, tmp_path / "work", 300)
    with Storage(url) as opened:
        with_value = sorted((t for t in opened.trials(BIG) if t.final_value is not None),
                            key=lambda t: t.final_value or 0)
        assert charts.PARCOORDS < len(with_value) <= charts.MARKS
        data = charts.params(Snapshot.read(opened, BIG))
    assert data["sample"] and data["marked"] == charts.PARAM_MARKS
    assert data["lines"]["id"][:data["marked"]] == [t.id for t in with_value[:charts.PARAM_MARKS]]
    assert sum(n or 0 for row in data["density"]["lr"]["z"] for n in row) == len(with_value)
