"""The oracle bridge on a posed sequence: real intermediate views as FMS candidates, then the
multi-view pose on {A, selected, B}; side by side with the OpenCV baseline and the direct path.

The views are put in their capture-like order first (eval.datasets.sequence_order, which also
says whether the set is a ring); the candidates of a pair are the views between A and B in
that order, the shorter way round a ring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from posecrafter_ros.core.covariance import so3_log
from posecrafter_ros.core.oracle import OracleSource
from posecrafter_ros.core.twoview import estimate_two_view
from posecrafter_ros.core.types import EstimationError, RunContext
from posecrafter_ros.eval.datasets import PosedView, make_pair, sequence_order
from posecrafter_ros.eval.frames import view_keyframe
from posecrafter_ros.stages import Placement, build_stage
from posecrafter_ros.stages.select import FeatureMatchingSelector

from .bench_common import pair_errors
from .direct_bench import opencv_five_point


@dataclass
class OracleComparison:
    name: str
    rotation_deg: float
    errors: dict[str, tuple[float, float]]  # row name -> (rotation, translation) error, degrees
    direct_accepted: bool
    selected: list[int]
    message: str = ""
    seconds: float = 0.0  # selection + multi-view pose, wall clock
    cpu_seconds: float = 0.0  # ... CPU time of this process (all threads): load-independent
    covariance: Any = None  # [6 x 6] of the oracle answer, None when it failed
    rotation_error: Any = None  # [3] log(R_est R_true^T) in A's frame (radians), None if failed


def run_oracle(
    views: Sequence[PosedView],
    index_pairs: Sequence[tuple[int, int]],
    direct_conf: dict[str, Any] | None = None,
    fms_conf: dict[str, Any] | None = None,
    pose_conf: dict[str, Any] | None = None,
    max_candidates: int | None = 24,
    max_side: int = 640,
) -> list[OracleComparison]:
    """Rows 'opencv', 'direct' and 'oracle' for each (i, j) pair of view indices.

    pose_conf: the multi-view pose stage ({"type": "colmap", ...}).
    max_candidates: at most this many in-between views, evenly spaced.
    max_side: images are downscaled to this longer side (0: full size).
    """
    keyframes = [view_keyframe(v, max_side) for v in views]
    sequence = sequence_order(views)
    position = {view: k for k, view in enumerate(sequence.order)}
    source = OracleSource([keyframes[i] for i in sequence.order], cyclic=sequence.cyclic)
    selector = FeatureMatchingSelector.from_config(fms_conf)
    pose_conf = dict(pose_conf or {"type": "colmap"})
    pose_model = build_stage("pose_model", pose_conf, Placement())
    rows = []
    for i, j in index_pairs:
        pair = make_pair(views[i], views[j])
        a, b = keyframes[i], keyframes[j]
        errors: dict[str, tuple[float, float]] = {}
        base = opencv_five_point(a, b)
        errors["opencv"] = pair_errors(base, pair)
        direct = estimate_two_view(a, b, direct_conf)
        errors["direct"] = pair_errors(direct.pose.to_epipolar() if direct.pose else None, pair)
        started, started_cpu = time.monotonic(), time.process_time()
        candidates = source.candidates_between(position[i], position[j], max_candidates)
        selection = selector.select(a, b, candidates, RunContext())
        chosen = [sequence.order[candidates[k].index] for k in sorted(selection.indices)]
        message, covariance, rotation_error = "", None, None
        try:
            pose = pose_model.estimate([a] + [keyframes[k] for k in chosen] + [b], RunContext())
            errors["oracle"] = pair_errors(pose.to_epipolar(), pair)
            covariance = pose.covariance
            rotation_error = so3_log(pose.R @ pair.R_0to1)  # true B in A: R_0to1^T
        except EstimationError as err:
            errors["oracle"] = pair_errors(None, pair)
            message = err.message
        rows.append(
            OracleComparison(
                pair.name,
                pair.rotation_deg,
                errors,
                direct.accepted,
                chosen,
                message,
                time.monotonic() - started,
                time.process_time() - started_cpu,
                covariance,
                rotation_error,
            )
        )
    return rows
