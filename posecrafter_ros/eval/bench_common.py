"""Pose errors of an estimate against a posed pair's ground truth."""

from __future__ import annotations

import numpy as np

from posecrafter_ros.eval.datasets import PosedPair
from posecrafter_ros.eval.metrics import pose_errors


def pair_errors(epipolar: tuple[np.ndarray, np.ndarray] | None, pair: PosedPair):
    """(rotation error, translation angle) in degrees of (R_0to1, t_0to1), or None (failed)."""
    return pose_errors(*(epipolar or (None, None)), pair.R_0to1, pair.t_0to1)
