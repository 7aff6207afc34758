"""Chain selection: the widest A-B path through the candidates' match graph (core/chain.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from posecrafter_ros.core.chain import bounded_pairs, chain_selection, widest_path
from posecrafter_ros.core.fms import FeatureMatchingSelector
from posecrafter_ros.core.oracle import OracleSource
from posecrafter_ros.core.types import Keyframe, RunContext
from posecrafter_ros.eval.datasets import load_middlebury
from posecrafter_ros.eval.frames import read_rgb

RING = Path(__file__).parent / "data" / "templering"

# A = 0, candidates 1..4, B = 5. Paths: 0-1-5 (bottleneck 20), 0-2-3-5 (60), 0-4-5 (50).
GRAPH = {(0, 1): 100, (1, 5): 20, (0, 2): 80, (2, 3): 60, (3, 5): 90, (0, 4): 50, (4, 5): 50}


def test_widest_path_hand_computed():
    assert widest_path(6, GRAPH, 0, 5, max_hops=3) == ([0, 2, 3, 5], 60.0)
    assert widest_path(6, GRAPH, 0, 5, max_hops=2) == ([0, 4, 5], 50.0)  # 3 hops not allowed
    assert widest_path(6, GRAPH, 0, 5, max_hops=1) is None  # no direct edge
    assert widest_path(6, {(0, 1): 5, (2, 3): 5}, 0, 3, max_hops=5) is None  # disconnected


def test_widest_path_prefers_fewer_hops_among_equally_wide():
    graph = {(0, 1): 50, (1, 4): 50, (0, 2): 50, (2, 3): 50, (3, 4): 70}
    assert widest_path(5, graph, 0, 4, max_hops=4) == ([0, 1, 4], 50.0)


def test_chain_selection_keeps_the_chain_then_fills_by_paper_score():
    # Candidate i is graph node i + 1. Paper scores favour candidates 0 and 3 (near the ends).
    scores = [120, 80, 150, 100]  # inliers vs A + inliers vs B per candidate
    kept = chain_selection(4, GRAPH, scores, eligible=[0, 1, 2, 3], top_k=3, min_edge=30)
    assert kept == [1, 2, 0]
    # At 70 inliers per link only and 3-B remain: no chain.
    assert chain_selection(4, GRAPH, scores, [0, 1, 2, 3], top_k=3, min_edge=70) is None
    assert chain_selection(4, GRAPH, scores, [0, 1, 2, 3], top_k=1, min_edge=30) == [3]
    # The direct A-B link never counts as a chain.
    assert chain_selection(1, {(0, 2): 500, (0, 1): 5, (1, 2): 5}, [10], [0], 3, 30) is None


def test_bounded_pairs_are_sequence_neighbours():
    assert list(bounded_pairs(4, 2)) == [(1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]
    assert list(bounded_pairs(3, 0)) == []


def test_fms_chain_mode_joins_ends_the_paper_rule_leaves_apart():
    views = load_middlebury(RING)
    keyframes = [Keyframe(read_rgb(v.image_path), v.K, frame_id=v.name) for v in views]
    # templeR0012..templeR0022 in file order are consecutive ring views 7.7 deg apart.
    a, b = keyframes[12], keyframes[22]
    candidates = OracleSource(keyframes).candidates_between(12, 22)
    conf = {"top_k": 3, "min_inliers_each": 0, "min_score": 0}
    chain = FeatureMatchingSelector({**conf, "mode": "chain"}).select(
        a, b, candidates, RunContext()
    )
    paper = FeatureMatchingSelector({**conf, "mode": "paper"}).select(
        a, b, candidates, RunContext()
    )
    chain_views = sorted(candidates[i].index for i in chain.indices)
    paper_views = sorted(candidates[i].index for i in paper.indices)
    # 77 deg in 3 frames: hops of about 20 deg, so the chain spreads over the span...
    gaps = [y - x for x, y in zip([12] + chain_views, chain_views + [22])]
    assert max(gaps) <= 4, chain_views
    # ... while the paper's top 3 by score sit next to the ends and leave a wider hole.
    paper_gaps = [y - x for x, y in zip([12] + paper_views, paper_views + [22])]
    assert max(paper_gaps) > max(gaps), (paper_views, chain_views)


def test_fms_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        FeatureMatchingSelector({"mode": "widest"})
