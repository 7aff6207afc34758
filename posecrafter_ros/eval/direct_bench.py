"""The direct path against a bare OpenCV script doing the same matching + RANSAC.

`opencv_five_point` is the classical baseline row of the evaluation protocol: ORB, brute-force
Hamming matching with Lowe's ratio test, the five-point essential matrix in RANSAC
(`cv2.findEssentialMat`) and `cv2.recoverPose`, with no refinement, covariance or gate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from posecrafter_ros.core.twoview import estimate_two_view
from posecrafter_ros.core.types import Keyframe
from posecrafter_ros.eval.baseline import estimate_five_point
from posecrafter_ros.eval.datasets import PosedPair
from posecrafter_ros.eval.frames import pair_keyframes

from .bench_common import pair_errors

# The bare OpenCV script: eval/baseline.py's five-point row with the direct path's ORB settings.
BASELINE_CONF: dict[str, Any] = {
    "features": "orb",
    "num_features": 4000,
    "fast_threshold": 10,
    "ratio": 0.9,
    "ransac_threshold_px": 1.0,
}


def opencv_five_point(
    kf_a: Keyframe, kf_b: Keyframe, conf: dict[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(R_0to1, unit t_0to1) from the bare OpenCV pipeline, None when it finds none."""
    est = estimate_five_point(kf_a, kf_b, {**BASELINE_CONF, **(conf or {})})
    if est.R_0to1 is None:
        return None
    return est.R_0to1, est.t_0to1


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
    estimate_two_view(*pair_keyframes(pairs[0]), direct_conf)  # build and warm up the matcher
    rows = []
    for pair in pairs:
        kf_a, kf_b = pair_keyframes(pair)
        direct_times, baseline_times = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            est = estimate_two_view(kf_a, kf_b, direct_conf)
            direct_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            base = opencv_five_point(kf_a, kf_b)
            baseline_times.append(time.perf_counter() - started)
        d_err = pair_errors(est.pose.to_epipolar() if est.pose else None, pair)
        b_err = pair_errors(base, pair)
        rows.append(
            DirectComparison(
                pair.name,
                pair.rotation_deg,
                d_err[0],
                d_err[1],
                est.accepted,
                min(direct_times),
                b_err[0],
                b_err[1],
                min(baseline_times),
            )
        )
    return rows
