"""The confidence gate: answer from the direct two-view estimate, or bridge.

The direct estimate can be wrong in a way its residuals do not show: with little overlap,
RANSAC finds a consistent-looking pose among false matches (repeated structure, textureless
background). The gate therefore models the probability that the estimate is wrong (rotation
error >= 5 degrees) from the support RANSAC found, a logistic function of the inlier count n
and the inlier ratio r = n / matches:

    p_wrong = sigmoid(bias + w_log_inliers * ln(n) + w_inlier_ratio * r)

The default weights were fitted (maximum likelihood) on every templeRing pair within 90 degrees
with the default ORB matcher and are a property of that matcher: refit them for another
matcher with `scripts/gate_report.py --fit`. The estimate is accepted when p_wrong, the
rotation uncertainty and the degeneracy flags all pass their thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .config import check_keys


@dataclass
class GateConf:
    bias: float = 22.91  # support model: logistic bias
    w_log_inliers: float = -5.93  # support model: weight of ln(inliers)
    w_inlier_ratio: float = 10.87  # support model: weight of inliers / matches
    max_p_wrong: float = 0.1  # accept when P(rotation error >= 5 deg) is below this
    max_rotation_sigma_deg: float = 3.0  # ... and the rotation std (covariance) is below this
    min_inliers: int = 30  # ... and at least this many inliers
    reject_degeneracies: tuple[str, ...] = ("too_few_matches", "too_few_inliers")

    @classmethod
    def from_dict(cls, conf: dict[str, Any] | None) -> "GateConf":
        conf = dict(conf or {})
        check_keys("direct.gate", conf, (f.name for f in fields(cls)))
        if "reject_degeneracies" in conf:
            conf["reject_degeneracies"] = tuple(conf["reject_degeneracies"])
        return cls(**conf)


def probability_wrong(num_inliers: int, num_matches: int, conf: GateConf) -> float:
    """P(rotation error >= 5 deg) of a RANSAC estimate with this support (1 without inliers)."""
    if num_inliers <= 0 or num_matches <= 0:
        return 1.0
    z = (
        conf.bias
        + conf.w_log_inliers * math.log(num_inliers)
        + conf.w_inlier_ratio * (num_inliers / num_matches)
    )
    return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


@dataclass
class GateDecision:
    accepted: bool
    reason: str


def decide(
    p_wrong: float, rotation_sigma_deg: float, num_inliers: int, degeneracy: str, conf: GateConf
) -> GateDecision:
    """Accept the direct estimate only when every criterion passes; the reason names the first
    that failed (or summarises the pass)."""
    if degeneracy in conf.reject_degeneracies:
        return GateDecision(False, f"degenerate geometry: {degeneracy}")
    if num_inliers < conf.min_inliers:
        return GateDecision(False, f"{num_inliers} inliers < {conf.min_inliers}")
    if p_wrong > conf.max_p_wrong:
        return GateDecision(False, f"P(wrong) {p_wrong:.2f} > {conf.max_p_wrong:.2f}")
    if rotation_sigma_deg > conf.max_rotation_sigma_deg:
        return GateDecision(
            False, f"rotation std {rotation_sigma_deg:.2f} deg > {conf.max_rotation_sigma_deg:.2f}"
        )
    return GateDecision(
        True, f"accepted: P(wrong) {p_wrong:.3f}, rotation std {rotation_sigma_deg:.2f} deg"
    )
