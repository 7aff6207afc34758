"""Result rows of the parity checks (`posecrafter-parity`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ParityResult:
    """One compared output: its max abs difference against the fixture and the tolerance."""

    name: str
    max_abs_diff: float
    tolerance: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.max_abs_diff <= self.tolerance)
