"""Oracle candidates and the Feature Matching Selector (paper mode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posecrafter_ros.core.oracle import OracleSource
from posecrafter_ros.core.types import Keyframe, RunContext
from posecrafter_ros.eval.datasets import load_middlebury
from posecrafter_ros.eval.frames import read_rgb
from posecrafter_ros.stages.select import FeatureMatchingSelector, FmsConfig

RING = Path(__file__).parent / "data" / "templering"


@pytest.fixture(scope="module")
def ring():
    views = load_middlebury(RING)
    return views, [Keyframe(read_rgb(v.image_path), v.K, frame_id=v.name) for v in views]


def dummy(i: int) -> Keyframe:
    return Keyframe(np.full((4, 4), i, np.uint8), np.eye(3), frame_id=f"f{i}", stamp_ns=i)


def test_oracle_candidates_between_all_and_cyclic():
    frames = [dummy(i) for i in range(10)]
    source = OracleSource(frames)
    assert [c.index for c in source.candidates_between(2, 6)] == [3, 4, 5]
    # Walked from A to B: B before A in the sequence gives the frames from A's side first.
    assert [c.index for c in source.candidates_between(frames[6], frames[2])] == [5, 4, 3]
    assert all(c.source == "oracle" for c in source.candidates_between(2, 6))
    assert [c.index for c in OracleSource(frames, cyclic=True).candidates_between(1, 8)] == [0, 9]
    # The shorter way round a ring goes through the wrap, still from A to B.
    ring = OracleSource(frames, cyclic=True)
    assert [c.index for c in ring.candidates_between(8, 1)] == [9, 0]
    assert [c.index for c in ring.candidates_between(2, 8)] == [1, 0, 9]
    assert [c.index for c in ring.candidates_between(8, 2)] == [9, 0, 1]
    assert [c.index for c in ring.candidates_between(9, 0)] == []
    assert len(OracleSource(frames, span="all").candidates_between(1, 8)) == 8
    outside = dummy(99)
    assert len(source.candidates_between(outside, frames[3])) == 9  # A unknown: all but B
    assert [c.index for c in source.candidates_between(0, 9, max_candidates=3)] == [1, 5, 8]
    with pytest.raises(IndexError):
        source.candidates_between(0, 10)


def test_fms_prefers_frames_that_see_both_ends_and_extracts_ends_once(ring):
    views, keyframes = ring
    a, b = keyframes[0], keyframes[4]  # 31 degrees apart
    source = OracleSource(keyframes[:12], span="all")
    candidates = source.candidates_between(0, 4)
    selector = FeatureMatchingSelector(FmsConfig(top_k=3, min_inliers_each=30))
    calls = []
    extract = selector.matcher.extract
    selector.matcher.extract = lambda image: calls.append(image.shape) or extract(image)
    try:
        selection = selector.select(a, b, candidates, RunContext())
    finally:
        selector.matcher.extract = extract
    assert len(calls) == 2 + len(candidates)  # I0 and IT once, each candidate once
    chosen = {candidates[i].index for i in selection.indices}
    assert chosen == {1, 2, 3}  # the views between them on the ring
    assert selection.scores == sorted(selection.scores, reverse=True)
    assert len(selection.all_scores) == len(candidates)


def test_fms_scores_do_not_depend_on_the_keyframes_resolution(ring):
    """Like with like: A and B are matched at the candidates' 512x320 geometry, so the same
    ends given at 3x their resolution (a 1920x1440 camera) score the candidates alike.
    (Matching the ends at full resolution, the summed inliers dropped ~8x at 3x.)"""
    import cv2

    from posecrafter_ros.core.imageops import resize_to_model
    from posecrafter_ros.core.types import CandidateFrame

    _, keyframes = ring
    a, b = keyframes[0], keyframes[4]
    candidates = [
        CandidateFrame(Keyframe(*resize_to_model(kf.image, kf.K)[:2]), i, "oracle")
        for i, kf in enumerate(keyframes[1:4], start=1)
    ]

    def upscaled(kf: Keyframe, factor: int) -> Keyframe:
        size = (kf.image.shape[1] * factor, kf.image.shape[0] * factor)
        image = cv2.resize(kf.image, size, interpolation=cv2.INTER_CUBIC)
        return Keyframe(image, np.diag([factor, factor, 1.0]) @ kf.K)

    selector = FeatureMatchingSelector()
    totals = {}
    for factor in (1, 3):
        scores = selector.score_candidates(upscaled(a, factor), upscaled(b, factor), candidates)
        totals[factor] = sum(sa + sb for sa, sb in scores)
    assert totals[1] > 100
    assert abs(totals[3] - totals[1]) <= 0.3 * totals[1], totals
