"""Loading posed pairs as keyframes and running the direct path over many pairs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from posecrafter_ros.core.gate import GateConf
from posecrafter_ros.core.matching import get_matcher
from posecrafter_ros.core.twoview import TwoViewEstimate, estimate_from_matches, resolve_conf
from posecrafter_ros.eval.datasets import PosedPair
from posecrafter_ros.eval.frames import read_rgb
from posecrafter_ros.eval.metrics import pose_errors


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
            features[path] = matcher.extract(read_rgb(path))
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
        r_err, t_err = pair_errors(est.pose.to_epipolar() if est.pose else None, pair)
        runs.append(DirectRun(pair, est, r_err, t_err))
    return runs


def pair_errors(epipolar: tuple[np.ndarray, np.ndarray] | None, pair: PosedPair):
    """(rotation error, translation angle) in degrees of (R_0to1, t_0to1), or None (failed)."""
    return pose_errors(*(epipolar or (None, None)), pair.R_0to1, pair.t_0to1)
