"""SIFT keypoints + L2 mutual nearest neighbours with Lowe's ratio test."""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from .base import Features, Matcher, to_gray


class SiftMatcher(Matcher):
    default_conf: ClassVar[dict[str, Any]] = {
        "max_side": 1024,  # working resolution: longest image side features are extracted at
        "num_features": 4000,  # keypoints per image, 0 = all
        "contrast_threshold": 0.02,  # lower than OpenCV's 0.04: more keypoints on weak texture
        "ratio": 0.85,  # Lowe ratio, None to disable
        "root_sift": True,  # Hellinger-normalised descriptors (RootSIFT) match better
    }

    def _init(self) -> None:
        self.sift = cv2.SIFT_create(
            nfeatures=int(self.conf["num_features"]),
            contrastThreshold=float(self.conf["contrast_threshold"]),
        )
        self.bf = cv2.BFMatcher(cv2.NORM_L2)

    def _extract(self, image: np.ndarray) -> Features:
        gray = to_gray(image)
        kps, desc = self.sift.detectAndCompute(gray, None)
        pts = np.array([k.pt for k in kps], np.float64).reshape(-1, 2)
        if desc is None:
            desc = np.zeros((0, 128), np.float32)
        elif self.conf["root_sift"]:
            desc = np.sqrt(desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-8)).astype(
                np.float32
            )
        return Features(pts, desc, (gray.shape[1], gray.shape[0]))

    def match(self, feats_a: Features, feats_b: Features) -> np.ndarray:
        return knn_mutual_match(
            self.bf, feats_a.descriptors, feats_b.descriptors, self.conf["ratio"]
        )


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
