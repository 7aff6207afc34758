"""The confidence gate: answer from the direct two-view estimate, or bridge.

The direct estimate can be wrong in a way its residuals do not show: with little overlap,
RANSAC finds a consistent-looking pose among false matches (repeated structure, textureless
background). The gate models the probability that the estimate is wrong (rotation error >= 5
degrees) with a logistic function of support features chosen to mean the same thing on any
scene (`SUPPORT_FEATURES`, computed by core.twoview):

    p_wrong = sigmoid(bias + sum_k weights[k] * feature_k)

The weights, the acceptance threshold and the covariance calibration are properties of a
matcher: they are fitted per matcher, leaving one scene out at a time, by
`scripts/calibrate_trust.py`, which writes them to `core/matching/trust/<matcher>.json`.
A matcher without fitted numbers is never gated with another matcher's: the gate refuses to
accept (the direct answer goes to the bridge, and the reason says how to fit them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .config import check_keys
from .focal import FocalCheck

# name -> what it measures (all scale-free, so they transfer between scenes and resolutions).
SUPPORT_FEATURES: dict[str, str] = {
    "log_inliers": "ln(number of essential-matrix inliers)",
    "log_rotation_sigma": "ln(rotation std in degrees of the uninflated Gauss-Newton covariance)",
    "coverage": "share of a 6 x 6 grid over each image holding an inlier (smaller image)",
    "log_parallax": "ln(median inlier parallax in degrees, at least 0.1)",
    "model_support": "essential inliers under K / fundamental inliers without K",
}


@dataclass
class GateConf:
    """Gate settings. `weights` None: no support model fitted for this matcher (never accept)."""

    bias: float = 0.0  # support model: logistic bias
    weights: dict[str, float] | None = None  # support model: feature name -> weight
    max_p_wrong: float = 0.1  # accept when P(rotation error >= 5 deg) is at most this
    max_rotation_sigma_deg: float = 10.0  # ... and the returned rotation std is at most this
    min_inliers: int = 20  # ... and at least this many inliers
    min_model_support: float = 0.5  # below: the intrinsics contradict the matches (never accept)
    # Above: the matches fit another focal length clearly better (core.focal; never accept).
    # Fitted per matcher, never below this: a chi-square (1 dof) this large has p ~ 1e-4.
    max_focal_evidence: float = 15.0
    reject_degeneracies: tuple[str, ...] = ("too_few_matches", "too_few_inliers")
    source: str = ""  # where the fitted numbers come from (shown when refusing)

    @classmethod
    def from_dict(cls, conf: dict[str, Any] | None) -> "GateConf":
        conf = dict(conf or {})
        check_keys("direct.gate", conf, (f.name for f in fields(cls)))
        if "reject_degeneracies" in conf:
            conf["reject_degeneracies"] = tuple(conf["reject_degeneracies"])
        if conf.get("weights") is not None:
            bad = sorted(set(conf["weights"]) - set(SUPPORT_FEATURES))
            if bad:
                raise ValueError(
                    f"unknown support features {bad}; valid: {sorted(SUPPORT_FEATURES)}"
                )
        return cls(**conf)

    @property
    def fitted(self) -> bool:
        return self.weights is not None


def probability_wrong(features: dict[str, float], conf: GateConf) -> float:
    """P(rotation error >= 5 deg) of an estimate with these support features (1 if unfitted)."""
    if conf.weights is None:
        return 1.0
    z = conf.bias + sum(w * features[name] for name, w in conf.weights.items())
    if z < -700:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z)) if z < 700 else 1.0


# What decided a verdict (GateDecision.criterion), in the order `decide` checks them.
CRITERIA = (
    "degeneracy",
    "focal_length",
    "model_support",
    "unfitted",
    "min_inliers",
    "p_wrong",
    "rotation_sigma",
    "accepted",
)
# The criteria that name the intrinsics (or the lens model) as the likely cause.
INTRINSICS_CRITERIA = ("focal_length", "model_support")


@dataclass
class GateDecision:
    accepted: bool
    reason: str
    criterion: str  # one of CRITERIA: the first that failed, or "accepted"


def decide(
    p_wrong: float,
    rotation_sigma_deg: float,
    num_inliers: int,
    degeneracy: str,
    model_support: float,
    conf: GateConf,
    focal: FocalCheck | None = None,
) -> GateDecision:
    """Accept the direct estimate only when every criterion passes; the reason names the first
    that failed (or summarises the pass). focal: the focal-length profile (core.focal), when
    measured."""
    if degeneracy in conf.reject_degeneracies:
        return GateDecision(False, f"degenerate geometry: {degeneracy}", "degeneracy")
    if focal is not None and focal.evidence > conf.max_focal_evidence:
        return GateDecision(
            False,
            f"the matches fit focal lengths about {focal.best_factor:.2g}x the given ones much "
            f"better than the given ones (evidence {focal.evidence:.0f} > "
            f"{conf.max_focal_evidence:.0f}): the camera intrinsics (focal length, image size) "
            "or the lens distortion model are likely wrong",
            "focal_length",
        )
    if model_support < conf.min_model_support:
        return GateDecision(
            False,
            f"the matches fit a fundamental matrix much better than an essential matrix under "
            f"the given intrinsics (support ratio {model_support:.2f} < "
            f"{conf.min_model_support:.2f}): the camera intrinsics (focal length, principal "
            "point, image size) or the lens distortion model are likely wrong",
            "model_support",
        )
    if not conf.fitted:
        return GateDecision(
            False,
            f"no gate fitted for this matcher{' (' + conf.source + ')' if conf.source else ''}: "
            "run scripts/calibrate_trust.py for it, or set direct.gate weights",
            "unfitted",
        )
    if num_inliers < conf.min_inliers:
        return GateDecision(False, f"{num_inliers} inliers < {conf.min_inliers}", "min_inliers")
    if p_wrong > conf.max_p_wrong:
        return GateDecision(False, f"P(wrong) {p_wrong:.2f} > {conf.max_p_wrong:.2f}", "p_wrong")
    if rotation_sigma_deg > conf.max_rotation_sigma_deg:
        return GateDecision(
            False,
            f"rotation std {rotation_sigma_deg:.2f} deg > {conf.max_rotation_sigma_deg:.2f}",
            "rotation_sigma",
        )
    reason = f"accepted: P(wrong) {p_wrong:.3f}, rotation std {rotation_sigma_deg:.2f} deg"
    unconfirmed = focal.unconfirmed() if focal is not None else ""
    if unconfirmed:
        # An orbit pair cannot check the focal length (core.focal): the trust above holds only
        # for a right camera_info, and the message says so.
        reason += f"; {unconfirmed}, so the answer relies on the given intrinsics"
    return GateDecision(True, reason, "accepted")
