"""The classical baseline row: plain OpenCV five-point relative pose.

Features (ORB or SIFT) -> brute-force matching with Lowe's ratio test -> essential matrix
with RANSAC (cv2.findEssentialMat on intrinsics-normalised points) -> cheirality check
(cv2.recoverPose). Nothing of the project's own matching or gating is used: this is the
reference a user would write with OpenCV alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.types import Keyframe

DEFAULT_CONF = {
    "features": "sift",  # "sift" or "orb"
    "num_features": 2000,
    "fast_threshold": 20,  # ORB only: OpenCV's default FAST threshold
    "ratio": 0.8,  # Lowe's ratio test
    "ransac_threshold_px": 1.0,  # Sampson distance, in pixels of the mean focal length
    "ransac_confidence": 0.999,
    "min_inliers": 5,  # the five-point minimum
}
FEATURES = ("sift", "orb")


@dataclass
class BaselineEstimate:
    """x_1 = R_0to1 x_0 + t_0to1 (t unit length); R/t are None when no pose was found."""

    R_0to1: np.ndarray | None
    t_0to1: np.ndarray | None
    num_matches: int
    num_inliers: int
    reason: str = ""


def _detector(conf: dict):
    import cv2

    if conf["features"] == "sift":
        return cv2.SIFT_create(nfeatures=conf["num_features"]), cv2.NORM_L2
    if conf["features"] == "orb":
        orb = cv2.ORB_create(nfeatures=conf["num_features"], fastThreshold=conf["fast_threshold"])
        return orb, cv2.NORM_HAMMING
    raise ValueError(f"unknown baseline features {conf['features']!r} (known: {FEATURES})")


def estimate_five_point(kf0: Keyframe, kf1: Keyframe, conf: dict | None = None) -> BaselineEstimate:
    """Relative pose of the pair (kf0 -> kf1) with OpenCV only."""
    import cv2

    conf = {**DEFAULT_CONF, **(conf or {})}
    detector, norm = _detector(conf)
    kp0, des0 = detector.detectAndCompute(kf0.gray(), None)
    kp1, des1 = detector.detectAndCompute(kf1.gray(), None)
    if des0 is None or des1 is None or len(kp0) < 2 or len(kp1) < 2:
        return BaselineEstimate(None, None, 0, 0, "too few keypoints")
    knn = cv2.BFMatcher(norm).knnMatch(des0, des1, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < conf["ratio"] * m[1].distance]
    if len(good) < conf["min_inliers"]:
        return BaselineEstimate(None, None, len(good), 0, f"only {len(good)} matches")
    pts0 = np.float64([kp0[m.queryIdx].pt for m in good])
    pts1 = np.float64([kp1[m.trainIdx].pt for m in good])
    # Normalised coordinates let two different cameras share one RANSAC threshold.
    n0 = cv2.undistortPoints(pts0[:, None], kf0.K, None)[:, 0]
    n1 = cv2.undistortPoints(pts1[:, None], kf1.K, None)[:, 0]
    focal = float(np.mean([kf0.K[0, 0], kf0.K[1, 1], kf1.K[0, 0], kf1.K[1, 1]]))
    E, mask = cv2.findEssentialMat(
        n0,
        n1,
        np.eye(3),
        method=cv2.RANSAC,
        prob=conf["ransac_confidence"],
        threshold=conf["ransac_threshold_px"] / focal,
    )
    if E is None or E.shape[0] < 3:
        return BaselineEstimate(None, None, len(good), 0, "no essential matrix")
    # findEssentialMat may stack several solutions; recoverPose takes the first.
    inliers, R, t, _ = cv2.recoverPose(E[:3], n0, n1, np.eye(3), mask=mask)
    if inliers < conf["min_inliers"]:
        return BaselineEstimate(None, None, len(good), int(inliers), f"only {inliers} inliers")
    return BaselineEstimate(R, t.ravel() / np.linalg.norm(t), len(good), int(inliers))
