"""ORB keypoints + brute-force Hamming matching (the paper's FMS default: 2000 keypoints)."""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from .base import Features, Matcher, to_gray


class OrbMatcher(Matcher):
    default_conf: ClassVar[dict[str, Any]] = {
        "num_features": 4000,  # keypoints per image (FMS uses the paper's 2000)
        "scale_factor": 1.2,  # pyramid decimation ratio
        "num_levels": 8,  # pyramid levels
        "fast_threshold": 10,  # FAST corner threshold; low finds corners on weak texture
        "ratio": 0.9,  # Lowe ratio on Hamming distances, None to disable
    }

    def _init(self) -> None:
        c = self.conf
        self.orb = cv2.ORB_create(
            nfeatures=int(c["num_features"]), scaleFactor=float(c["scale_factor"]),
            nlevels=int(c["num_levels"]), fastThreshold=int(c["fast_threshold"]),
        )
        self.bf = cv2.BFMatcher(cv2.NORM_HAMMING)

    def extract(self, image: np.ndarray) -> Features:
        gray = to_gray(image)
        kps, desc = self.orb.detectAndCompute(gray, None)
        pts = np.array([k.pt for k in kps], np.float64).reshape(-1, 2)
        if desc is None:
            desc = np.zeros((0, 32), np.uint8)
        return Features(pts, desc, (gray.shape[1], gray.shape[0]))

    def match(self, feats_a: Features, feats_b: Features) -> np.ndarray:
        return knn_mutual_match(self.bf, feats_a.descriptors, feats_b.descriptors, self.conf["ratio"])


def knn_mutual_match(
    bf: cv2.BFMatcher, desc_a: np.ndarray, desc_b: np.ndarray, ratio: float | None
) -> np.ndarray:
    """[M x 2] mutual nearest neighbours passing the ratio test, via OpenCV's brute force."""
    if len(desc_a) < 2 or len(desc_b) < 2:
        return np.zeros((0, 2), np.int64)
    fwd = bf.knnMatch(desc_a, desc_b, k=2)
    bwd = bf.match(desc_b, desc_a)
    back = np.full(len(desc_b), -1, np.int64)
    for m in bwd:
        back[m.queryIdx] = m.trainIdx
    out = []
    for pair in fwd:
        if len(pair) < 2:
            continue
        best, second = pair
        if ratio is not None and best.distance >= ratio * second.distance:
            continue
        if back[best.trainIdx] == best.queryIdx:
            out.append((best.queryIdx, best.trainIdx))
    return np.array(out, np.int64).reshape(-1, 2)
