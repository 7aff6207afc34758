"""The direct path end to end on real templeRing images (test/data/templering)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posecrafter_ros.core.twoview import estimate_two_view
from posecrafter_ros.eval.datasets import load_middlebury, make_pair
from posecrafter_ros.eval.frames import pair_keyframes
from posecrafter_ros.eval.metrics import pair_errors

RING = Path(__file__).parent / "data" / "templering"


@pytest.fixture(scope="module")
def views():
    return load_middlebury(RING)


@pytest.mark.parametrize("i, j", [(0, 2), (0, 4)])  # 15 and 31 degrees (the fixture's pairs)
def test_medium_overlap_pairs_are_accurate_and_accepted(views, i, j):
    pair = make_pair(views[i], views[j])
    est = estimate_two_view(*pair_keyframes(pair))
    rot_err, trans_err = pair_errors(est.pose.to_epipolar(), pair)
    assert rot_err < 3.0 and trans_err < 10.0
    assert est.accepted and est.degeneracy == "none"
    assert est.num_inliers == int(est.inliers.sum()) and est.num_matches == est.inliers.size
    assert np.isclose(np.linalg.norm(est.pose.t), 1.0) and not est.pose.scale_known
    assert 0.0 <= est.confidence <= 1.0


def test_extreme_pair_is_not_accepted(views):
    pair = make_pair(views[0], views[12])  # 130 degrees, no overlap
    assert pair.rotation_deg > 120
    est = estimate_two_view(*pair_keyframes(pair))
    assert not est.accepted and est.reason


def test_unknown_conf_sections_are_errors(views):
    pair = make_pair(views[0], views[2])
    with pytest.raises(ValueError, match="unknown direct-path conf"):
        estimate_two_view(*pair_keyframes(pair), {"matchr": {"name": "orb"}})
