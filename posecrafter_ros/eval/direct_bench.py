"""The direct path against a bare OpenCV script doing the same matching + RANSAC.

Both are rows of the evaluation (eval/rows.py): `DirectRow`, and `BaselineRow` with
`BASELINE_CONF` (ORB, brute-force Hamming matching with Lowe's ratio test, the five-point
essential matrix in RANSAC and `cv2.recoverPose`, with no refinement, covariance or gate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from .datasets import PosedPair
from .frames import pair_keyframes
from .metrics import pair_errors
from .rows import BaselineRow, DirectRow

# The bare OpenCV script: eval/baseline.py's five-point row with the direct path's ORB settings.
BASELINE_CONF: dict[str, Any] = {
    "features": "orb",
    "num_features": 4000,
    "fast_threshold": 10,
    "ratio": 0.9,
    "ransac_threshold_px": 1.0,
}


@dataclass
class DirectComparison:
    name: str
    rotation_deg: float
    direct_rotation_error: float
    direct_translation_error: float
    direct_accepted: bool
    direct_seconds: float
    baseline_rotation_error: float
    baseline_translation_error: float
    baseline_seconds: float


def compare_direct_to_opencv(
    pairs: Sequence[PosedPair], direct_conf: dict | None = None, repeats: int = 3
) -> list[DirectComparison]:
    """Accuracy and best-of-`repeats` wall time of both paths on each pair (images in memory)."""
    direct_row, baseline_row = DirectRow(direct_conf), BaselineRow(BASELINE_CONF)
    direct_row.estimate(*pair_keyframes(pairs[0]))  # build and warm up the matcher
    rows = []
    for pair in pairs:
        kf_a, kf_b = pair_keyframes(pair)
        direct_times, baseline_times = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            direct = direct_row.estimate(kf_a, kf_b)
            direct_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            base = baseline_row.estimate(kf_a, kf_b)
            baseline_times.append(time.perf_counter() - started)
        d_err = pair_errors(direct.epipolar, pair)
        b_err = pair_errors(base.epipolar, pair)
        rows.append(
            DirectComparison(
                pair.name,
                pair.rotation_deg,
                d_err[0],
                d_err[1],
                bool(direct.info.get("accepted")),
                min(direct_times),
                b_err[0],
                b_err[1],
                min(baseline_times),
            )
        )
    return rows
