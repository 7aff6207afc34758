"""Pose errors of an estimate against a posed pair's ground truth."""

from __future__ import annotations

import numpy as np

from posecrafter_ros.eval.datasets import PosedPair
from posecrafter_ros.eval.metrics import FAILED_DEG, rotation_error_deg, translation_angle_deg


def pose_errors(
    estimate_R_b_in_a: np.ndarray | None, estimate_t: np.ndarray | None, pair: PosedPair
):
    """(rotation error, translation angle) in degrees against the pair's ground truth.

    The estimate is the pose of B in A (p_A = R p_B + t); the ground truth is x_1 = R_0to1 x_0 + t.
    """
    if estimate_R_b_in_a is None:
        return FAILED_DEG, FAILED_DEG
    R_0to1 = estimate_R_b_in_a.T
    t_0to1 = -estimate_R_b_in_a.T @ estimate_t
    return rotation_error_deg(R_0to1, pair.R_0to1), translation_angle_deg(t_0to1, pair.t_0to1)
