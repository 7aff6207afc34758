"""Covariance of a bridged pose: chaining pairwise covariances, and COLMAP's BA covariance."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from posecrafter_ros.core.covariance import so3_exp, so3_log
from posecrafter_ros.core.multiview import ClassicalMultiViewPose
from posecrafter_ros.core.types import RelativePose


def edge(R: np.ndarray, t: np.ndarray, rot_sigmas_rad) -> SimpleNamespace:
    cov = np.zeros((6, 6))
    cov[:3, :3] = 1e-4 * np.eye(3)
    cov[3:, 3:] = np.diag(np.square(rot_sigmas_rad))
    return SimpleNamespace(pose=RelativePose(R, t, cov))


def test_chained_covariance_transforms_edges_traversed_against_their_direction():
    rng = np.random.default_rng(0)
    R_02 = so3_exp(np.array([0.1, 1.0, 0.2]))
    R_12 = so3_exp(np.array([-0.3, 0.7, 0.4]))
    # Edge (1, 2) stores the pose of 2 in 1 with a strongly anisotropic rotation covariance;
    # the path 0 -> 2 -> 1 traverses it from 2 to 1, i.e. uses its inverse.
    edges = {
        (0, 2): (edge(R_02, np.array([1.0, 0, 0]), [0.001, 0.001, 0.001]), None),
        (1, 2): (edge(R_12, np.array([0, 1.0, 0]), [0.05, 0.002, 0.002]), None),
    }
    model = ClassicalMultiViewPose({"direct": {"covariance": {"scale_variance": 0.0}}})
    cov = model._chain_covariance(edges, [0, 2, 1], np.array([1.0, 0, 0]))
    # Monte Carlo: perturb each stored edge on the left in its own frame, compose, measure the
    # rotation error of the chained pose in view 0's frame.
    R_01 = R_02 @ R_12.T
    samples = []
    for _ in range(4000):
        w02 = rng.normal(0, 0.001, 3)
        w12 = rng.normal(0, [0.05, 0.002, 0.002])
        R = so3_exp(w02) @ R_02 @ (so3_exp(w12) @ R_12).T
        samples.append(so3_log(R @ R_01.T))
    empirical = np.cov(np.array(samples).T)
    assert np.allclose(cov[3:, 3:], empirical, atol=0.1 * np.abs(empirical).max())
