"""Oracle bridge: real frames of a sequence offered as FMS candidates (InterPose's upper bound).

`OracleSource(views).candidates_between(a, b)` offers, with `span="between"` (default), the
sequence frames strictly between A and B, walked from A to B, when both are found in it (by
identity, or equal frame_id + stamp, or identical pixels) - the frames a robot recorded while
moving from A to B; for a closed loop (`cyclic=True`, e.g. when `fms.ends_overlap` finds the
sequence's first and last frames matching) the shorter way round. With `span="all"`,
or when A or B is not in the sequence, every other frame is a candidate (for posed image sets
whose order is not the order of capture, e.g. a ring assembled from several sweeps).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .types import CandidateFrame, Keyframe


def same_keyframe(x: Keyframe, y: Keyframe) -> bool:
    if x is y:
        return True
    if x.frame_id and x.frame_id == y.frame_id and x.stamp_ns == y.stamp_ns:
        return True
    return x.image.shape == y.image.shape and np.array_equal(x.image, y.image)


class OracleSource:
    def __init__(self, views: Sequence[Keyframe], cyclic: bool = False, span: str = "between"):
        if span not in ("between", "all"):
            raise ValueError(f"span must be 'between' or 'all', got {span!r}")
        self.views = list(views)
        self.cyclic = bool(cyclic)
        self.span = span

    def index_of(self, keyframe: Keyframe | int) -> int | None:
        if isinstance(keyframe, (int, np.integer)):
            if not 0 <= int(keyframe) < len(self.views):
                raise IndexError(f"view index {keyframe} outside 0..{len(self.views) - 1}")
            return int(keyframe)
        return next((i for i, v in enumerate(self.views) if same_keyframe(v, keyframe)), None)

    def between_indices(self, ia: int, ib: int) -> list[int]:
        """Indices strictly between ia and ib along the sequence (shorter arc on a ring), in
        path order from ia to ib: downstream, sequence neighbours are matched with each other
        (the selector's neighbour window, the pose model's pair window), so a list walked the
        wrong way (B's side first, or a ring's two ends joined at the wrap) pairs views that
        do not overlap and leaves an end without its real neighbours."""
        n = len(self.views)
        step = 1 if ib > ia else -1
        inside = list(range(ia + step, ib, step))
        if self.cyclic:
            outside = [(ia - step * k) % n for k in range(1, n - len(inside) - 1)]
            if len(outside) < len(inside):
                return outside
        return inside

    def candidates_between(
        self, a: Keyframe | int, b: Keyframe | int, max_candidates: int | None = None
    ) -> list[CandidateFrame]:
        """Candidate frames for bridging a -> b (keyframes or indices into the sequence).

        max_candidates: keep at most this many, evenly spaced along the sequence.
        """
        ia, ib = self.index_of(a), self.index_of(b)
        if self.span == "between" and ia is not None and ib is not None:
            chosen = self.between_indices(ia, ib)
        else:
            chosen = [i for i in range(len(self.views)) if i not in (ia, ib)]
        if max_candidates is not None and len(chosen) > max_candidates:
            keep = np.linspace(0, len(chosen) - 1, max_candidates).round().astype(int)
            chosen = [chosen[k] for k in sorted(set(keep))]
        return [CandidateFrame(self.views[i], i, "oracle") for i in chosen]
