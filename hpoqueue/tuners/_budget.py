"""The end of an experiment's trial budget, as a tuner sees it (told by BaseTuner.set_trials_left)."""

from __future__ import annotations


class TrialBudget:
    """Where the budget ends, counted in trials handed out; None while no maxTrialNumber was told."""

    def __init__(self) -> None:
        self.end: int | None = None

    def tell(self, left: int | None, handed_out: int) -> None:
        """`left` more trials may be created after the `handed_out` ones so far (None: no limit)."""
        self.end = None if left is None else handed_out + left

    def last_rounds(self, handed_out: int, pending: int, rounds: float) -> bool:
        """True while at most `rounds` rounds of suggestions are left, a round being the `pending` trials
        and the one being proposed: too few rounds to profit from exploring."""
        return self.end is not None and self.end - handed_out <= rounds * (pending + 1)
