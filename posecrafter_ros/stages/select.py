"""Feature Matching Selector (PoseCrafter §3.3): keep the candidates that match both ends best.

Each candidate frame is matched against I0 and IT; its score is the number of RANSAC inliers
against I0 plus the number against IT (paper: ORB with 2000 keypoints, RANSAC). With
`mode: paper` the top k = 6 candidates whose score passes a threshold are kept. With
`mode: chain` the k frames are chosen so that A and B stay joined through them (core/chain.py):
candidates are also matched against their sequence neighbours, and the widest path of that
match graph comes first. Every frame's features are extracted once per call; I0 and IT get a
search index (LSH for ORB) that every candidate is matched against.

Like with like: I0 and IT are matched at the candidates' geometry. Generated candidates are
512x320, while keyframes may come from a 1920x1080 camera; ORB's pyramid (8 levels x 1.2)
spans only 3.6x, so full-resolution ends barely match small candidates. Each end is therefore
cover-cropped to the candidate size (as the video models saw it, intrinsics mapped) before its
features are extracted; candidates of the ends' own size (oracle frames) are matched as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..core.chain import bounded_pairs, chain_selection
from ..core.config import strict_config
from ..core.imageops import resize_to_model
from ..core.matching import Features, Matcher, get_matcher
from ..core.types import CandidateFrame, Keyframe, RunContext, Selection

SELECTION_MODES = ("paper", "chain")


def _paper_matcher() -> dict[str, Any]:
    return {"name": "orb", "num_features": 2000, "fast_threshold": 20}  # paper: ORB 2000


@dataclass(frozen=True)
class FmsConfig:
    """Profile section `bridge.selector` (type `fms`)."""

    mode: str = "paper"  # "paper": top k by score; "chain": a widest A-B path first
    matcher: dict[str, Any] = field(default_factory=_paper_matcher)  # core.matching registry
    top_k: int = 6  # frames kept (paper: 6)
    min_score: int = 40  # a kept frame needs at least this many inliers in total
    min_inliers_each: int = 0  # ... and this many against each end (0: total only, as the paper)
    ransac_threshold_px: float = 2.0  # fundamental-matrix RANSAC threshold (no intrinsics needed)
    ransac_confidence: float = 0.999
    ransac_max_iterations: int = 1000
    neighbour_window: int = 3  # chain: candidates matched with the next this many in sequence
    min_edge_inliers: int = 30  # chain: a view pair with fewer inliers is no link (chance level)

    def __post_init__(self) -> None:
        if self.mode not in SELECTION_MODES:
            raise ValueError(f"FMS mode must be one of {SELECTION_MODES}, got {self.mode!r}")
        if self.top_k < 1 or self.neighbour_window < 1:
            raise ValueError("FMS top_k and neighbour_window must be >= 1")

    @classmethod
    def from_dict(cls, conf: Mapping[str, Any] | None) -> "FmsConfig":
        return strict_config(cls, "bridge.selector (fms)", conf)


def ransac_inliers(pts_a: np.ndarray, pts_b: np.ndarray, conf: FmsConfig) -> int:
    """Inliers of the best fundamental matrix between matched pixels pts_a, pts_b: [M x 2]."""
    if len(pts_a) < 8:
        return 0
    try:
        F, mask = cv2.findFundamentalMat(
            pts_a,
            pts_b,
            cv2.USAC_FAST,
            float(conf.ransac_threshold_px),
            float(conf.ransac_confidence),
            int(conf.ransac_max_iterations),
        )
    except cv2.error:
        # USAC asserts when no fundamental matrix is defined: every match fits one homography
        # (the same view twice, a pure rotation, a plane). Those matches still say how much
        # the two frames overlap.
        H, mask = cv2.findHomography(pts_a, pts_b, cv2.RANSAC, float(conf.ransac_threshold_px))
        return 0 if H is None or mask is None else int(mask.sum())
    return 0 if F is None or mask is None else int(mask.sum())


def ends_overlap(views: Sequence[Keyframe], min_inliers: int = 30) -> bool:
    """Whether the first and the last frame of a sequence see the same scene (a closed loop):
    at least `min_inliers` F-RANSAC inliers between them (FMS's matcher and RANSAC)."""
    if len(views) < 3:
        return False
    conf = FmsConfig()
    pts_first, pts_last = get_matcher(conf.matcher).match_images(views[0].image, views[-1].image)
    return ransac_inliers(pts_first, pts_last, conf) >= min_inliers


class FeatureMatchingSelector:
    """FrameSelector: score = inliers(candidate, I0) + inliers(candidate, IT), keep the top k."""

    def __init__(self, conf: FmsConfig | None = None):
        self.conf = conf or FmsConfig()
        self.matcher: Matcher = get_matcher(self.conf.matcher)

    @classmethod
    def from_config(cls, conf: Mapping[str, Any] | None) -> "FeatureMatchingSelector":
        """From the profile section (a dict; unknown keys are an error)."""
        return cls(FmsConfig.from_dict(conf))

    def _inliers(self, index, feats_end: Features, feats: Features) -> int:
        pairs = self.matcher.match_to_index(index, feats_end, feats)
        return ransac_inliers(
            feats_end.keypoints[pairs[:, 0]], feats.keypoints[pairs[:, 1]], self.conf
        )

    def _match_graph(
        self,
        a: Keyframe,
        b: Keyframe,
        candidates: Sequence[CandidateFrame],
        ctx: RunContext | None,
        with_neighbours: bool,
    ) -> dict[tuple[int, int], int]:
        """Inliers {(i, j): n} over graph nodes 0 = A, 1..m = candidates, m + 1 = B: every
        candidate against both ends, and (with_neighbours) against its sequence neighbours."""
        m = len(candidates)
        ends_by_size: dict[tuple[int, int], tuple] = {}  # candidate size -> both ends' features
        neighbour_pairs = (
            list(bounded_pairs(m, self.conf.neighbour_window)) if with_neighbours else []
        )
        steps = max(m + len(neighbour_pairs), 1)
        feats: dict[int, Features] = {}
        weights: dict[tuple[int, int], int] = {}
        for node, candidate in enumerate(candidates, start=1):
            image = candidate.keyframe.image
            size = (image.shape[1], image.shape[0])
            if size not in ends_by_size:
                ends_by_size[size] = tuple(self._end_features(end, size) for end in (a, b))
            (index_a, feats_a), (index_b, feats_b) = ends_by_size[size]
            feats[node] = self.matcher.extract(image)
            weights[(0, node)] = self._inliers(index_a, feats_a, feats[node])
            weights[(node, m + 1)] = self._inliers(index_b, feats_b, feats[node])
            if ctx is not None:
                ctx.report(node / steps)
        for done, (i, j) in enumerate(neighbour_pairs, start=m + 1):
            pairs = self.matcher.match(feats[i], feats[j])
            weights[(i, j)] = ransac_inliers(
                feats[i].keypoints[pairs[:, 0]], feats[j].keypoints[pairs[:, 1]], self.conf
            )
            if ctx is not None:
                ctx.report(done / steps)
        return weights

    def score_candidates(
        self,
        a: Keyframe,
        b: Keyframe,
        candidates: Sequence[CandidateFrame],
        ctx: RunContext | None = None,
    ) -> list[tuple[int, int]]:
        """(inliers vs A, inliers vs B) for every candidate, in order."""
        weights = self._match_graph(a, b, candidates, ctx, with_neighbours=False)
        m = len(candidates)
        return [(weights[(0, n)], weights[(n, m + 1)]) for n in range(1, m + 1)]

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
        chain_mode = self.conf.mode == "chain"
        weights = self._match_graph(a, b, candidates, ctx, with_neighbours=chain_mode)
        m = len(candidates)
        per_side = [(weights[(0, n)], weights[(n, m + 1)]) for n in range(1, m + 1)]
        totals = [sa + sb for sa, sb in per_side]
        eligible = [
            i
            for i, (sa, sb) in enumerate(per_side)
            if sa + sb >= self.conf.min_score and min(sa, sb) >= self.conf.min_inliers_each
        ]
        top_k = self.conf.top_k
        if chain_mode:
            kept = chain_selection(m, weights, totals, eligible, top_k, self.conf.min_edge_inliers)
            if kept is not None:
                return Selection(kept, [totals[i] for i in kept], totals)
        # Paper rule (and the chain mode's answer when no path joins A and B): best first; ties
        # keep the candidates' order (stable sort).
        ranked = sorted(eligible, key=lambda i: -totals[i])[:top_k]
        return Selection(ranked, [totals[i] for i in ranked], totals)
