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


# 95% quantiles of chi-square with 3 dof (rotation) and 2 dof (translation direction): an
# error inside these squared Mahalanobis distances lies inside the covariance's 95% region.
CHI2_95_3DOF = 7.814727903251178
CHI2_95_2DOF = 5.991464547107979

# Per-axis variance (rad^2) of the rotation vector of a uniformly random rotation:
# E[theta^2] = pi^2 / 3 + 2 under the Haar measure, shared by three axes.
RANDOM_ROTATION_AXIS_VAR = (math.pi**2 / 3.0 + 2.0) / 3.0


def gauss_newton_covariance(
    R: np.ndarray, t: np.ndarray, xa: np.ndarray, xb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(cov5 [5 x 5] over (d, w), tangent basis [3 x 2]): s^2 (J^T J)^-1 of the Sampson
    residuals of calibrated inliers xa, xb: [N x 2] at the pose (R, t) of B in A."""
    residuals, jac, basis = residual_jacobian(R, t, xa, xb)
    dof = max(len(residuals) - 5, 1)
    sigma2 = float(residuals @ residuals) / dof
    # A pseudo-inverse keeps a rank-deficient information matrix (e.g. a pure rotation, where
    # the translation direction is unconstrained) finite.
    return sigma2 * np.linalg.pinv(jac.T @ jac, rcond=1e-12), basis


def rotation_only_covariance(R: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """[3 x 3] covariance of w (R <- exp([w]x) R) for a pure rotation p_A = R p_B, from the
    residuals r_i = b_i - R^T a_i of the unit bearings a_i, b_i of xa, xb: [N x 2].

    dr_i / dw = -R^T [a_i]x, so J^T J = sum_i [a_i]x^T [a_i]x; each residual has 2 dof.
    """
    a = np.concatenate([xa, np.ones((len(xa), 1))], axis=1)
    b = np.concatenate([xb, np.ones((len(xb), 1))], axis=1)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    residuals = b - a @ R  # rows: b_i - R^T a_i
    sigma2 = float(np.sum(residuals**2)) / max(2 * len(a) - 3, 1)
    information = sum(skew(ai).T @ skew(ai) for ai in a)
    return sigma2 * np.linalg.pinv(information, rcond=1e-12)


def assemble_covariance(
    cov_rotation_direction: np.ndarray,
    basis: np.ndarray | None,
    t: np.ndarray,
    inflation: float = 1.0,
    rotation_floor_rad: float = 0.0,
    translation_floor_rad: float = 0.0,
    p_wrong: float = 0.0,
    scale_variance: float = 1.0e4,
) -> np.ndarray:
    """[6 x 6] covariance (x, y, z, rot x, rot y, rot z) of the pose of B in A (p_A = R p_B + t).

    cov_rotation_direction: [5 x 5] over (d, w) from `gauss_newton_covariance` (with its
        tangent `basis`), or [3 x 3] over w from `rotation_only_covariance` (basis None: the
        translation is unobservable and the whole translation block gets scale_variance).
    inflation: factor on that covariance (residuals are correlated and the inlier threshold
        truncates them, so s^2 (J^T J)^-1 is too small on real images; fitted per matcher).
    rotation_floor_rad / translation_floor_rad: standard deviation added on each rotation axis
        / each tangent direction of t (model error the residuals cannot show: intrinsics, lens
        distortion, match bias; fitted per matcher).
    p_wrong: probability that the estimate is a wrong RANSAC solution (core.gate); adds
        p_wrong^2 times the spread of a random rotation (and direction), so a rejected,
        weakly supported estimate reports the uncertainty it has.
    scale_variance: variance along the unit translation t (the unobservable scale).
    """
    cov = np.zeros((6, 6))
    wrong_var = p_wrong**2 * RANDOM_ROTATION_AXIS_VAR
    if basis is None:
        cov[3:, 3:] = inflation * cov_rotation_direction + wrong_var * np.eye(3)
        cov[:3, :3] = scale_variance * np.eye(3)
    else:
        cov5 = inflation * cov_rotation_direction + wrong_var * np.eye(5)
        cov5[:2, :2] += translation_floor_rad**2 * np.eye(2)
        transform = np.zeros((6, 5))
        transform[:3, :2] = basis
        transform[3:, 2:] = np.eye(3)
        cov = transform @ cov5 @ transform.T
        cov[:3, :3] += scale_variance * np.outer(t, t)
    cov[3:, 3:] += rotation_floor_rad**2 * np.eye(3)
    return 0.5 * (cov + cov.T)


def pose_covariance(
    R: np.ndarray,
    t: np.ndarray,
    xa: np.ndarray,
    xb: np.ndarray,
    translation_observable: bool = True,
    **calibration,
) -> np.ndarray:
    """[6 x 6] covariance of the pose (R, t) of B in A from calibrated inliers xa, xb: [N x 2]
    (N >= 6); `calibration`: the keyword arguments of `assemble_covariance`.
    translation_observable: False for a (near) pure rotation (zero baseline)."""
    if translation_observable:
        cov5, basis = gauss_newton_covariance(R, t, xa, xb)
        return assemble_covariance(cov5, basis, t, **calibration)
    return assemble_covariance(rotation_only_covariance(R, xa, xb), None, t, **calibration)


def rotation_sigma_deg(cov: np.ndarray) -> float:
    """Square root of the largest eigenvalue of the rotation block, in degrees."""
    return math.degrees(math.sqrt(max(float(np.linalg.eigvalsh(cov[3:, 3:])[-1]), 0.0)))


def translation_direction_mahalanobis2(
    cov: np.ndarray, t_est: np.ndarray, t_true: np.ndarray
) -> float:
    """Squared Mahalanobis distance (2 dof) of the direction error of unit t_true against t_est,
    in the tangent plane of t_est, under the translation block of cov (unit-vector directions)."""
    t_est = t_est / np.linalg.norm(t_est)
    basis = tangent_basis(t_est)
    t_true = t_true / np.linalg.norm(t_true)
    # Log map on the sphere: the tangent vector of length = angle pointing towards t_true.
    angle = math.acos(float(np.clip(t_est @ t_true, -1.0, 1.0)))
    tangent = t_true - (t_est @ t_true) * t_est
    norm = float(np.linalg.norm(tangent))
    d = basis.T @ (tangent * (angle / norm if norm > 1e-12 else 0.0))
    block = basis.T @ cov[:3, :3] @ basis
    return float(d @ np.linalg.solve(block, d))


def rotation_mahalanobis2(cov: np.ndarray, R_est: np.ndarray, R_true: np.ndarray) -> float:
    """Squared Mahalanobis distance of the rotation error exp([w]x) = R_true R_est^T under the
    rotation block of cov (chi-square with 3 dof when cov is calibrated)."""
    w = so3_log(R_true @ R_est.T)
    return float(w @ np.linalg.solve(cov[3:, 3:], w))
