"""core.focal: the focal-length profile flags a focal that is too short or too long where two
views can tell, and stays silent where they cannot (an orbit around a fixated point)."""

from __future__ import annotations

import numpy as np
import pytest

from posecrafter_ros.core.covariance import so3_exp
from posecrafter_ros.core.focal import check_focal
from posecrafter_ros.core.gate import GateConf, decide
from posecrafter_ros.core.geometry import DEFAULT_GEOMETRY_CONF, estimate_relative_geometry

K_TRUE = np.array([[800.0, 0.0, 320.0], [0.0, 800.0, 240.0], [0.0, 0.0, 1.0]])


def _look_at(centre: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (R, t) of a camera at `centre` whose optical axis passes `target`."""
    z = (target - centre) / np.linalg.norm(target - centre)
    x = np.cross(np.array([0.0, -1.0, 0.0]), z)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    return R, -R @ centre


def _two_views(orbit: bool, seed: int = 0, noise_px: float = 0.3):
    """Pixels of 400 random points in two views. orbit: camera B is camera A rotated by 20 deg
    about a vertical axis through the point both look at (the two-view focal length is then
    not observable); else B moves sideways and turns freely (observable)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform([-2.0, -1.5, 4.0], [2.0, 1.5, 8.0], (400, 3))
    centre_a, target = np.zeros(3), np.array([0.0, 0.0, 6.0])
    if orbit:
        centre_b = target + so3_exp(np.radians([0.0, 20.0, 0.0])) @ (centre_a - target)
        poses = [_look_at(centre_a, target), _look_at(centre_b, target)]
    else:
        R_b = so3_exp(np.radians([8.0, -12.0, 5.0]))
        poses = [(np.eye(3), np.zeros(3)), (R_b, -R_b @ np.array([1.5, 0.0, 0.5]))]
    pixels = []
    for R, t in poses:
        x = (points @ R.T + t) @ K_TRUE.T
        pixels.append(x[:, :2] / x[:, 2:] + rng.normal(0.0, noise_px, (len(points), 2)))
    return pixels


def _check(pts_a, pts_b, factor: float):
    K = K_TRUE.copy()
    K[:2, :2] *= factor
    geometry = estimate_relative_geometry(pts_a, pts_b, K, K, DEFAULT_GEOMETRY_CONF)
    inliers = geometry.fundamental_inliers
    return check_focal(
        pts_a[inliers],
        pts_b[inliers],
        K,
        K,
        geometry.fundamental,
        (geometry.R_ab, geometry.t_ab),
        DEFAULT_GEOMETRY_CONF,
    )


@pytest.mark.parametrize("factor", [1 / 3, 1 / 2, 2.0, 3.3])
def test_a_wrong_focal_is_seen_where_two_views_can_tell(factor):
    pts_a, pts_b = _two_views(orbit=False)
    wrong = _check(pts_a, pts_b, factor)
    # The matches prefer the true focal (1 / factor times the given one) by far.
    assert wrong.best_factor == pytest.approx(1.0 / factor, rel=0.1)
    assert wrong.evidence > 200.0 and wrong.observable
    right = _check(pts_a, pts_b, 1.0)
    assert right.evidence == 0.0 and right.best_factor == pytest.approx(1.0, rel=0.1)
    assert right.interval[0] > 0.5 and right.interval[1] < 2.0


@pytest.mark.parametrize("factor", [1 / 2, 1.0, 3.3])
def test_an_orbit_is_never_flagged(factor):
    pts_a, pts_b = _two_views(orbit=True)
    check = _check(pts_a, pts_b, factor)
    # No focal length longer than the best fits significantly worse, nor does the given one.
    assert check.interval[1] == float("inf") and check.interval[0] <= min(1.0, 1.0 / factor)
    assert check.evidence < 15.0  # below the gate's floor (core.gate.GateConf)
    assert check.profile[1.0] < 15.0


def test_too_few_points_give_no_evidence():
    pts_a, pts_b = _two_views(orbit=False)
    check = check_focal(
        pts_a[:8], pts_b[:8], K_TRUE, K_TRUE, np.eye(3), (np.eye(3), np.ones(3)), {}
    )
    assert check.evidence == 0.0 and not check.observable


def _accept(focal):
    conf = GateConf(bias=-10.0, weights={}, max_p_wrong=0.5)
    return decide(0.001, 0.5, 300, "none", 1.0, conf, focal)


def test_an_accepted_orbit_answer_says_it_rests_on_the_given_intrinsics():
    orbit = _check(*_two_views(orbit=True), 3.3)
    decision = _accept(orbit)
    assert decision.accepted
    assert "about as well" in decision.reason
    assert "relies on the given intrinsics" in decision.reason
    # Where the pair pins the focal length down, the message claims nothing of the kind.
    general = _accept(_check(*_two_views(orbit=False), 1.0))
    assert general.accepted and "intrinsics" not in general.reason
