"""Direct two-view relative pose (first cut: ORB + MAGSAC essential matrix + cheirality).

The geometry-core issue replaces the internals (matcher registry, refinement, calibrated
covariance, degeneracy checks); the entry point `estimate_two_view` and `TwoViewEstimate`
are the seam the pipeline uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .types import Keyframe, RelativePose

DEFAULT_CONF = {
    "num_features": 2000,
    "ransac_threshold_px": 1.0,
    "ransac_confidence": 0.9999,
    "min_inliers": 30,
}


@dataclass
class TwoViewEstimate:
    """Result of the direct path. pose is None when no geometry could be estimated."""

    pose: RelativePose | None
    num_matches: int
    num_inliers: int
    confidence: float
    reason: str = ""
    info: dict = field(default_factory=dict)


def estimate_two_view(kf_a: Keyframe, kf_b: Keyframe, conf: dict | None = None) -> TwoViewEstimate:
    conf = {**DEFAULT_CONF, **(conf or {})}
    orb = cv2.ORB_create(nfeatures=conf["num_features"])
    kp_a, des_a = orb.detectAndCompute(kf_a.gray(), None)
    kp_b, des_b = orb.detectAndCompute(kf_b.gray(), None)
    if des_a is None or des_b is None or len(kp_a) < 5 or len(kp_b) < 5:
        return TwoViewEstimate(None, 0, 0, 0.0, "too few keypoints")
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(des_a, des_b)
    if len(matches) < 5:
        return TwoViewEstimate(None, len(matches), 0, 0.0, "too few matches")
    pts_a = np.float64([kp_a[m.queryIdx].pt for m in matches])
    pts_b = np.float64([kp_b[m.trainIdx].pt for m in matches])
    # Normalise with each camera's intrinsics so different cameras share one threshold.
    na = cv2.undistortPoints(pts_a[:, None], kf_a.K, None)[:, 0]
    nb = cv2.undistortPoints(pts_b[:, None], kf_b.K, None)[:, 0]
    focal = 0.25 * (kf_a.K[0, 0] + kf_a.K[1, 1] + kf_b.K[0, 0] + kf_b.K[1, 1])
    E, mask = cv2.findEssentialMat(
        na, nb, np.eye(3), method=cv2.USAC_MAGSAC,
        prob=conf["ransac_confidence"], threshold=conf["ransac_threshold_px"] / focal,
    )
    if E is None or E.shape != (3, 3):
        return TwoViewEstimate(None, len(matches), 0, 0.0, "essential matrix estimation failed")
    n_inl, R_ab, t_ab, mask = cv2.recoverPose(E, na, nb, np.eye(3), mask=mask)
    if n_inl < conf["min_inliers"]:
        return TwoViewEstimate(None, len(matches), int(n_inl), 0.0, f"only {n_inl} inliers")
    # recoverPose gives x_b = R_ab x_a + t_ab; the pose of B in A is its inverse.
    R = R_ab.T
    t = -R_ab.T @ t_ab.ravel()
    t /= np.linalg.norm(t)
    cov = np.diag([1e6, 1e6, 1e6, 1e-4, 1e-4, 1e-4])
    confidence = float(min(1.0, n_inl / (3.0 * conf["min_inliers"])))
    return TwoViewEstimate(RelativePose(R, t, cov, False), len(matches), int(n_inl), confidence)
