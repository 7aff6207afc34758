"""The oracle bridge on a posed sequence: real intermediate views as FMS candidates, then the
multi-view pose on {A, selected, B}; side by side with the baseline and direct rows.

The views are put in their capture-like order first (eval.datasets.sequence_order, which also
says whether the set is a ring); the candidates of a pair are the views between A and B in
that order, the shorter way round a ring. A set of posed pairs (the fixture's layout) becomes
view sets too where its pairs share images (`views_from_pairs`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..core.covariance import so3_log
from ..core.oracle import OracleSource
from ..core.types import EstimationError, RelativePose, RunContext
from ..stages import Placement, build_stage
from ..stages.select import FeatureMatchingSelector
from .datasets import PosedPair, PosedView, make_pair, sequence_order
from .direct_bench import BASELINE_CONF
from .frames import view_keyframe
from .metrics import pair_errors
from .rows import BaselineRow, DirectRow


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
    # [3] t_est - t_true of the unit translations of B in A (A's frame), None if failed
    translation_error: Any = None
    covariance_terms: Any = None  # stages.pose.CovarianceTerms of a COLMAP answer, else None


def views_from_pairs(pairs: Sequence[PosedPair]) -> list[list[PosedView]]:
    """View sets of the images that posed pairs connect: one set per connected component,
    named by its pairs' source, poses chained from its first image (x_1 = R_0to1 x_0 + t_0to1; world = that image's
    camera). A component of two images has no frame between any pair and is left out."""
    neighbours: dict = {}
    for pair in pairs:
        neighbours.setdefault(pair.image0, []).append((pair.image1, pair.R_0to1, pair.t_0to1))
        R_back = pair.R_0to1.T
        neighbours.setdefault(pair.image1, []).append((pair.image0, R_back, -R_back @ pair.t_0to1))
    intrinsics = {p.image0: (p.K0, p.meta.get("size0")) for p in pairs}
    intrinsics.update({p.image1: (p.K1, p.meta.get("size1")) for p in pairs})
    # The group: the pair's source (the fixture names one), else the images' folder.
    source = {p.image0: p.meta.get("source") or p.image0.parent.name for p in pairs}
    placed: dict = {}
    sets = []
    for root in neighbours:
        if root in placed:
            continue
        placed[root] = (np.eye(3), np.zeros(3))
        component, queue = [root], [root]
        while queue:
            image = queue.pop(0)
            R0, t0 = placed[image]
            for other, R, t in neighbours[image]:
                if other not in placed:
                    placed[other] = (R @ R0, R @ t0 + t)
                    component.append(other)
                    queue.append(other)
        if len(component) > 2:
            sets.append(
                [
                    PosedView(
                        path,
                        intrinsics[path][0],
                        *placed[path],
                        name=path.stem,
                        group=source.get(root, root.parent.name),
                        image_size=intrinsics[path][1],
                    )
                    for path in sorted(component)
                ]
            )
    return sets


def run_oracle(
    views: Sequence[PosedView],
    index_pairs: Sequence[tuple[int, int]],
    direct_conf: dict[str, Any] | None = None,
    fms_conf: dict[str, Any] | None = None,
    pose_conf: dict[str, Any] | None = None,
    max_candidates: int | None = 24,
    max_side: int = 640,
) -> list[OracleComparison]:
    """Rows 'baseline', 'direct' (eval/rows.py) and 'oracle' for each (i, j) pair of view
    indices. The oracle row is run here rather than through `rows.OracleRow` to report what
    the selector chose and the bridge's time and covariance.

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
    two_view_rows = (BaselineRow(BASELINE_CONF), DirectRow(direct_conf))
    rows = []
    for i, j in index_pairs:
        pair = make_pair(views[i], views[j])
        a, b = keyframes[i], keyframes[j]
        errors: dict[str, tuple[float, float]] = {}
        outcomes = {row.name: row.estimate(a, b) for row in two_view_rows}
        for name, outcome in outcomes.items():
            errors[name] = pair_errors(outcome.epipolar, pair)
        started, started_cpu = time.monotonic(), time.process_time()
        candidates = source.candidates_between(position[i], position[j], max_candidates)
        selection = selector.select(a, b, candidates, RunContext())
        chosen = [sequence.order[candidates[k].index] for k in sorted(selection.indices)]
        message, covariance, rotation_error, translation_error, terms = "", None, None, None, None
        bridge = [a] + [keyframes[k] for k in chosen] + [b]
        try:
            if hasattr(pose_model, "estimate_with_terms"):  # what its covariance is made of
                pose, terms = pose_model.estimate_with_terms(bridge, RunContext())
            else:
                pose = pose_model.estimate(bridge, RunContext())
            errors["oracle"] = pair_errors(pose.to_epipolar(), pair)
            covariance = pose.covariance
            rotation_error = so3_log(pose.R @ pair.R_0to1)  # true B in A: R_0to1^T
            t_true = RelativePose.from_epipolar(pair.R_0to1, pair.t_0to1)[1]
            translation_error = pose.t / np.linalg.norm(pose.t) - t_true / np.linalg.norm(t_true)
        except EstimationError as err:
            errors["oracle"] = pair_errors(None, pair)
            message = err.message
        rows.append(
            OracleComparison(
                pair.name,
                pair.rotation_deg,
                errors,
                bool(outcomes["direct"].info.get("accepted")),
                chosen,
                message,
                time.monotonic() - started,
                time.process_time() - started_cpu,
                covariance,
                rotation_error,
                translation_error,
                terms,
            )
        )
    return rows
