"""optimize_mode's one rule: smaller is better when minimizing, larger when maximizing, an equal value is not better."""

from __future__ import annotations

from hpoqueue.results.optimize_mode import best_of, better, loss


def test_minimize_prefers_smaller_values() -> None:
    assert better(0.1, 0.2, "minimize") and not better(0.2, 0.1, "minimize")
    assert best_of([0.3, -1.0, 2.0], "minimize") == -1.0
    assert sorted([0.3, -1.0, 2.0], key=lambda v: loss(v, "minimize")) == [-1.0, 0.3, 2.0]


def test_maximize_prefers_larger_values() -> None:
    assert better(0.2, 0.1, "maximize") and not better(0.1, 0.2, "maximize")
    assert best_of([0.3, -1.0, 2.0], "maximize") == 2.0
    assert sorted([0.3, -1.0, 2.0], key=lambda v: loss(v, "maximize")) == [2.0, 0.3, -1.0]


def test_an_equal_value_is_not_better() -> None:
    for mode in ("minimize", "maximize"):
        assert not better(1.0, 1.0, mode)
