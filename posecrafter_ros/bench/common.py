"""Loading posed pairs as keyframes and running the direct path over many pairs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from posecrafter_ros.core.gate import GateConf
from posecrafter_ros.core.matching import get_matcher
from posecrafter_ros.core.twoview import TwoViewEstimate, estimate_from_matches, resolve_conf
from posecrafter_ros.core.types import Keyframe
from posecrafter_ros.eval.datasets import PosedPair
from posecrafter_ros.eval.metrics import FAILED_DEG, rotation_error_deg, translation_angle_deg


def load_rgb(path: str | Path) -> np.ndarray:
    """[H x W x 3] uint8 RGB (grey and RGBA files are converted)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def pair_keyframes(pair: PosedPair) -> tuple[Keyframe, Keyframe]:
    return (
        Keyframe(load_rgb(pair.image0), pair.K0, frame_id=Path(pair.image0).stem),
        Keyframe(load_rgb(pair.image1), pair.K1, frame_id=Path(pair.image1).stem),
    )


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


@dataclass
class DirectRun:
    pair: PosedPair
    estimate: TwoViewEstimate
    rotation_error_deg: float
    translation_error_deg: float


def run_direct_on_pairs(
    pairs: Iterable[PosedPair], conf: dict[str, Any] | None = None
) -> list[DirectRun]:
    """The direct path on every pair, extracting each image's features once (same result as
    `estimate_two_view` per pair, faster over a whole dataset)."""
    resolved = resolve_conf(conf)
    gate_conf = GateConf.from_dict(resolved["gate"])
    matcher = get_matcher(resolved["matcher"])
    features: dict[Path, Any] = {}

    def feats(path: Path):
        if path not in features:
            features[path] = matcher.extract(load_rgb(path))
        return features[path]

    runs = []
    for pair in pairs:
        fa, fb = feats(pair.image0), feats(pair.image1)
        started = time.perf_counter()
        idx = matcher.match(fa, fb)
        est = estimate_from_matches(
            fa.keypoints[idx[:, 0]],
            fb.keypoints[idx[:, 1]],
            pair.K0,
            pair.K1,
            resolved,
            gate_conf,
            {"match_seconds": time.perf_counter() - started},
        )
        r_err, t_err = pose_errors(
            est.pose.R if est.pose else None, est.pose.t if est.pose else None, pair
        )
        runs.append(DirectRun(pair, est, r_err, t_err))
    return runs
