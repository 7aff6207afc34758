"""Does the given focal length agree with the matches? A profile of the calibrated fit.

A wrong focal length gives a confidently wrong pose: the essential matrix under the wrong K
still fits most matches to within a pixel (a focal 2-5x too long keeps the essential-vs-
fundamental inlier ratio near 1), so inlier counts cannot see it. Residuals can. Scale both
focal lengths by a common factor s (the principal points and aspect ratios as given), refit
the relative pose under K(s) to the matches a fundamental matrix explains (found without any
K, so the point set does not favour the given focal), and score the fit by the truncated
chi-square of its Sampson errors in units of the noise measured under F:

    score(s) = sum_i min((e_i(s) / sigma)^2, 9),   evidence = score(1) - min_s score(s)

(a profile log-likelihood ratio, robust to the few matches F absorbs but no essential matrix
explains). Where the focal length is observable, the score has a clear minimum near the true
focal. The evidence counts only when that minimum is more than a tolerance away from the
given focal (a focal a few percent off is not what this check is for).

Where two views cannot tell the focal length (Sturm, "On focal length calibration from two
views", CVPR 2001: optical axes that meet at a point equidistant from both centres, as on an
object ring or turntable; parallel axes; tiny rotation or pure translation), every focal
fits about equally well, the profile is flat and the evidence stays small: such a pair is
never flagged, and `interval` (the factors not significantly worse than the best) says so.
This is the equal-singular-value criterion of E(s) = K(s)_b^T F K(s)_a (Hartley & Zisserman,
"Multiple View Geometry", sec. 19.4) measured in image residuals, where it is well
conditioned. The bound on the evidence is fitted per matcher (scripts/calibrate_trust.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .covariance import skew
from .geometry import poselib_camera

# Profile likelihood ratio below which a focal factor stays inside the reported interval
# (chi-square, 1 dof, 99%).
CHI2_99_1DOF = 6.635
# Smallest residual noise (pixels) the evidence assumes: keypoints are not localised better.
MIN_NOISE_PX = 0.05
# Refits of the profile: (PoseLib loss type, loss scale in inlier thresholds) in turn. The
# robust one stays near its start; the graduated one starts with least squares (which
# converges from far) and narrows the robust loss so that no outlier it fitted stays fitted.
ROBUST_REFIT = (("CAUCHY", 1.0),)
RANSAC_OPTIONS = {"min_iterations": 5, "max_iterations": 50, "seed": 0}
GRADUATED_REFIT = (("TRIVIAL", 1.0), ("CAUCHY", 5.0), ("CAUCHY", 1.0))


@dataclass
class FocalCheck:
    """The calibrated fit's profile over a common focal factor s (1: the given focal lengths).

    best_factor: the s that fits best (interpolated); evidence: the profile likelihood ratio
    of the best fit against the given focal (s = 1), counted only when the best factor is
    outside the tolerance [1/tol, tol] (else 0); interval: the swept factors whose fit is
    not significantly worse than the best (99%) - open at both ends of the sweep when the
    focal length is not observable from this pair; num_points: residuals used; profile:
    focal factor -> likelihood ratio of its fit against the best.
    """

    best_factor: float = 1.0
    evidence: float = 0.0
    interval: tuple[float, float] = (0.0, math.inf)
    num_points: int = 0
    profile: dict[float, float] = field(default_factory=dict)

    def unconfirmed(self) -> str:
        """Which wrong focal lengths this pair cannot rule out, in words ("" when it rules out
        both longer and shorter ones, or was not measured): an accepted answer then rests on
        the given intrinsics alone, and its message says so."""
        if self.num_points == 0:
            return ""
        longer, shorter = not math.isfinite(self.interval[1]), self.interval[0] == 0.0
        if longer and shorter:
            return "any focal length fits these matches about as well as the given one"
        if longer:
            return (
                f"focal lengths longer than the given one (up to {max(self.profile):.0f}x) fit "
                "these matches about as well"
            )
        if shorter:
            return (
                f"focal lengths shorter than the given one (down to {min(self.profile):.2g}x) "
                "fit these matches about as well"
            )
        return ""

    @property
    def observable(self) -> bool:
        """Whether a wrong focal length could show on this pair in at least one direction."""
        return self.num_points > 0 and (self.interval[0] > 0.0 or math.isfinite(self.interval[1]))


def _sampson_px(F: np.ndarray, pts_a: np.ndarray, pts_b: np.ndarray) -> np.ndarray:
    """[N] Sampson errors (pixels) of pixel pairs under the fundamental matrix F (x_b^T F x_a)."""
    ha = np.concatenate([pts_a, np.ones((len(pts_a), 1))], axis=1)
    hb = np.concatenate([pts_b, np.ones((len(pts_b), 1))], axis=1)
    Fa, Ftb = ha @ F.T, hb @ F
    gradient2 = Fa[:, 0] ** 2 + Fa[:, 1] ** 2 + Ftb[:, 0] ** 2 + Ftb[:, 1] ** 2
    return np.sum(hb * Fa, axis=1) / np.sqrt(np.maximum(gradient2, 1e-300))


def with_focal_factor(K: np.ndarray, factor: float) -> np.ndarray:
    """K with both focal lengths times `factor` (principal point and aspect as given)."""
    scaled = np.array(K, np.float64)
    scaled[:2, :2] *= factor
    return scaled


def _essential_pose(E: np.ndarray):
    """A PoseLib pose (x_b = R x_a + t) whose [t]x R is the essential matrix nearest E (up to
    sign; any of its four decompositions has the same Sampson errors)."""
    import poselib

    u, _, vt = np.linalg.svd(E)
    u *= np.sign(np.linalg.det(u))
    vt *= np.sign(np.linalg.det(vt))
    pose = poselib.CameraPose()
    pose.R = u @ np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) @ vt
    pose.t = u[:, 2]
    return pose


def _parabola_minimum(costs: dict[float, float], best: float, spacing: float) -> float:
    """The minimum of the parabola through the costs at best - spacing, best, best + spacing
    (best itself when a neighbour is missing or the three are not convex)."""
    left, right = costs.get(best - spacing), costs.get(best + spacing)
    if left is None or right is None:
        return best
    curvature = left + right - 2.0 * costs[best]
    if curvature <= 0.0:
        return best
    return best + 0.5 * spacing * (left - right) / curvature


def check_focal(
    pts_a: np.ndarray,
    pts_b: np.ndarray,
    K_a: np.ndarray,
    K_b: np.ndarray,
    F: np.ndarray,
    pose_ab: tuple[np.ndarray, np.ndarray],
    conf: dict[str, Any],
) -> FocalCheck:
    """The focal profile of matched pixels pts_a, pts_b: [N x 2] that the fundamental matrix F
    (x_b^T F x_a = 0) explains. pose_ab: (R_ab, t_ab), the pose (x_b = R_ab x_a + t_ab)
    fitted under the given K_a, K_b. conf: the geometry conf
    (core.geometry.DEFAULT_GEOMETRY_CONF: the "focal_*" keys, and threshold_px, the inlier
    threshold the refits' robust loss starts from)."""
    import poselib

    if len(pts_a) < 12:
        return FocalCheck()
    keep = np.unique(np.linspace(0, len(pts_a) - 1, int(conf["focal_max_points"])).astype(int))
    pts_a = np.ascontiguousarray(pts_a[keep], np.float64)
    pts_b = np.ascontiguousarray(pts_b[keep], np.float64)
    step, steps = float(conf["focal_step"]), 0
    while step ** (steps + 1) <= float(conf["focal_sweep"]) * (1 + 1e-9):
        steps += 1
    # The residual noise, measured under F (which needs no K): the unit of the evidence.
    sigma = max(1.4826 * float(np.median(np.abs(_sampson_px(F, pts_a, pts_b)))), MIN_NOISE_PX)
    threshold_px = float(conf["threshold_px"])

    def score(ka: np.ndarray, kb: np.ndarray, pose) -> float:
        """The truncated chi-square of the Sampson errors under K_a(s), K_b(s): a point beyond
        3 sigma counts 9, however far, so the few points F absorbs but no essential matrix
        explains (repeated or planar structure) cannot decide the profile."""
        F_pose = np.linalg.inv(kb).T @ skew(pose.t) @ pose.R @ np.linalg.inv(ka)
        chi2 = (_sampson_px(F_pose, pts_a, pts_b) / sigma) ** 2
        return float(np.sum(np.minimum(chi2, 9.0)))

    def refit(ka: np.ndarray, kb: np.ndarray, start, schedule) -> tuple[float, Any]:
        """(score, pose) of the pose refined from `start` with each (loss, scale in inlier
        thresholds) of `schedule` in turn."""
        # PoseLib refines on calibrated points: its loss scale is in focal units.
        focal = 0.25 * (ka[0, 0] + ka[1, 1] + kb[0, 0] + kb[1, 1])
        cameras = (poselib_camera(ka), poselib_camera(kb))
        pose = start
        for loss, scale in schedule:
            bundle = {"loss_type": loss, "loss_scale": scale * threshold_px / focal}
            pose, _ = poselib.refine_relative_pose(
                pts_a, pts_b, pose, *cameras, {**bundle, "max_iterations": 25}
            )
        return score(ka, kb, pose), pose

    def ransac(ka: np.ndarray, kb: np.ndarray) -> tuple[float, Any]:
        """(score, pose) of PoseLib's LO-RANSAC essential matrix under K_a(s), K_b(s) (the
        points are F's inliers: few iterations find an all-inlier sample)."""
        options = {**RANSAC_OPTIONS, "max_epipolar_error": threshold_px}
        pose, _ = poselib.estimate_relative_pose(
            pts_a, pts_b, poselib_camera(ka), poselib_camera(kb), options, {}
        )
        return score(ka, kb, pose), pose

    scores: dict[float, float] = {}
    poses: dict[float, Any] = {}

    def evaluate(exponent: float, start) -> None:
        """The best fit at the focal factor step**exponent among the refits from `start` (a
        neighbour's pose) and from the essential matrix nearest K_b(s)^T F K_a(s). The fit is
        not convex: a robust refit stays in the start's basin, a least-squares one leaves it
        but may follow outliers; the profile keeps the best (every fit bounds it above)."""
        ka = with_focal_factor(K_a, step**exponent)
        kb = with_focal_factor(K_b, step**exponent)
        fits = [refit(ka, kb, start, ROBUST_REFIT), ransac(ka, kb)]
        if exponent == 0.0:
            fits.append((score(ka, kb, start), start))
        scores[exponent], poses[exponent] = min(fits, key=lambda f: f[0])

    # The sweep is a continuation from the given focal outwards (each factor also starts from
    # its neighbour's pose, so the profile follows one branch of solutions where F alone is
    # ambiguous), then half steps on both sides of the best factor.
    given = poselib.CameraPose()
    given.R, given.t = np.asarray(pose_ab[0], np.float64), np.asarray(pose_ab[1], np.float64)
    for direction in (1, -1):
        start = given
        for k in range(0 if direction > 0 else 1, steps + 1):
            evaluate(float(direction * k), start)
            start = poses[float(direction * k)]
    coarse_best = min(scores, key=scores.get)
    for half in (-0.5, 0.5):
        if abs(coarse_best + half) <= steps:
            evaluate(coarse_best + half, poses[coarse_best])
    best = min(scores, key=scores.get)
    best_exponent = _parabola_minimum(scores, best, 0.5)
    outside = abs(best_exponent) * math.log(step) > math.log(float(conf["focal_tolerance"]))
    plausible = [e for e, c in scores.items() if c - scores[best] <= CHI2_99_1DOF]
    low, high = min(plausible), max(plausible)
    return FocalCheck(
        best_factor=step**best_exponent,
        evidence=scores[0.0] - scores[best] if outside else 0.0,
        interval=(
            0.0 if low == -steps else step**low,
            math.inf if high == steps else step**high,
        ),
        num_points=len(pts_a),
        profile={step**e: c - scores[best] for e, c in sorted(scores.items())},
    )
