"""The oracle bridge on a posed sequence: real intermediate views as FMS candidates, then the
multi-view pose on {A, selected, B}; side by side with the OpenCV baseline and the direct path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from posecrafter_ros.core.oracle import OracleSource
from posecrafter_ros.core.twoview import estimate_two_view
from posecrafter_ros.core.types import EstimationError, Keyframe, RunContext
from posecrafter_ros.eval.datasets import PosedView, make_pair
from posecrafter_ros.eval.frames import read_rgb
from posecrafter_ros.stages.pose import ClassicalMultiViewPose
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


def run_oracle(
    views: Sequence[PosedView],
    index_pairs: Sequence[tuple[int, int]],
    direct_conf: dict[str, Any] | None = None,
    fms_conf: dict[str, Any] | None = None,
    multiview_conf: dict[str, Any] | None = None,
    span: str = "all",
) -> list[OracleComparison]:
    """Rows 'opencv', 'direct' and 'oracle' for each (i, j) pair of view indices.

    span: OracleSource candidate span ("all": every other view of the set is a candidate).
    """
    keyframes = [Keyframe(read_rgb(v.image_path), v.K, frame_id=v.name) for v in views]
    source = OracleSource(keyframes, span=span)
    selector = FeatureMatchingSelector(fms_conf)
    pose_model = ClassicalMultiViewPose(multiview_conf)
    rows = []
    for i, j in index_pairs:
        pair = make_pair(views[i], views[j])
        a, b = keyframes[i], keyframes[j]
        errors: dict[str, tuple[float, float]] = {}
        base = opencv_five_point(a, b)
        errors["opencv"] = pair_errors(base, pair)
        direct = estimate_two_view(a, b, direct_conf)
        errors["direct"] = pair_errors(direct.pose.to_epipolar() if direct.pose else None, pair)
        candidates = source.candidates_between(i, j)
        selection = selector.select(a, b, candidates, RunContext())
        chosen = sorted(candidates[k].index for k in selection.indices)
        message = ""
        try:
            pose = pose_model.estimate([a] + [keyframes[k] for k in chosen] + [b], RunContext())
            errors["oracle"] = pair_errors(pose.to_epipolar(), pair)
        except EstimationError as err:
            errors["oracle"] = pair_errors(None, pair)
            message = err.message
        rows.append(
            OracleComparison(pair.name, pair.rotation_deg, errors, direct.accepted, chosen, message)
        )
    return rows
