"""Pose-error metrics of the evaluation protocol (DESIGN §5).

Rotation error: geodesic angle of R_est^T R_gt. Translation error: angle between the
translation directions (scale-free). A failed estimate counts as 180° for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

FAILED_DEG = 180.0
THRESHOLDS_DEG = (5, 15, 30)


def rotation_error_deg(R_est: np.ndarray, R_gt: np.ndarray) -> float:
    """Geodesic angle in degrees between two rotations."""
    cos = (np.trace(R_est.T @ R_gt) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def translation_angle_deg(t_est: np.ndarray, t_gt: np.ndarray) -> float:
    """Angle in degrees between two translation directions (180 if either is zero)."""
    n_est, n_gt = np.linalg.norm(t_est), np.linalg.norm(t_gt)
    if n_est < 1e-12 or n_gt < 1e-12 or not np.isfinite(n_est):
        return FAILED_DEG
    cos = float(np.dot(t_est, t_gt) / (n_est * n_gt))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def recall_at(errors_deg: Sequence[float], threshold_deg: float) -> float:
    """Share of errors strictly below the threshold (0 for an empty list)."""
    errors = np.asarray(errors_deg, dtype=float)
    return float(np.mean(errors < threshold_deg)) if errors.size else 0.0


def auc(errors_deg: Sequence[float], max_threshold_deg: float = 30.0) -> float:
    """Area under the recall-vs-threshold curve on [0, max], normalised to [0, 1].

    The curve is piecewise linear through (0, 0) and (e_i, i / n) for the sorted errors e_i,
    held flat from the last error below `max` to `max` (the pose-AUC of SuperGlue and the
    relative-pose papers that followed it, PoseCrafter included).
    """
    errors = np.sort(np.asarray(errors_deg, dtype=float))
    if errors.size == 0:
        return 0.0
    recall = np.arange(1, errors.size + 1) / errors.size
    errors = np.concatenate(([0.0], errors))
    recall = np.concatenate(([0.0], recall))
    last = int(np.searchsorted(errors, max_threshold_deg))
    x = np.concatenate((errors[:last], [max_threshold_deg]))
    y = np.concatenate((recall[:last], [recall[last - 1]]))
    area = np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0)  # trapezoids
    return float(area / max_threshold_deg)


def summarize(
    rot_errors_deg: Iterable[float],
    trans_errors_deg: Iterable[float],
    thresholds: Sequence[int] = THRESHOLDS_DEG,
    auc_max_deg: float = 30.0,
) -> dict[str, float]:
    """MRE, MTE, R@k, T@k and AUC@30 (the smaller of the rotation and translation AUCs)."""
    r = np.asarray(list(rot_errors_deg), dtype=float)
    t = np.asarray(list(trans_errors_deg), dtype=float)
    out: dict[str, float] = {"n": int(r.size)}
    out["MRE"] = float(r.mean()) if r.size else float("nan")
    out["MTE"] = float(t.mean()) if t.size else float("nan")
    for k in thresholds:
        out[f"R@{k}"] = recall_at(r, k)
    for k in thresholds:
        out[f"T@{k}"] = recall_at(t, k)
    out[f"AUC@{int(auc_max_deg)}"] = min(auc(r, auc_max_deg), auc(t, auc_max_deg))
    return out


def pose_errors(R_0to1, t_0to1, R_gt: np.ndarray, t_gt: np.ndarray) -> tuple[float, float]:
    """(rotation error, translation angle) in degrees of an estimate (R_0to1, t_0to1) against
    the ground truth, both in the pair convention x_1 = R_0to1 x_0 + t_0to1. A missing or
    non-finite estimate counts as failed (FAILED_DEG on both)."""
    if R_0to1 is None or t_0to1 is None:
        return FAILED_DEG, FAILED_DEG
    R, t = np.asarray(R_0to1, float), np.asarray(t_0to1, float).ravel()
    if R.shape != (3, 3) or not np.all(np.isfinite(R)) or not np.all(np.isfinite(t)):
        return FAILED_DEG, FAILED_DEG
    return rotation_error_deg(R, R_gt), translation_angle_deg(t, t_gt)


def pair_errors(epipolar: tuple[np.ndarray, np.ndarray] | None, pair) -> tuple[float, float]:
    """pose_errors of (R_0to1, t_0to1) against a PosedPair's ground truth; None is a failure."""
    return pose_errors(*(epipolar or (None, None)), pair.R_0to1, pair.t_0to1)
