"""ORB keypoints + brute-force Hamming matching (the paper's FMS default: 2000 keypoints)."""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from .base import Features, Matcher, to_gray


class OrbMatcher(Matcher):
    default_conf: ClassVar[dict[str, Any]] = {
        "max_side": 1024,  # working resolution: longest image side features are extracted at
        "num_features": 4000,  # keypoints per image (FMS uses the paper's 2000)
        "scale_factor": 1.2,  # pyramid decimation ratio
        "num_levels": 8,  # pyramid levels
        "fast_threshold": 10,  # FAST corner threshold; low finds corners on weak texture
        "ratio": 0.9,  # Lowe ratio on Hamming distances (mutual nearest neighbours), None: off
        "index_ratio": 0.8,  # Lowe ratio of the LSH index matching (one direction, no mutual check)
        "lsh_tables": 4,  # LSH index (build_index): number of hash tables
        "lsh_key_bits": 16,  # ... bits per hash key
    }

    def _init(self) -> None:
        c = self.conf
        self.orb = cv2.ORB_create(
            nfeatures=int(c["num_features"]),
            scaleFactor=float(c["scale_factor"]),
            nlevels=int(c["num_levels"]),
            fastThreshold=int(c["fast_threshold"]),
        )

    def _extract(self, image: np.ndarray) -> Features:
        gray = to_gray(image)
        kps, desc = self.orb.detectAndCompute(gray, None)
        pts = np.array([k.pt for k in kps], np.float64).reshape(-1, 2)
        if desc is None:
            desc = np.zeros((0, 32), np.uint8)
        return Features(
            pts, desc, (gray.shape[1], gray.shape[0]), {"signs": descriptor_signs(desc)}
        )

    def build_index(self, feats: Features) -> cv2.FlannBasedMatcher:
        """An LSH index of the descriptors: querying 2000 descriptors takes a few ms, about ten
        times faster than brute force (FMS matches every candidate against two fixed frames)."""
        index = cv2.FlannBasedMatcher(
            {
                "algorithm": 6,
                "table_number": int(self.conf["lsh_tables"]),
                "key_size": int(self.conf["lsh_key_bits"]),
                "multi_probe_level": 1,
            },
            {"checks": 32},
        )
        if len(feats):
            index.add([feats.descriptors])
            index.train()
        return index

    def match_to_index(
        self, index: cv2.FlannBasedMatcher, feats_reference: Features, feats_query: Features
    ) -> np.ndarray:
        if len(feats_reference) < 2 or len(feats_query) < 2:
            return np.zeros((0, 2), np.int64)
        ratio = self.conf["index_ratio"]
        pairs = [
            (knn[0].trainIdx, knn[0].queryIdx)
            for knn in index.knnMatch(feats_query.descriptors, k=2)
            if len(knn) == 2 and (ratio is None or knn[0].distance < ratio * knn[1].distance)
        ]
        return np.array(pairs, np.int64).reshape(-1, 2)

    def match(self, feats_a: Features, feats_b: Features) -> np.ndarray:
        return hamming_mutual_match(
            feats_a.extra["signs"], feats_b.extra["signs"], self.conf["ratio"]
        )


def descriptor_signs(desc: np.ndarray) -> np.ndarray:
    """[N x 8B] float32 of +-1 per bit of binary descriptors [N x B] uint8."""
    return np.unpackbits(desc, axis=1).astype(np.float32) * 2.0 - 1.0


def hamming_mutual_match(
    signs_a: np.ndarray, signs_b: np.ndarray, ratio: float | None
) -> np.ndarray:
    """[M x 2] mutual nearest neighbours under the Hamming distance, with Lowe's ratio test.

    signs_*: [N x D] +-1 bit signs; Hamming = (D - a.b) / 2, so one float matrix product gives
    every distance (much faster here than OpenCV's brute-force Hamming matcher). Only row-wise
    and contiguous column-wise reductions are used (numpy's argmin down columns is slow).
    """
    if len(signs_a) < 2 or len(signs_b) < 2:
        return np.zeros((0, 2), np.int64)
    dim = signs_a.shape[1]
    similarity = signs_a @ signs_b.T  # [Na x Nb], exact integers: dim - 2 * Hamming
    rows = np.arange(len(signs_a))
    forward = np.argmax(similarity, axis=1)
    best = similarity[rows, forward]
    # Mutual: the forward match is also the best of its column (ties resolved below).
    keep = best == similarity.max(axis=0)[forward]
    if ratio is not None:
        similarity[rows, forward] = -np.inf
        second = similarity.max(axis=1)
        keep &= (dim - best) < ratio * (dim - second)
    pairs = np.stack([rows[keep], forward[keep]], axis=1).astype(np.int64)
    _, first = np.unique(pairs[:, 1], return_index=True)
    return pairs[np.sort(first)]
