"""The direct path against a bare OpenCV script doing the same matching + RANSAC.

`opencv_five_point` is the classical baseline row of the evaluation protocol: ORB, brute-force
Hamming matching with Lowe's ratio test, the five-point essential matrix in RANSAC
(`cv2.findEssentialMat`) and `cv2.recoverPose`, with no refinement, covariance or gate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from posecrafter_ros.core.twoview import estimate_two_view
from posecrafter_ros.core.types import Keyframe
from posecrafter_ros.eval.datasets import PosedPair

from .common import pair_keyframes, pose_errors

BASELINE_CONF: dict[str, Any] = {
    "num_features": 4000,  # same ORB settings as the direct path's default matcher
    "fast_threshold": 10,
    "ratio": 0.9,
    "threshold_px": 1.0,
    "method": "RANSAC",  # cv2 method name: RANSAC (classic baseline) or USAC_MAGSAC
}


def opencv_five_point(
    kf_a: Keyframe, kf_b: Keyframe, conf: dict[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Pose of B in A (R, unit t) from a bare OpenCV pipeline, None when it finds none."""
    conf = {**BASELINE_CONF, **(conf or {})}
    orb = cv2.ORB_create(
        nfeatures=int(conf["num_features"]), fastThreshold=int(conf["fast_threshold"])
    )
    kp_a, des_a = orb.detectAndCompute(kf_a.gray(), None)
    kp_b, des_b = orb.detectAndCompute(kf_b.gray(), None)
    if des_a is None or des_b is None or len(kp_a) < 5 or len(kp_b) < 5:
        return None
    good = [
        m[0]
        for m in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(des_a, des_b, k=2)
        if len(m) == 2 and m[0].distance < conf["ratio"] * m[1].distance
    ]
    if len(good) < 5:
        return None
    pts_a = np.float64([kp_a[m.queryIdx].pt for m in good])
    pts_b = np.float64([kp_b[m.trainIdx].pt for m in good])
    na = cv2.undistortPoints(pts_a[:, None], kf_a.K, None)[:, 0]
    nb = cv2.undistortPoints(pts_b[:, None], kf_b.K, None)[:, 0]
    focal = 0.25 * (kf_a.K[0, 0] + kf_a.K[1, 1] + kf_b.K[0, 0] + kf_b.K[1, 1])
    E, mask = cv2.findEssentialMat(
        na,
        nb,
        np.eye(3),
        method=getattr(cv2, conf["method"]),
        prob=0.999,
        threshold=conf["threshold_px"] / focal,
    )
    if E is None or E.shape != (3, 3):
        return None
    _, R_ab, t_ab, _ = cv2.recoverPose(E, na, nb, np.eye(3), mask=mask)
    return R_ab.T, -R_ab.T @ t_ab.ravel()


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
        d_err = pose_errors(
            est.pose.R if est.pose else None, est.pose.t if est.pose else None, pair
        )
        b_err = pose_errors(base[0] if base else None, base[1] if base else None, pair)
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
