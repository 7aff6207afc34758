"""Direct two-view relative pose: match -> robust essential matrix -> covariance -> gate.

`estimate_two_view(kf_a, kf_b, conf)` is the seam the pipeline uses. Its conf (the `direct`
section of a profile) has four optional sections, each merged over its defaults:

    matcher:    {"name": "orb", ...}          core.matching backend and its conf
    geometry:   {...}                         core.geometry.DEFAULT_GEOMETRY_CONF
    covariance: {...}                         DEFAULT_COVARIANCE_CONF below
    gate:       {...}                         core.gate.GateConf
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import check_keys
from .covariance import pose_covariance
from .gate import GateConf, decide, probability_wrong
from .geometry import DEFAULT_GEOMETRY_CONF, calibrate, estimate_relative_geometry
from .matching import get_matcher
from .types import Keyframe, RelativePose

DEFAULT_MATCHER_CONF: dict[str, Any] = {"name": "orb"}
DEFAULT_COVARIANCE_CONF: dict[str, Any] = {
    "inflation": 2.0,  # factor on the Gauss-Newton covariance (measured: docs/geometry.md)
    "rotation_floor_deg": 0.5,  # per-axis rotation std added for model error
    "scale_variance": 1.0e4,  # variance along the unit translation (scale unknown), m^2
}
CONF_SECTIONS = ("matcher", "geometry", "covariance", "gate")


@dataclass
class TwoViewEstimate:
    """Result of the direct path.

    pose: None when no geometry could be estimated at all.
    accepted: the gate's verdict (answer directly) - a pose may exist but not be accepted.
    confidence: 1 - P(wrong) of the support model (core.gate), in [0, 1].
    degeneracy: one of core.geometry.DEGENERACIES.
    info: timings and geometry diagnostics (parallax, homography ratio, rotation std).
    """

    pose: RelativePose | None
    num_matches: int
    num_inliers: int
    confidence: float
    reason: str = ""
    info: dict = field(default_factory=dict)
    accepted: bool = False
    degeneracy: str = "none"
    inliers: np.ndarray | None = None  # [M] bool over the matches, when a pose exists


def resolve_conf(conf: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Merge a `direct` conf over the defaults, section by section."""
    conf = dict(conf or {})
    unknown = sorted(set(conf) - set(CONF_SECTIONS))
    if unknown:
        raise ValueError(
            f"unknown direct-path conf sections {unknown}; valid: {list(CONF_SECTIONS)}"
        )
    matcher = dict(conf.get("matcher") or DEFAULT_MATCHER_CONF)
    check_keys("direct.geometry", conf.get("geometry") or {}, DEFAULT_GEOMETRY_CONF)
    check_keys("direct.covariance", conf.get("covariance") or {}, DEFAULT_COVARIANCE_CONF)
    return {
        "matcher": matcher,
        "geometry": {**DEFAULT_GEOMETRY_CONF, **(conf.get("geometry") or {})},
        "covariance": {**DEFAULT_COVARIANCE_CONF, **(conf.get("covariance") or {})},
        "gate": dict(conf.get("gate") or {}),
    }


def estimate_two_view(kf_a: Keyframe, kf_b: Keyframe, conf: dict | None = None) -> TwoViewEstimate:
    """Relative pose of B in A from the two images alone, with covariance and gate verdict."""
    resolved = resolve_conf(conf)
    gate_conf = GateConf.from_dict(resolved["gate"])
    matcher = get_matcher(resolved["matcher"])
    started = time.perf_counter()
    feats_a, feats_b = matcher.extract(kf_a.image), matcher.extract(kf_b.image)
    pairs = matcher.match(feats_a, feats_b)
    pts_a, pts_b = feats_a.keypoints[pairs[:, 0]], feats_b.keypoints[pairs[:, 1]]
    info: dict[str, Any] = {"match_seconds": time.perf_counter() - started}
    return estimate_from_matches(pts_a, pts_b, kf_a.K, kf_b.K, resolved, gate_conf, info)


def estimate_from_matches(
    pts_a: np.ndarray,
    pts_b: np.ndarray,
    K_a: np.ndarray,
    K_b: np.ndarray,
    resolved: dict[str, dict[str, Any]],
    gate_conf: GateConf,
    info: dict[str, Any] | None = None,
) -> TwoViewEstimate:
    """The geometry half of the direct path, from matched pixels pts_a, pts_b: [M x 2]."""
    info = dict(info or {})
    num_matches = len(pts_a)
    started = time.perf_counter()
    min_inliers = int(resolved["geometry"]["min_inliers"])
    geometry = estimate_relative_geometry(pts_a, pts_b, K_a, K_b, resolved["geometry"])
    if geometry is None or geometry.num_inliers < 6:
        return TwoViewEstimate(
            None,
            num_matches,
            0,
            0.0,
            f"no relative pose fits {num_matches} matches",
            info,
            degeneracy="too_few_matches",
        )
    R, t = RelativePose.from_epipolar(geometry.R_ab, geometry.t_ab)
    p_wrong = probability_wrong(geometry.num_inliers, num_matches, gate_conf)
    cov_conf = resolved["covariance"]
    inl = geometry.inliers
    covariance = pose_covariance(
        R,
        t,
        calibrate(pts_a[inl], K_a),
        calibrate(pts_b[inl], K_b),
        inflation=float(cov_conf["inflation"]),
        rotation_floor_rad=math.radians(float(cov_conf["rotation_floor_deg"])),
        p_wrong=p_wrong,
        scale_variance=float(cov_conf["scale_variance"]),
        translation_observable=geometry.degeneracy != "pure_rotation",
    )
    rotation_sigma_deg = math.degrees(math.sqrt(max(np.trace(covariance[3:, 3:]) / 3.0, 0.0)))
    decision = decide(
        p_wrong, rotation_sigma_deg, geometry.num_inliers, geometry.degeneracy, gate_conf
    )
    info.update(
        geometry_seconds=time.perf_counter() - started,
        parallax_deg=geometry.parallax_deg,
        homography_ratio=geometry.homography_ratio,
        rotation_sigma_deg=rotation_sigma_deg,
        p_wrong=p_wrong,
        min_inliers=min_inliers,
    )
    return TwoViewEstimate(
        RelativePose(R, t, covariance, scale_known=False),
        num_matches,
        geometry.num_inliers,
        1.0 - p_wrong,
        decision.reason,
        info,
        accepted=decision.accepted,
        degeneracy=geometry.degeneracy,
        inliers=geometry.inliers,
    )
