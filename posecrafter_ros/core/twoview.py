"""Direct two-view relative pose: match -> robust essential matrix -> covariance -> gate.

`estimate_two_view(kf_a, kf_b, conf)` is the seam the pipeline uses. Its conf (the `direct`
section of a profile) has four optional sections, each merged over its defaults:

    matcher:    {"name": "sift", ...}         core.matching backend and its conf
    geometry:   {...}                         core.geometry.DEFAULT_GEOMETRY_CONF
    covariance: {...}                         DEFAULT_COVARIANCE_CONF below
    gate:       {...}                         core.gate.GateConf

The gate and covariance numbers fitted for the matcher (core/matching/trust/<name>.json,
written by scripts/calibrate_trust.py) come between the defaults and the user's sections.

Two halves, so that a calibration can refit the second without rerunning the first:
`measure(correspondences, geometry conf) -> Measurement` (matching-independent geometry and
the gate's support features) and `judge(measurement, resolved conf) -> TwoViewEstimate`
(covariance calibration and the gate).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .camera import undistort_points
from .config import check_keys
from .covariance import (
    assemble_covariance,
    gauss_newton_covariance,
    rotation_only_covariance,
    rotation_sigma_deg,
)
from .focal import FocalCheck, check_focal
from .gate import GateConf, decide, probability_wrong
from .geometry import DEFAULT_GEOMETRY_CONF, calibrate, estimate_relative_geometry
from .matching import get_matcher
from .types import Keyframe, RelativePose

# The default direct-path matcher, chosen by held-out numbers (docs/geometry.md, "Direct path:
# default matcher and speed"): RootSIFT accepts more pairs than ORB at fewer false accepts.
DEFAULT_MATCHER_CONF: dict[str, Any] = {"name": "sift"}
# Used only for a matcher without fitted numbers (whose estimates the gate never accepts).
DEFAULT_COVARIANCE_CONF: dict[str, Any] = {
    "inflation": 1.0,  # factor on the Gauss-Newton covariance (fitted per matcher)
    "rotation_floor_deg": 0.0,  # per-axis rotation std added for model error (fitted)
    "translation_floor_deg": 0.0,  # per-axis std of the translation direction added (fitted)
    "scale_variance": 1.0e4,  # variance along the unit translation (scale unknown), m^2
}
CONF_SECTIONS = ("matcher", "geometry", "covariance", "gate")
TRUST_DIR = Path(__file__).resolve().parent / "matching" / "trust"
COVERAGE_GRID = 6  # cells per image side for the inlier coverage feature


@lru_cache(maxsize=None)
def load_trust(matcher_name: str) -> dict[str, Any] | None:
    """The fitted gate and covariance of a matcher (core/matching/trust/<name>.json), or None."""
    path = TRUST_DIR / f"{matcher_name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass
class TwoViewEstimate:
    """Result of the direct path.

    pose: None when no geometry could be estimated at all. For a pure rotation (zero
        baseline) t is zero and the translation block of the covariance is large.
    accepted: the gate's verdict (answer directly) - a pose may exist but not be accepted.
    confidence: 1 - P(wrong) of the support model (core.gate), in [0, 1].
    degeneracy: one of core.geometry.DEGENERACIES.
    info: timings, the gate's support features and geometry diagnostics.
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

    @property
    def translation_observable(self) -> bool:
        return self.degeneracy != "pure_rotation"


@dataclass
class Correspondences:
    """Matched pixels of two images, undistorted (pinhole under K_a, K_b).

    pts_a, pts_b: [M x 2]; size_a, size_b: (width, height); pixel_scale: working resolution /
    image resolution of the matcher (the geometry threshold is in working-resolution pixels).
    """

    pts_a: np.ndarray
    pts_b: np.ndarray
    K_a: np.ndarray
    K_b: np.ndarray
    size_a: tuple[int, int]
    size_b: tuple[int, int]
    pixel_scale: float = 1.0


@dataclass
class Measurement:
    """What the images say about the pose, before any fitted number is applied.

    R, t: pose of B in A (p_A = R p_B + t, |t| = 1; zero for a pure rotation).
    cov_gn: Gauss-Newton covariance, [5 x 5] over (translation tangent d, rotation w) with its
        tangent basis, or [3 x 3] over w for a pure rotation (basis None).
    features: the gate's support features (core.gate.SUPPORT_FEATURES).
    focal: the profile of the fit over the focal length (core.focal); the default (no
        evidence) when it was not measured.
    """

    num_matches: int
    num_inliers: int = 0
    degeneracy: str = "too_few_matches"
    R: np.ndarray | None = None
    t: np.ndarray | None = None
    cov_gn: np.ndarray | None = None
    basis: np.ndarray | None = None
    features: dict[str, float] = field(default_factory=dict)
    inliers: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    focal: FocalCheck = field(default_factory=FocalCheck)


def resolve_conf(conf: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Merge a `direct` conf over the matcher's fitted numbers and the defaults, by section."""
    conf = dict(conf or {})
    unknown = sorted(set(conf) - set(CONF_SECTIONS))
    if unknown:
        raise ValueError(
            f"unknown direct-path conf sections {unknown}; valid: {list(CONF_SECTIONS)}"
        )
    matcher = dict(conf.get("matcher") or DEFAULT_MATCHER_CONF)
    name = str(matcher.get("name", DEFAULT_MATCHER_CONF["name"]))
    trust = load_trust(name) or {}
    source = f"core/matching/trust/{name}.json" + ("" if trust else " does not exist")
    check_keys("direct.geometry", conf.get("geometry") or {}, DEFAULT_GEOMETRY_CONF)
    check_keys("direct.covariance", conf.get("covariance") or {}, DEFAULT_COVARIANCE_CONF)
    return {
        "matcher": matcher,
        "geometry": {**DEFAULT_GEOMETRY_CONF, **(conf.get("geometry") or {})},
        "covariance": {
            **DEFAULT_COVARIANCE_CONF,
            **trust.get("covariance", {}),
            **(conf.get("covariance") or {}),
        },
        "gate": {"source": source, **trust.get("gate", {}), **(conf.get("gate") or {})},
    }


def match_keyframes(
    matcher, kf_a: Keyframe, kf_b: Keyframe, feats_a=None, feats_b=None
) -> tuple[Correspondences, np.ndarray]:
    """(correspondences, [M x 2] feature index pairs) of two keyframes (features extracted
    unless given)."""
    feats_a = feats_a if feats_a is not None else matcher.extract(kf_a.image)
    feats_b = feats_b if feats_b is not None else matcher.extract(kf_b.image)
    pairs = matcher.match(feats_a, feats_b)
    corr = Correspondences(
        undistort_points(feats_a.keypoints[pairs[:, 0]], kf_a),
        undistort_points(feats_b.keypoints[pairs[:, 1]], kf_b),
        np.asarray(kf_a.K, np.float64),
        np.asarray(kf_b.K, np.float64),
        (kf_a.width, kf_a.height),
        (kf_b.width, kf_b.height),
        0.5 * (feats_a.scale + feats_b.scale),
    )
    return corr, pairs


def estimate_two_view(kf_a: Keyframe, kf_b: Keyframe, conf: dict | None = None) -> TwoViewEstimate:
    """Relative pose of B in A from the two images alone, with covariance and gate verdict."""
    resolved = resolve_conf(conf)
    matcher = get_matcher(resolved["matcher"])
    started = time.perf_counter()
    corr, _ = match_keyframes(matcher, kf_a, kf_b)
    info = {"match_seconds": time.perf_counter() - started}
    return judge(measure(corr, resolved["geometry"], info), resolved)


def inlier_coverage(points: np.ndarray, size: tuple[int, int]) -> float:
    """Share of the cells of a COVERAGE_GRID x COVERAGE_GRID grid over the image holding a point."""
    if len(points) == 0:
        return 0.0
    cells = np.floor(points / np.asarray(size, float) * COVERAGE_GRID).astype(int)
    cells = np.clip(cells, 0, COVERAGE_GRID - 1)
    return len(np.unique(cells[:, 0] * COVERAGE_GRID + cells[:, 1])) / COVERAGE_GRID**2


def measure(
    corr: Correspondences, geometry_conf: dict[str, Any], info: dict[str, Any] | None = None
) -> Measurement:
    """Robust geometry of the correspondences and the gate's support features."""
    info = dict(info or {})
    started = time.perf_counter()
    conf = dict(geometry_conf)
    # The threshold is in working-resolution pixels: keypoints detected on an image downscaled
    # by s are localised to about 1 / s pixels of the full image.
    conf["threshold_px"] = float(conf["threshold_px"]) / max(corr.pixel_scale, 1e-6)
    num_matches = len(corr.pts_a)
    geometry = estimate_relative_geometry(corr.pts_a, corr.pts_b, corr.K_a, corr.K_b, conf)
    if geometry is None or geometry.num_inliers < 6:
        info["geometry_seconds"] = time.perf_counter() - started
        return Measurement(num_matches, info=info)
    inl = geometry.inliers
    xa, xb = calibrate(corr.pts_a[inl], corr.K_a), calibrate(corr.pts_b[inl], corr.K_b)
    R, t = RelativePose.from_epipolar(geometry.R_ab, geometry.t_ab)
    if geometry.degeneracy == "pure_rotation":
        t = np.zeros(3)
        cov_gn, basis = rotation_only_covariance(R, xa, xb), None
        gn_rotation = cov_gn
    else:
        cov_gn, basis = gauss_newton_covariance(R, t, xa, xb)
        gn_rotation = cov_gn[2:, 2:]
    gn_sigma_deg = math.degrees(math.sqrt(max(float(np.linalg.eigvalsh(gn_rotation)[-1]), 1e-18)))
    features = {
        "log_inliers": math.log(geometry.num_inliers),
        "log_rotation_sigma": math.log(gn_sigma_deg),
        "coverage": min(
            inlier_coverage(corr.pts_a[inl], corr.size_a),
            inlier_coverage(corr.pts_b[inl], corr.size_b),
        ),
        "log_parallax": math.log(max(geometry.parallax_deg, 0.1)),
        "model_support": geometry.model_support,
    }
    focal = FocalCheck()
    if geometry.fundamental is not None and geometry.degeneracy in ("none", "planar"):
        f_inl = geometry.fundamental_inliers
        focal = check_focal(
            corr.pts_a[f_inl],
            corr.pts_b[f_inl],
            corr.K_a,
            corr.K_b,
            geometry.fundamental,
            (geometry.R_ab, geometry.t_ab),
            conf,
        )
    info.update(
        geometry_seconds=time.perf_counter() - started,
        parallax_deg=geometry.parallax_deg,
        homography_ratio=geometry.homography_ratio,
        focal_best_factor=focal.best_factor,
        focal_evidence=focal.evidence,
        focal_observable=focal.observable,
        **{f"feature_{k}": v for k, v in features.items()},
    )
    return Measurement(
        num_matches,
        geometry.num_inliers,
        geometry.degeneracy,
        R,
        t,
        cov_gn,
        basis,
        features,
        inl,
        info,
        focal,
    )


def judge(m: Measurement, resolved: dict[str, dict[str, Any]]) -> TwoViewEstimate:
    """Covariance (with the matcher's fitted calibration) and the gate's verdict."""
    info = dict(m.info)
    if m.R is None:
        return TwoViewEstimate(
            None,
            m.num_matches,
            0,
            0.0,
            f"no relative pose fits {m.num_matches} matches",
            info,
            degeneracy="too_few_matches",
        )
    gate_conf = GateConf.from_dict(resolved["gate"])
    cov_conf = resolved["covariance"]
    calibration = {
        "inflation": float(cov_conf["inflation"]),
        "rotation_floor_rad": math.radians(float(cov_conf["rotation_floor_deg"])),
        "translation_floor_rad": math.radians(float(cov_conf["translation_floor_deg"])),
        "scale_variance": float(cov_conf["scale_variance"]),
    }
    p_wrong = probability_wrong(m.features, gate_conf)
    covariance = assemble_covariance(m.cov_gn, m.basis, m.t, **calibration)
    sigma_deg = rotation_sigma_deg(covariance)
    decision = decide(
        p_wrong,
        sigma_deg,
        m.num_inliers,
        m.degeneracy,
        m.features["model_support"],
        gate_conf,
        m.focal,
    )
    reason = decision.reason
    if not decision.accepted:
        # A rejected estimate may be a wrong RANSAC solution: its covariance says so.
        covariance = assemble_covariance(m.cov_gn, m.basis, m.t, p_wrong=p_wrong, **calibration)
    if m.degeneracy == "pure_rotation":
        reason += (
            "; pure rotation or zero baseline (median parallax "
            f"{info['parallax_deg']:.2f} deg): the rotation is answered, the translation is "
            "unobservable (zero, with a large covariance)"
        )
    info.update(rotation_sigma_deg=sigma_deg, p_wrong=p_wrong, gate_criterion=decision.criterion)
    return TwoViewEstimate(
        RelativePose(m.R, m.t, covariance, scale_known=False),
        m.num_matches,
        m.num_inliers,
        1.0 - p_wrong,
        reason,
        info,
        accepted=decision.accepted,
        degeneracy=m.degeneracy,
        inliers=m.inliers,
    )
