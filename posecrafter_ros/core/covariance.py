"""Covariance of a relative pose from its epipolar residuals (first-order error propagation).

The pose of B in A (p_A = R p_B + t, |t| = 1) has five observable degrees of freedom: a
rotation perturbation w (R <- exp([w]x) R) and the translation direction, perturbed in the
tangent plane of t (t <- t + U d, U: [3 x 2] orthonormal, U^T t = 0). The Sampson residuals of
the inlier correspondences give the Jacobian J: [N x 5]; with the residual variance
s^2 = |r|^2 / (N - 5), Cov = s^2 (J^T J)^-1 (Gauss-Newton). The scale direction t itself is
unobservable from two views and gets a large variance instead of zero.
"""

from __future__ import annotations

import math

import numpy as np


def skew(v: np.ndarray) -> np.ndarray:
    """[3 x 3] cross-product matrix of v: [3]."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def so3_exp(w: np.ndarray) -> np.ndarray:
    """Rotation matrix exp([w]x) (Rodrigues)."""
    theta = float(np.linalg.norm(w))
    if theta < 1e-12:
        return np.eye(3) + skew(w)
    k = skew(w / theta)
    return np.eye(3) + np.sin(theta) * k + (1.0 - np.cos(theta)) * (k @ k)


def so3_log(R: np.ndarray) -> np.ndarray:
    """Rotation vector w with exp([w]x) = R (angle in radians, |w| <= pi)."""
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    theta = float(np.arccos(cos))
    if theta < 1e-9:
        return np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2.0
    if np.pi - theta < 1e-6:
        # Near 180 degrees the antisymmetric part vanishes: read the axis off R + I.
        axis = np.sqrt(np.maximum((np.diag(R) + 1.0) / 2.0, 0.0))
        signs = np.sign(np.array([1.0, R[0, 1] + R[1, 0], R[0, 2] + R[2, 0]]))
        axis = axis * np.where(signs == 0, 1.0, signs)
        return theta * axis / np.linalg.norm(axis)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return theta * w / (2.0 * np.sin(theta))


def tangent_basis(t: np.ndarray) -> np.ndarray:
    """[3 x 2] orthonormal basis of the plane orthogonal to the unit vector t."""
    helper = np.eye(3)[int(np.argmin(np.abs(t)))]
    u = np.cross(t, helper)
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(t, u)], axis=1)


def sampson_residuals(
    R_ab: np.ndarray, t_ab: np.ndarray, xa: np.ndarray, xb: np.ndarray
) -> np.ndarray:
    """Signed Sampson distances [N] of calibrated points xa, xb: [N x 2] to E = [t_ab]x R_ab.

    Convention: x_b = R_ab x_a + t_ab (the epipolar constraint x_b^T E x_a = 0).
    """
    E = skew(t_ab) @ R_ab
    ha = np.concatenate([xa, np.ones((len(xa), 1))], axis=1)
    hb = np.concatenate([xb, np.ones((len(xb), 1))], axis=1)
    Ea = ha @ E.T  # rows: E x_a
    Eb = hb @ E  # rows: E^T x_b
    numerator = np.sum(hb * Ea, axis=1)
    denominator = np.sqrt(Ea[:, 0] ** 2 + Ea[:, 1] ** 2 + Eb[:, 0] ** 2 + Eb[:, 1] ** 2)
    return numerator / np.maximum(denominator, 1e-15)


def _residuals_b_in_a(
    R: np.ndarray,
    t: np.ndarray,
    params: np.ndarray,
    basis: np.ndarray,
    xa: np.ndarray,
    xb: np.ndarray,
) -> np.ndarray:
    """Sampson residuals after perturbing the pose of B in A by params = (d: [2], w: [3])."""
    R_new = so3_exp(params[2:]) @ R
    t_new = t + basis @ params[:2]
    t_new /= np.linalg.norm(t_new)
    return sampson_residuals(R_new.T, -R_new.T @ t_new, xa, xb)


def residual_jacobian(
    R: np.ndarray, t: np.ndarray, xa: np.ndarray, xb: np.ndarray, step: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(residuals [N], Jacobian [N x 5] w.r.t. (d, w), tangent basis [3 x 2]) at the pose
    (R, t) of B in A."""
    basis = tangent_basis(t)
    zero = np.zeros(5)
    residuals = _residuals_b_in_a(R, t, zero, basis, xa, xb)
    jac = np.empty((len(xa), 5))
    for k in range(5):
        delta = zero.copy()
        delta[k] = step
        plus = _residuals_b_in_a(R, t, delta, basis, xa, xb)
        minus = _residuals_b_in_a(R, t, -delta, basis, xa, xb)
        jac[:, k] = (plus - minus) / (2.0 * step)
    return residuals, jac, basis


# Per-axis variance (rad^2) of the rotation vector of a uniformly random rotation:
# E[theta^2] = pi^2 / 3 + 2 under the Haar measure, shared by three axes.
RANDOM_ROTATION_AXIS_VAR = (math.pi**2 / 3.0 + 2.0) / 3.0


def pose_covariance(
    R: np.ndarray,
    t: np.ndarray,
    xa: np.ndarray,
    xb: np.ndarray,
    inflation: float = 1.0,
    rotation_floor_rad: float = 0.0,
    p_wrong: float = 0.0,
    scale_variance: float = 1.0e4,
    translation_observable: bool = True,
) -> np.ndarray:
    """[6 x 6] covariance (x, y, z, rot x, rot y, rot z) of the pose of B in A (p_A = R p_B + t).

    xa, xb: [N x 2] calibrated inlier coordinates (N >= 6).
    inflation: factor on the Gauss-Newton covariance (residuals are correlated and the
        inlier threshold truncates them, so s^2 (J^T J)^-1 is too small; measured, see docs).
    rotation_floor_rad: standard deviation added on each rotation axis (model error the
        residuals cannot show: intrinsics, lens distortion, match bias).
    p_wrong: probability that the estimate is a wrong RANSAC solution (core.gate); adds
        p_wrong^2 times the spread of a random rotation (and direction), so weakly supported
        estimates report the uncertainty they have.
    scale_variance: variance along the unit translation t (the unobservable scale).
    translation_observable: False for a (near) pure rotation: the whole translation block
        gets scale_variance.
    """
    residuals, jac, basis = residual_jacobian(R, t, xa, xb)
    dof = max(len(residuals) - 5, 1)
    sigma2 = float(residuals @ residuals) / dof
    # A pseudo-inverse keeps a rank-deficient information matrix (e.g. a pure rotation, where
    # the translation direction is unconstrained) finite.
    cov5 = inflation * sigma2 * np.linalg.pinv(jac.T @ jac, rcond=1e-12)
    cov5 += p_wrong**2 * RANDOM_ROTATION_AXIS_VAR * np.eye(5)
    transform = np.zeros((6, 5))
    transform[:3, :2] = basis
    transform[3:, 2:] = np.eye(3)
    cov = transform @ cov5 @ transform.T
    cov[3:, 3:] += rotation_floor_rad**2 * np.eye(3)
    if translation_observable:
        cov[:3, :3] += scale_variance * np.outer(t, t)
    else:
        cov[:3, :] = 0.0
        cov[:, :3] = 0.0
        cov[:3, :3] = scale_variance * np.eye(3)
    return 0.5 * (cov + cov.T)


def rotation_mahalanobis2(cov: np.ndarray, R_est: np.ndarray, R_true: np.ndarray) -> float:
    """Squared Mahalanobis distance of the rotation error exp([w]x) = R_true R_est^T under the
    rotation block of cov (chi-square with 3 dof when cov is calibrated)."""
    w = so3_log(R_true @ R_est.T)
    return float(w @ np.linalg.solve(cov[3:, 3:], w))
