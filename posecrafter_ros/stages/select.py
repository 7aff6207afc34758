"""Feature Matching Selector (PoseCrafter §3.3): keep the candidates that match both ends best.

Each candidate frame is matched against I0 and IT; its score is the number of RANSAC inliers
against I0 plus the number against IT (paper: ORB with 2000 keypoints, RANSAC). The top k = 6
candidates whose score passes a threshold are kept. I0's and IT's features are extracted once
per call and candidate size, with a search index (LSH for ORB) that every candidate is matched
against.

Like with like: I0 and IT are matched at the candidates' geometry. Generated candidates are
512x320, while keyframes may come from a 1920x1080 camera; ORB's pyramid (8 levels x 1.2)
spans only 3.6x, so full-resolution ends barely match small candidates. Each end is therefore
cover-cropped to the candidate size (as the video models saw it, intrinsics mapped) before its
features are extracted; candidates of the ends' own size (oracle frames) are matched as is.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from ..core.imageops import resize_to_model
from ..core.matching import Features, Matcher, get_matcher
from ..core.types import CandidateFrame, Keyframe, RunContext, Selection

DEFAULT_FMS_CONF: dict[str, Any] = {
    "matcher": {"name": "orb", "num_features": 2000, "fast_threshold": 20},  # paper: ORB 2000
    "top_k": 6,  # frames kept (paper: 6)
    "min_score": 40,  # a kept frame needs at least this many inliers in total
    "min_inliers_each": 0,  # ... and this many against each end (0: total score only, as the paper)
    "ransac_threshold_px": 2.0,  # fundamental-matrix RANSAC threshold (no intrinsics needed)
    "ransac_confidence": 0.999,
    "ransac_max_iterations": 1000,
}


def ransac_inliers(pts_a: np.ndarray, pts_b: np.ndarray, conf: dict[str, Any]) -> int:
    """Inliers of the best fundamental matrix between matched pixels pts_a, pts_b: [M x 2]."""
    if len(pts_a) < 8:
        return 0
    F, mask = cv2.findFundamentalMat(
        pts_a,
        pts_b,
        cv2.USAC_FAST,
        float(conf["ransac_threshold_px"]),
        float(conf["ransac_confidence"]),
        int(conf["ransac_max_iterations"]),
    )
    return 0 if F is None or mask is None else int(mask.sum())


class FeatureMatchingSelector:
    """FrameSelector: score = inliers(candidate, I0) + inliers(candidate, IT), keep the top k."""

    def __init__(self, conf: dict[str, Any] | None = None):
        conf = dict(conf or {})
        conf.pop("type", None)
        unknown = sorted(set(conf) - set(DEFAULT_FMS_CONF))
        if unknown:
            raise ValueError(f"unknown FMS conf keys {unknown}; valid: {sorted(DEFAULT_FMS_CONF)}")
        self.conf = {**DEFAULT_FMS_CONF, **conf}
        self.matcher: Matcher = get_matcher(self.conf["matcher"])

    @classmethod
    def from_config(cls, conf: dict[str, Any]) -> "FeatureMatchingSelector":
        return cls(conf)

    def _inliers(self, index, feats_end: Features, feats: Features) -> int:
        pairs = self.matcher.match_to_index(index, feats_end, feats)
        return ransac_inliers(
            feats_end.keypoints[pairs[:, 0]], feats.keypoints[pairs[:, 1]], self.conf
        )

    def score_candidates(
        self,
        a: Keyframe,
        b: Keyframe,
        candidates: Sequence[CandidateFrame],
        ctx: RunContext | None = None,
    ) -> list[tuple[int, int]]:
        """(inliers vs A, inliers vs B) for every candidate, in order."""
        ends_by_size: dict[tuple[int, int], tuple] = {}
        scores = []
        for i, candidate in enumerate(candidates):
            image = candidate.keyframe.image
            size = (image.shape[1], image.shape[0])
            if size not in ends_by_size:
                ends_by_size[size] = tuple(self._end_features(end, size) for end in (a, b))
            (index_a, feats_a), (index_b, feats_b) = ends_by_size[size]
            feats = self.matcher.extract(image)
            scores.append(
                (self._inliers(index_a, feats_a, feats), self._inliers(index_b, feats_b, feats))
            )
            if ctx is not None:
                ctx.report((i + 1) / max(len(candidates), 1))
        return scores

    def _end_features(self, end: Keyframe, size: tuple[int, int]) -> tuple[Any, Features]:
        """(search index, features) of a keyframe cover-cropped to `size` (width, height)."""
        if (end.image.shape[1], end.image.shape[0]) != size:
            image, _, _ = resize_to_model(end.image, end.K, size)
        else:
            image = end.image
        feats = self.matcher.extract(image)
        return self.matcher.build_index(feats), feats

    def select(
        self, a: Keyframe, b: Keyframe, candidates: Sequence[CandidateFrame], ctx: RunContext
    ) -> Selection:
        per_side = self.score_candidates(a, b, candidates, ctx)
        totals = [sa + sb for sa, sb in per_side]
        eligible = [
            i
            for i, (sa, sb) in enumerate(per_side)
            if sa + sb >= int(self.conf["min_score"])
            and min(sa, sb) >= int(self.conf["min_inliers_each"])
        ]
        # Best first; ties keep the candidates' order (stable sort).
        ranked = sorted(eligible, key=lambda i: -totals[i])[: int(self.conf["top_k"])]
        return Selection(ranked, [totals[i] for i in ranked], totals)
