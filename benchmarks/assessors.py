"""Replay learning curves through a simulated experiment and compare the assessors' savings and losses.

Run: ``python benchmarks/assessors.py`` (replays benchmarks/curves/sklearn_curves.json);
``python benchmarks/assessors.py --record`` re-records that file from scikit-learn (a minute or so).
The real scheduler, storage and assessors on hpoqueue.testing.simulation's simulated workers and clock (no
Celery, no real time): one epoch = one simulated second, `--concurrency` trials at a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpoqueue.config.experiment_config import config_from_dict
from hpoqueue.states import TrialState
from hpoqueue.testing.simulation import SimTrial, simulate

CURVES_FILE = Path(__file__).parent / "curves" / "sklearn_curves.json"
Curve = Sequence[float]  # validation error per epoch: lower is better


@dataclass(frozen=True)
class Outcome:
    """One simulated experiment: epochs spent and each trial's final value and whether it ran to the end."""

    epochs: int
    finals: list[tuple[float, bool]]
    assess_seconds: float
    assess_calls: int


def run_curves(curves: Sequence[Curve], assessor: dict[str, Any] | None, concurrency: int) -> Outcome:
    """Run `curves` in order (Batch tuner, one trial per curve, one epoch per simulated second) through the
    real scheduler, `concurrency` at a time, with the `assessor:` config section given (None: none)."""
    config = config_from_dict({
        "trialCommand": "simulated", "trialConcurrency": concurrency, "assessor": assessor,
        "tuner": {"name": "BatchTuner"},
        "searchSpace": {"curve": {"_type": "choice", "_value": [{"curve": i} for i in range(len(curves))]}},
    }, source="benchmarks/assessors.py")
    result = simulate(config, lambda params: SimTrial(values=curves[params["curve"]]))
    finals = [(t.final_value, t.state is TrialState.SUCCEEDED) for t in result.trials
              if t.final_value is not None]
    assessing = result.scheduler.assessing
    return Outcome(result.trial_epochs, finals, assessing.seconds if assessing else 0.0,
                   assessing.calls if assessing else 0)


def synthetic_curves(rng: np.random.Generator, n: int, epochs: int) -> list[list[float]]:
    """Exponential-decay loss curves: per-trial asymptote and rate, noise; slow learners with low
    asymptotes cross fast learners with high ones."""
    t = np.arange(1, epochs + 1)
    curves = []
    for _ in range(n):
        floor, start = rng.uniform(0.05, 0.5), rng.uniform(0.8, 1.2)
        rate = float(np.exp(rng.uniform(np.log(0.03), np.log(0.8))))
        noise = rng.normal(0.0, 0.01, epochs)
        curves.append([round(float(v), 5) for v in floor + (start - floor) * np.exp(-rate * t) + noise])
    return curves


def record_sklearn(path: Path, n: int = 120, epochs: int = 27, seed: int = 0) -> None:
    """Validation error per epoch of MLPClassifier on load_digits, over a seeded random search."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, test_size=0.3, random_state=seed)
    rng = np.random.default_rng(seed)
    runs = []
    for k in range(n):
        params = {"hidden_layer_sizes": (int(rng.choice([4, 8, 16, 32, 64, 128])),),
                  "learning_rate_init": float(10 ** rng.uniform(-4.5, -1)),
                  "alpha": float(10 ** rng.uniform(-6, 0)), "batch_size": int(rng.choice([32, 128, 512]))}
        model = MLPClassifier(random_state=k, **params)
        curve = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(epochs):
                model.partial_fit(x_train, y_train, classes=np.arange(10))
                curve.append(round(1.0 - float(model.score(x_val, y_val)), 5))
        runs.append({"params": params, "val_error": curve})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"source": "MLPClassifier.partial_fit on sklearn load_digits, 30% validation",
                                "epochs": epochs, "runs": runs}, separators=(",", ":")))


#: the `assessor:` config section of each row, given the number of epochs per curve
ASSESSORS: dict[str, Callable[[int], dict[str, Any] | None]] = {
    "none": lambda epochs: None,
    "Medianstop": lambda epochs: {"name": "Medianstop"},
    "ASHA eta=3": lambda epochs: {"name": "ASHA", "classArgs": {"eta": 3}},
    "Curvefitting": lambda epochs: {"name": "Curvefitting", "classArgs": {"epoch_num": epochs}},
}


def best(finals: list[tuple[float, bool]], full_only: bool) -> float:
    return min(v for v, full in finals if full or not full_only)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="re-record the scikit-learn curves first")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    if args.record:
        record_sklearn(CURVES_FILE)
    recorded = [run["val_error"] for run in json.loads(CURVES_FILE.read_text())["runs"]]
    families: dict[str, Callable[[int], list[list[float]]]] = {
        "synthetic": lambda seed: synthetic_curves(np.random.default_rng(seed), args.trials, 30),
        "sklearn MLP digits": lambda seed: [recorded[i] for i in np.random.default_rng(seed).permutation(
            len(recorded))[:args.trials]],
    }
    print(f"{args.trials} trials, concurrency {args.concurrency}, median over {args.seeds} seeds; values are "
          "validation error (lower is better);\ngaps: best final of the trials that ran to the end (full) "
          "or of all trials (all), relative to no assessor; seeds<=1%: share of seeds with full gap <= 1%")
    print(f"{'curves':<20} {'assessor':<14} {'epochs':>8} {'% of none':>10} {'best full':>10} {'gap':>7} "
          f"{'best all':>9} {'gap':>7} {'ms/call':>8} {'seeds<=1%':>10}")
    targets = []
    for family, make in families.items():
        rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in ASSESSORS}
        for seed in range(args.seeds):
            curves = make(seed)
            total = sum(map(len, curves))
            outcomes = {name: run_curves(curves, factory(len(curves[0])), args.concurrency)
                        for name, factory in ASSESSORS.items()}
            ref = best(outcomes["none"].finals, True)
            for name, out in outcomes.items():
                full, every = best(out.finals, True), best(out.finals, False)
                rows[name].append((out.epochs, out.epochs / total, full, full / ref - 1, every,
                                   every / ref - 1, 1000 * out.assess_seconds / max(out.assess_calls, 1)))
        for name, values in rows.items():
            med = [statistics.median(col) for col in zip(*values, strict=True)]
            within = sum(v[3] <= 0.01 for v in values) / len(values)
            print(f"{family:<20} {name:<14} {med[0]:>8.0f} {med[1]:>10.0%} {med[2]:>10.4f} {med[3]:>+7.1%} "
                  f"{med[4]:>9.4f} {med[5]:>+7.1%} {med[6]:>8.2f} {within:>10.0%}")
            if name in ("Medianstop", "ASHA eta=3"):
                targets.append((family, name, med[1] <= 0.5 and med[3] <= 0.01))
    print("\ntarget (issue): ASHA or Medianstop spends <= 50% of the epochs with the best full-run result "
          "within 1% of no assessor's")
    for family in families:
        hits = [name for fam, name, ok in targets if fam == family and ok]
        print(f"  {family:<20} {'MET by ' + ', '.join(hits) if hits else 'NOT met'}")


if __name__ == "__main__":
    main()
