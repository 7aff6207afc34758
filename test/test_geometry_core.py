"""Robust two-view geometry, covariance, degeneracy checks and the gate (synthetic + templeRing)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2

from posecrafter_ros.core.covariance import pose_covariance, rotation_mahalanobis2, so3_exp, so3_log
from posecrafter_ros.core.gate import GateConf, decide, probability_wrong
from posecrafter_ros.core.geometry import calibrate, estimate_relative_geometry
from posecrafter_ros.eval.metrics import rotation_error_deg, translation_angle_deg

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
RING = Path(__file__).parent / "data" / "templering"


def synthetic_pair(rng, R_b_in_a, t_b_in_a, n=200, noise_px=0.5, planar=False):
    """Pixels of random points seen by camera A (identity) and camera B (pose of B in A)."""
    pts = rng.uniform([-1.5, -1.0, 4.0], [1.5, 1.0, 7.0], size=(n, 3))
    if planar:
        pts[:, 2] = 5.0
    in_b = (pts - t_b_in_a) @ R_b_in_a  # p_B = R^T (p_A - t)
    proj_a = pts @ K.T
    proj_b = in_b @ K.T
    px_a = proj_a[:, :2] / proj_a[:, 2:] + rng.normal(0, noise_px, (n, 2))
    px_b = proj_b[:, :2] / proj_b[:, 2:] + rng.normal(0, noise_px, (n, 2))
    return px_a, px_b


def to_b_in_a(geometry):
    return geometry.R_ab.T, -geometry.R_ab.T @ geometry.t_ab


@pytest.mark.parametrize("estimator", ["poselib", "opencv"])
def test_recovers_synthetic_pose_with_outliers(estimator):
    rng = np.random.default_rng(0)
    R_true = so3_exp(np.radians([5.0, -20.0, 3.0]))
    t_true = np.array([1.0, 0.1, 0.2])
    px_a, px_b = synthetic_pair(rng, R_true, t_true)
    px_b[:40] = rng.uniform([0, 0], [640, 480], (40, 2))  # 20 % outliers
    geometry = estimate_relative_geometry(px_a, px_b, K, K, {"estimator": estimator})
    R, t = to_b_in_a(geometry)
    # 0.5 px noise, 45 degree field of view: rotation and translation trade off a little.
    assert rotation_error_deg(R, R_true) < 1.0
    assert translation_angle_deg(t, t_true) < 5.0
    assert geometry.inliers[40:].mean() > 0.9 and geometry.inliers[:40].mean() < 0.2
    assert geometry.degeneracy == "none"


def test_degeneracies_are_named():
    rng = np.random.default_rng(1)
    R = so3_exp(np.radians([0.0, 10.0, 0.0]))
    px_a, px_b = synthetic_pair(rng, R, np.zeros(3) + 1e-9, noise_px=0.3)
    assert estimate_relative_geometry(px_a, px_b, K, K).degeneracy == "pure_rotation"
    px_a, px_b = synthetic_pair(rng, R, np.array([1.0, 0.0, 0.0]), noise_px=0.3, planar=True)
    assert estimate_relative_geometry(px_a, px_b, K, K).degeneracy == "planar"
    px_a, px_b = synthetic_pair(rng, R, np.array([1.0, 0.0, 0.0]), n=12, noise_px=0.3)
    assert estimate_relative_geometry(px_a, px_b, K, K).degeneracy == "too_few_inliers"


def test_so3_log_inverts_exp_including_near_pi():
    rng = np.random.default_rng(2)
    for w in list(rng.normal(size=(20, 3))) + [np.array([0.0, 0.0, math.pi - 1e-8])]:
        w = w if np.linalg.norm(w) < math.pi else w / np.linalg.norm(w) * 3.0
        assert np.allclose(so3_exp(so3_log(so3_exp(w))), so3_exp(w), atol=1e-6)


def test_gauss_newton_covariance_is_calibrated_on_gaussian_noise():
    """With pure Gaussian pixel noise and no inflation, ~95% of rotation errors fall inside the
    95% region: the Sampson-Jacobian covariance has the right size and orientation."""
    rng = np.random.default_rng(3)
    R_true = so3_exp(np.radians([2.0, -15.0, 1.0]))
    t_true = np.array([0.8, 0.05, 0.1])
    inside = []
    for _ in range(40):
        px_a, px_b = synthetic_pair(rng, R_true, t_true, n=150, noise_px=1.0)
        geometry = estimate_relative_geometry(px_a, px_b, K, K, {"threshold_px": 4.0})
        R, t = to_b_in_a(geometry)
        inl = geometry.inliers
        cov = pose_covariance(R, t, calibrate(px_a[inl], K), calibrate(px_b[inl], K))
        inside.append(rotation_mahalanobis2(cov, R, R_true) < chi2.ppf(0.95, 3))
    assert 0.8 <= np.mean(inside) <= 1.0


def test_covariance_contract_against_monte_carlo_spread_in_a_frame():
    """The reported rotation covariance (default inflation, without the rotation floor) against
    the spread of 200 noisy re-estimates, both in camera A's frame (R_est = exp([w]x) R_true).
    B looks at the points from the side and is rolled, so A's and B's axes differ: a covariance
    expressed in B's frame fails, as do an overconfident one and one far too wide. Gaussian
    noise is the easy case (Gauss-Newton alone is calibrated on it), so the inflated covariance
    must be wider than the spread, but within 5x."""
    rng = np.random.default_rng(7)
    R_true = so3_exp(np.radians([0.0, -90.0, 0.0])) @ so3_exp(np.radians([0.0, 0.0, 90.0]))
    t_true = np.array([5.5, 0.0, 5.5])  # B at the side of the point cloud, looking at it
    errors, covariances = [], []
    for _ in range(200):
        px_a, px_b = synthetic_pair(rng, R_true, t_true, n=150, noise_px=1.0)
        geometry = estimate_relative_geometry(px_a, px_b, K, K, {"threshold_px": 4.0})
        R, t = to_b_in_a(geometry)
        inl = geometry.inliers
        cov = pose_covariance(
            R,
            t,
            calibrate(px_a[inl], K),
            calibrate(px_b[inl], K),
            # On synthetic Gaussian noise the Gauss-Newton covariance needs only the factor the
            # inlier truncation costs; on real images each matcher's fitted inflation is larger.
            inflation=2.0,
        )
        errors.append(so3_log(R @ R_true.T))
        covariances.append(cov[3:, 3:])
    errors = np.array(errors)
    spread = errors.T @ errors / len(errors)
    predicted = np.mean(covariances, axis=0)
    # Generalised eigenvalues: predicted / observed variance along every direction.
    whiten = np.linalg.inv(np.linalg.cholesky(spread))
    ratios = np.linalg.eigvalsh(whiten @ predicted @ whiten.T)
    assert ratios.min() >= 1.0 and ratios.max() <= 5.0, ratios


def test_covariance_layout_scale_direction_and_pure_rotation():
    rng = np.random.default_rng(4)
    R_true = so3_exp(np.radians([0.0, 10.0, 0.0]))
    t_true = np.array([1.0, 0.0, 0.0])
    px_a, px_b = synthetic_pair(rng, R_true, t_true)
    geometry = estimate_relative_geometry(px_a, px_b, K, K)
    R, t = to_b_in_a(geometry)
    xa, xb = calibrate(px_a, K), calibrate(px_b, K)
    cov = pose_covariance(R, t, xa, xb, scale_variance=1e4)
    assert cov.shape == (6, 6) and np.allclose(cov, cov.T)
    assert np.all(np.linalg.eigvalsh(cov) > -1e-12)
    assert t @ cov[:3, :3] @ t == pytest.approx(1e4, rel=1e-3)  # unobservable scale: inflated
    assert np.trace(cov[3:, 3:]) < 1e-3  # rotation well determined
    degenerate = pose_covariance(R, t, xa, xb, scale_variance=1e4, translation_observable=False)
    assert np.allclose(degenerate[:3, :3], 1e4 * np.eye(3)) and np.allclose(degenerate[:3, 3:], 0)
    widened = pose_covariance(R, t, xa, xb, p_wrong=0.5)
    assert np.trace(widened[3:, 3:]) > 100 * np.trace(cov[3:, 3:])


def test_gate_decisions():
    fitted = GateConf(bias=10.0, weights={"log_inliers": -2.0, "coverage": -4.0})
    strong = {"log_inliers": math.log(500), "coverage": 0.8}
    weak = {"log_inliers": math.log(40), "coverage": 0.1}
    assert probability_wrong(strong, fitted) < probability_wrong(weak, fitted) <= 1.0
    assert decide(0.01, 0.5, 400, "none", 1.0, fitted).criterion == "accepted"
    # Each refusal names the criterion that decided it (the first to fail).
    for args, criterion in [
        ((0.01, 0.5, 400, "too_few_inliers", 1.0), "degeneracy"),
        ((0.5, 0.5, 400, "none", 1.0), "p_wrong"),
        ((0.01, 12.0, 400, "none", 1.0), "rotation_sigma"),
        ((0.01, 0.5, 10, "none", 1.0), "min_inliers"),
        ((0.5, 12.0, 10, "none", 1.0), "min_inliers"),
    ]:
        decision = decide(*args, fitted)
        assert not decision.accepted and decision.criterion == criterion, args
    wrong_k = decide(0.01, 0.5, 400, "none", 0.3, fitted)
    assert not wrong_k.accepted and "intrinsics" in wrong_k.reason
    assert wrong_k.criterion == "model_support"
    # A matcher without fitted numbers is never accepted, whatever its support.
    unfitted = GateConf(source="core/matching/trust/x.json does not exist")
    assert probability_wrong(strong, unfitted) == 1.0
    refused = decide(0.0, 0.5, 400, "none", 1.0, unfitted)
    assert not refused.accepted and "calibrate_trust" in refused.reason
    assert refused.criterion == "unfitted"
    with pytest.raises(ValueError, match=r"in direct.gate; valid keys"):
        GateConf.from_dict({"max_pwrong": 0.1})
    with pytest.raises(ValueError, match="unknown support features"):
        GateConf.from_dict({"weights": {"inlier_ratio": 1.0}})


def test_gate_default_thresholds_just_above_and_below():
    """The fixed thresholds (P(wrong) 0.1 unless fitted, rotation std 10 deg, 20 inliers, model
    support 0.5): each criterion alone flips the decision across its threshold."""
    conf = GateConf(bias=0.0, weights={"log_inliers": -1.0})
    ok = {
        "p_wrong": 0.01,
        "rotation_sigma_deg": 0.5,
        "num_inliers": 400,
        "degeneracy": "none",
        "model_support": 1.0,
    }
    assert decide(**ok, conf=conf).accepted
    for key, below, above in [
        ("p_wrong", 0.099, 0.101),
        ("rotation_sigma_deg", 9.99, 10.01),
    ]:
        assert decide(**{**ok, key: below}, conf=conf).accepted, key
        assert not decide(**{**ok, key: above}, conf=conf).accepted, key
    assert decide(**{**ok, "num_inliers": 20}, conf=conf).accepted
    assert not decide(**{**ok, "num_inliers": 19}, conf=conf).accepted
    assert decide(**{**ok, "model_support": 0.5}, conf=conf).accepted
    assert not decide(**{**ok, "model_support": 0.49}, conf=conf).accepted
    for degeneracy in ("too_few_matches", "too_few_inliers"):
        assert not decide(**{**ok, "degeneracy": degeneracy}, conf=conf).accepted
    # The support model: more inliers, less likely wrong.
    few, many = {"log_inliers": math.log(20)}, {"log_inliers": math.log(400)}
    assert probability_wrong(few, conf) > probability_wrong(many, conf)


def test_relative_pose_conversions_round_trip():
    from scipy.spatial.transform import Rotation

    from posecrafter_ros.core.types import RelativePose, world_to_camera

    rng = np.random.default_rng(3)
    R = Rotation.from_rotvec([0.2, -0.4, 0.1]).as_matrix()
    t = np.array([0.5, -0.2, 1.0])
    A = rng.normal(size=(6, 6))
    pose = RelativePose(R, t, A @ A.T, scale_known=True)
    # Epipolar convention: x_B = R_0to1 x_A + t_0to1 maps a point of A's frame into B's.
    R01, t01 = pose.to_epipolar()
    p_b = rng.normal(size=3)
    p_a = R @ p_b + t
    np.testing.assert_allclose(R01 @ p_a + t01, p_b)
    R_back, t_back = RelativePose.from_epipolar(R01, t01)
    np.testing.assert_allclose(R_back, R) and np.testing.assert_allclose(t_back, t)
    # Camera-to-world matrices of A and B give the same pose of B in A.
    c2w_a = np.eye(4)
    c2w_a[:3, :3] = Rotation.from_rotvec([0.0, 0.3, 0.0]).as_matrix()
    c2w_a[:3, 3] = [1.0, 2.0, 3.0]
    c2w_b = c2w_a @ np.block([[R, t[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])
    R_c, t_c = RelativePose.from_cam_to_world(c2w_a, c2w_b)
    np.testing.assert_allclose(R_c, R, atol=1e-12) and np.testing.assert_allclose(t_c, t)
    R_w2c, t_w2c = world_to_camera(c2w_a)
    np.testing.assert_allclose(R_w2c @ c2w_a[:3, 3] + t_w2c, 0, atol=1e-12)
    # inverse(): twice is the identity, and its covariance matches a numerical Jacobian.
    twice = pose.inverse().inverse()
    np.testing.assert_allclose(twice.R, R) and np.testing.assert_allclose(twice.t, t)
    np.testing.assert_allclose(twice.covariance, pose.covariance, atol=1e-9)

    def inverted(delta):
        Rp = Rotation.from_rotvec(delta[3:]).as_matrix() @ R
        tp = t + delta[:3]
        inv = RelativePose(Rp, tp, np.eye(6)).inverse()
        rot = Rotation.from_matrix(inv.R @ R).as_rotvec()  # inv.R = exp([w']x) R^T
        return np.concatenate([inv.t - pose.inverse().t, rot])

    eps = 1e-6
    J = np.stack([(inverted(eps * e) - inverted(-eps * e)) / (2 * eps) for e in np.eye(6)], 1)
    np.testing.assert_allclose(pose.inverse().covariance, J @ pose.covariance @ J.T, atol=1e-5)
