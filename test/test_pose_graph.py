"""eval/pose_graph.py: the direct path's loop closures in a GTSAM pose graph (issue: answers a
pose graph can trust). The covariance conversion is checked against sampling; the whole
protocol runs on the shipped fountain walk."""

from __future__ import annotations

from pathlib import Path

import gtsam  # requirements/base.txt
import numpy as np

from posecrafter_ros.core.covariance import so3_exp
from posecrafter_ros.core.types import RelativePose
from posecrafter_ros.eval.pose_graph import (
    LoopEdge,
    OdometryNoise,
    absolute_trajectory_error,
    chain,
    loop_closure_rows,
    optimise,
    scaled_edge,
    simulate_odometry,
    to_gtsam_covariance,
)

DATA = Path(__file__).parent / "data"


def test_covariance_reaches_gtsam_in_its_tangent_convention():
    """Perturb p_A = R p_B + t as the project's covariance says (R <- exp([w]x) R, t <- t + dt
    in A's frame); GTSAM's Logmap of T^-1 T' must spread as the converted covariance."""
    rng = np.random.default_rng(0)
    R, t = so3_exp(np.array([0.3, -0.8, 0.5])), np.array([1.0, -2.0, 0.5])
    L = rng.normal(size=(6, 6)) * 0.01
    cov = L @ L.T + np.diag([1e-4] * 3 + [4e-5] * 3)  # [dt, w], with correlations
    T = gtsam.Pose3(gtsam.Rot3(R), t)
    samples = []
    for xi in rng.multivariate_normal(np.zeros(6), cov, 20000):
        perturbed = gtsam.Pose3(gtsam.Rot3(so3_exp(xi[3:]) @ R), t + xi[:3])
        samples.append(gtsam.Pose3.Logmap(T.inverse().compose(perturbed)))
    empirical = np.cov(np.array(samples).T)
    expected = to_gtsam_covariance(cov, R)
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    assert np.abs(empirical - expected).max() / scale.max() < 0.05
    assert np.all(np.abs(empirical - expected) / scale < 0.1)


def test_an_unknown_scale_edge_is_free_only_along_its_baseline():
    t_unit = np.array([0.6, 0.0, 0.8])
    cov = np.diag([1e-4] * 3 + [1e-6] * 3)
    cov[:3, :3] += 1e6 * np.outer(t_unit, t_unit)  # the returned contract: scale unknown
    t, scaled = scaled_edge(t_unit, cov, baseline=3.0)
    assert np.allclose(t, 3.0 * t_unit)
    assert t_unit @ scaled[:3, :3] @ t_unit > 1e5  # still free along the baseline
    across = np.array([0.8, 0.0, -0.6])
    assert np.isclose(across @ scaled[:3, :3] @ across, 9.0 * 1e-4)  # sigma grows with it
    assert np.allclose(scaled[3:, 3:], cov[3:, 3:])


def test_true_loop_edges_remove_the_drift():
    """Synthetic: a ring of 8 views; closing edges with their true rotations pull the drifting
    odometry back, and a confidently wrong one bends it again."""
    truth = []
    for k in range(8):
        T = np.eye(4)
        T[:3, :3] = so3_exp(np.array([0.0, k * np.pi / 4, 0.0]))
        T[:3, 3] = [3 * np.sin(k * np.pi / 4), 0.0, 3 * np.cos(k * np.pi / 4)]
        truth.append(T)
    noise = OdometryNoise(rot_sigma_deg=0.5, trans_frac=0.02, yaw_bias_deg=3.0)
    odometry, covs = simulate_odometry(truth, noise, np.random.default_rng(1))

    def edge(i, j, error_deg=0.0):
        T = np.linalg.inv(truth[i]) @ truth[j]
        R = so3_exp(np.radians([0.0, error_deg, 0.0])) @ T[:3, :3]
        cov = np.diag([1e-4] * 3 + [np.radians(0.3) ** 2] * 3)
        t_unit = T[:3, 3] / np.linalg.norm(T[:3, 3])
        cov[:3, :3] += 1e4 * np.outer(t_unit, t_unit)
        return LoopEdge(i, j, RelativePose(R, t_unit, cov, scale_known=False))

    drift, _ = absolute_trajectory_error(chain(truth[0], odometry), truth)
    closed, _ = absolute_trajectory_error(
        optimise(truth[0], odometry, covs, [edge(0, 6), edge(1, 7), edge(0, 4)]), truth
    )
    assert closed < 0.5 * drift, (closed, drift)
    wrong, _ = absolute_trajectory_error(
        optimise(truth[0], odometry, covs, [edge(0, 6), edge(1, 7), edge(0, 4, 40.0)]), truth
    )
    assert wrong > 2 * closed, (wrong, closed)


def test_loop_closures_from_the_direct_path_on_a_real_walk():
    from posecrafter_ros.eval.datasets import load_middlebury
    from posecrafter_ros.eval.frames import view_keyframe

    views = load_middlebury(DATA / "strecha_fountain")
    truth = [v.cam_to_world for v in views]
    rows, edges, refused = loop_closure_rows(
        truth, [view_keyframe(v, 640) for v in views], min_gap=2, seed=0
    )
    assert len(edges) >= 5, refused
    ate = {name: absolute_trajectory_error(poses, truth)[0] for name, poses in rows.items()}
    assert ate["+ SUCCESS edges"] < 0.5 * ate["odometry only"], ate
    # One confident false accept bends the map; a Cauchy kernel on the loop edges limits it.
    (false_row,) = [name for name in ate if name.startswith("+ one false accept")]
    assert ate[false_row] > 2 * ate["+ SUCCESS edges"], ate
    assert ate["  ... with a Cauchy kernel on loop edges"] < 0.7 * ate[false_row], ate
