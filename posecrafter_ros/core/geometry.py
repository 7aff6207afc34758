"""Robust two-view relative pose from point matches, with degeneracy checks.

    matches -> calibrated rays -> essential matrix (LO-RANSAC / MAGSAC++) -> cheirality
    -> non-linear refinement on the inliers (Sampson error) -> degeneracy checks

Two estimator backends, chosen by `conf["estimator"]`:
- "poselib": PoseLib's LO-RANSAC with the 5-point solver, cheirality and a Levenberg-Marquardt
  refinement of the pose on the inliers' Sampson error built in (the default: measured more
  accurate and faster on our data, see docs/geometry.md);
- "opencv": OpenCV USAC (MAGSAC++) essential matrix, `recoverPose` (cheirality), then our own
  Levenberg-Marquardt refinement (scipy) on the Sampson error.
Convention of this module: x_b = R_ab x_a + t_ab (the epipolar one); core.twoview converts to
the pose of B in A.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .covariance import sampson_residuals, so3_exp, tangent_basis

DEFAULT_GEOMETRY_CONF: dict[str, Any] = {
    "estimator": "poselib",  # "poselib" (LO-RANSAC + LM) or "opencv" (USAC MAGSAC++ + our LM)
    "threshold_px": 1.0,  # inlier threshold on the epipolar (Sampson) error, pixels
    "confidence": 0.9999,  # RANSAC success probability
    "max_iterations": 10000,  # RANSAC iteration cap
    "seed": 0,  # RANSAC seed (reproducible answers)
    "min_inliers": 15,  # fewer inliers: degeneracy "too_few_inliers"
    "min_parallax_deg": 1.0,  # median inlier parallax below this: "pure_rotation"
    "planar_ratio": 0.9,  # homography inliers / essential inliers above this: "planar"
    # Also fit F without K: model_support = E inliers / F inliers, and core.focal's profile of
    # the focal length on the F inliers (core.twoview.measure).
    "check_intrinsics": True,
    "focal_tolerance": 1.25,  # a best focal within [1/tol, tol] x the given one: no evidence
    "focal_sweep": 8.0,  # focal factors profiled: [1/sweep, sweep]
    "focal_step": 1.5,  # ratio between neighbouring factors of the profile
    "focal_max_points": 300,  # F inliers profiled (evenly subsampled beyond)
}

DEGENERACIES = ("none", "too_few_matches", "too_few_inliers", "pure_rotation", "planar")


@dataclass
class TwoViewGeometry:
    """An essential-matrix estimate in the epipolar convention x_b = R_ab x_a + t_ab.

    t_ab: unit vector. inliers: [M] bool over the input matches.
    parallax_deg: median angle between the inlier rays of B and the derotated rays of A.
    homography_ratio: homography inliers / essential inliers at the same threshold.
    model_support: essential inliers under the given K / fundamental-matrix inliers without K
        (at most 1): near 1 when K is right, clearly lower when the intrinsics or the lens
        model contradict the images (an F has two more degrees of freedom and needs no K).
    fundamental, fundamental_inliers: the best F (x_b^T F x_a = 0) and the matches it
        explains, found without K (core.focal profiles the focal length on them).
    For a pure rotation (degeneracy "pure_rotation") R_ab is refitted as a rotation of the
    bearings and t_ab is meaningless.
    """

    R_ab: np.ndarray
    t_ab: np.ndarray
    inliers: np.ndarray
    degeneracy: str = "none"
    parallax_deg: float = 0.0
    homography_ratio: float = 0.0
    model_support: float = 1.0
    fundamental: np.ndarray | None = None  # [3 x 3] F, when check_intrinsics and one fits
    fundamental_inliers: np.ndarray | None = None  # [M] bool, when check_intrinsics
    info: dict = field(default_factory=dict)

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())


def calibrate(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[N x 2] pixel coordinates -> [N x 2] normalised image coordinates (K^-1 x)."""
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    rays = homogeneous @ np.linalg.inv(K).T
    return rays[:, :2] / rays[:, 2:3]


def mean_focal(K_a: np.ndarray, K_b: np.ndarray) -> float:
    return 0.25 * float(K_a[0, 0] + K_a[1, 1] + K_b[0, 0] + K_b[1, 1])


def poselib_camera(K: np.ndarray) -> dict:
    # A PINHOLE camera's projection does not use width/height; they are informative only.
    return {
        "model": "PINHOLE",
        "width": int(2 * K[0, 2]),
        "height": int(2 * K[1, 2]),
        "params": [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])],
    }


def _ransac_options(conf) -> dict:
    """PoseLib's RANSAC options from the geometry conf (one threshold for E and F)."""
    return {
        "max_epipolar_error": float(conf["threshold_px"]),
        "success_prob": float(conf["confidence"]),
        "max_iterations": int(conf["max_iterations"]),
        "min_iterations": min(100, int(conf["max_iterations"])),
        "seed": int(conf["seed"]),
    }


def _estimate_poselib(
    pts_a, pts_b, K_a, K_b, conf
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    import poselib

    ransac = _ransac_options(conf)
    pose, info = poselib.estimate_relative_pose(
        pts_a, pts_b, poselib_camera(K_a), poselib_camera(K_b), ransac, {}
    )
    inliers = np.asarray(info.get("inliers", []), bool)
    if inliers.size != len(pts_a) or not inliers.any():
        return None
    return np.asarray(pose.R), np.asarray(pose.t), inliers


def _estimate_opencv(
    pts_a, pts_b, K_a, K_b, conf
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    xa, xb = calibrate(pts_a, K_a), calibrate(pts_b, K_b)
    threshold = float(conf["threshold_px"]) / mean_focal(K_a, K_b)
    E, mask = cv2.findEssentialMat(
        xa,
        xb,
        np.eye(3),
        method=cv2.USAC_MAGSAC,
        prob=float(conf["confidence"]),
        threshold=threshold,
        maxIters=int(conf["max_iterations"]),
    )
    if E is None or E.shape != (3, 3):
        return None
    _, R, t, mask = cv2.recoverPose(E, xa, xb, np.eye(3), mask=mask)
    inliers = mask.ravel() > 0
    if inliers.sum() < 6:
        return None
    R, t = refine_relative_pose(R, t.ravel(), xa[inliers], xb[inliers])
    return R, t, inliers


def refine_relative_pose(
    R_ab: np.ndarray, t_ab: np.ndarray, xa: np.ndarray, xb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on the Sampson residuals of calibrated inliers xa, xb: [N x 2].

    Parameters: a rotation increment (R <- exp([w]x) R) and a tangent-plane step of the unit t.
    """
    from scipy.optimize import least_squares

    t_ab = t_ab / np.linalg.norm(t_ab)
    basis = tangent_basis(t_ab)

    def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = t_ab + basis @ p[3:]
        return so3_exp(p[:3]) @ R_ab, t / np.linalg.norm(t)

    result = least_squares(
        lambda p: sampson_residuals(*unpack(p), xa, xb), np.zeros(5), method="lm"
    )
    return unpack(result.x)


def inlier_parallax_deg(R_ab: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> float:
    """Median angle (degrees) between rays of B and the rotated rays of A (0: pure rotation)."""
    ra = np.concatenate([xa, np.ones((len(xa), 1))], axis=1) @ R_ab.T
    rb = np.concatenate([xb, np.ones((len(xb), 1))], axis=1)
    cos = np.sum(ra * rb, axis=1) / (np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1))
    return float(np.degrees(np.median(np.arccos(np.clip(cos, -1.0, 1.0)))))


def robust_fundamental(
    pts_a: np.ndarray, pts_b: np.ndarray, conf: dict[str, Any]
) -> tuple[np.ndarray | None, np.ndarray]:
    """(F or None, [M] bool inliers) of the best fundamental matrix of pixels pts_a, pts_b:
    [M x 2] (no intrinsics; x_b^T F x_a = 0), with PoseLib's LO-RANSAC at the essential
    matrix's threshold (same Sampson error) and its refinement on the inliers."""
    import poselib

    if len(pts_a) < 8:
        return None, np.zeros(len(pts_a), bool)
    F, info = poselib.estimate_fundamental(pts_a, pts_b, _ransac_options(conf), {})
    inliers = np.asarray(info.get("inliers", []), bool)
    if inliers.size != len(pts_a) or not inliers.any():
        return None, np.zeros(len(pts_a), bool)
    return np.asarray(F), inliers


def rotation_from_bearings(xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """R_ab minimising sum |b_i - R_ab a_i|^2 over unit bearings of xa, xb: [N x 2] (Kabsch):
    the relative rotation of a camera that only rotated."""
    a = np.concatenate([xa, np.ones((len(xa), 1))], axis=1)
    b = np.concatenate([xb, np.ones((len(xb), 1))], axis=1)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def homography_inliers(xa: np.ndarray, xb: np.ndarray, threshold: float) -> int:
    """Inliers of the best homography between calibrated points (same threshold units)."""
    if len(xa) < 4:
        return 0
    H, mask = cv2.findHomography(xa, xb, cv2.USAC_MAGSAC, threshold)
    return 0 if H is None else int(mask.sum())


def estimate_relative_geometry(
    pts_a: np.ndarray,
    pts_b: np.ndarray,
    K_a: np.ndarray,
    K_b: np.ndarray,
    conf: dict[str, Any] | None = None,
) -> TwoViewGeometry | None:
    """Robust relative pose of matched pixels pts_a, pts_b: [M x 2]; None if nothing fits.

    The degeneracy field says why an estimate should not be trusted even when one exists.
    """
    conf = {**DEFAULT_GEOMETRY_CONF, **(conf or {})}
    pts_a = np.ascontiguousarray(pts_a, np.float64)
    pts_b = np.ascontiguousarray(pts_b, np.float64)
    if len(pts_a) < 5:
        return None
    estimators = {"poselib": _estimate_poselib, "opencv": _estimate_opencv}
    if conf["estimator"] not in estimators:
        raise ValueError(
            f"unknown estimator '{conf['estimator']}'; choose one of {sorted(estimators)}"
        )
    found = estimators[conf["estimator"]](pts_a, pts_b, K_a, K_b, conf)
    if found is None:
        return None
    R_ab, t_ab, inliers = found
    t_ab = t_ab / np.linalg.norm(t_ab)
    xa, xb = calibrate(pts_a[inliers], K_a), calibrate(pts_b[inliers], K_b)
    parallax = inlier_parallax_deg(R_ab, xa, xb)
    threshold = float(conf["threshold_px"]) / mean_focal(K_a, K_b)
    h_ratio = homography_inliers(xa, xb, threshold) / max(len(xa), 1)
    if inliers.sum() < int(conf["min_inliers"]):
        degeneracy = "too_few_inliers"
    elif parallax < float(conf["min_parallax_deg"]):
        degeneracy = "pure_rotation"
        R_ab = rotation_from_bearings(xa, xb)
    elif h_ratio > float(conf["planar_ratio"]):
        degeneracy = "planar"
    else:
        degeneracy = "none"
    support, F, f_inliers = 1.0, None, None
    if conf["check_intrinsics"]:
        F, f_inliers = robust_fundamental(pts_a, pts_b, conf)
        support = min(1.0, int(inliers.sum()) / max(int(f_inliers.sum()), 1))
    return TwoViewGeometry(
        R_ab, t_ab, inliers, degeneracy, parallax, h_ratio, support, F, f_inliers
    )
