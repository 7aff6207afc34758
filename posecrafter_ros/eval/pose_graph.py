"""Loop closures in a pose graph: what the direct path's answers do to a drifting trajectory.

A posed sequence (views in capture order) plays a robot's keyframes:
- odometry between consecutive views is the ground truth perturbed per step by a rotation of
  N(0, rot_sigma^2) per axis, a translation error of N(0, (trans_frac * step)^2) per axis and
  a yaw bias per step (the drift); the graph gets the odometry's own noise model, so the bias
  is the part it does not know about;
- the direct path (`core.twoview.estimate_two_view`) is asked for every pair at least
  `min_gap` views apart; each accepted answer becomes a between-factor with the covariance
  it returned. Its translation is a unit vector with a huge variance along itself (the scale
  is unknown): the factor scales it by the current estimate's baseline and scales the
  observable (perpendicular) block with it, leaving the along-baseline direction as free as
  the covariance says (`scaled_edge`);
- one false accept: a pair the direct path refused, given a confident wrong edge, optimised
  with Gaussian loop factors and with a Cauchy kernel on the loop factors.

The graph is GTSAM's (gtsam 4.3, imported when optimising). Covariances are converted from the
project's convention (core.types.RelativePose: [dt, w] with p_A = R p_B + t, R <- exp([w]x) R,
t <- t + dt in A's frame) to GTSAM's Pose3 tangent ([omega, v], T <- T Exp(xi)) by
`to_gtsam_covariance`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core.covariance import so3_exp
from ..core.twoview import estimate_two_view
from ..core.types import Keyframe, RelativePose
from .metrics import rotation_error_deg


@dataclass(frozen=True)
class OdometryNoise:
    """Simulated odometry: per-step noise the graph is told about, and a bias it is not."""

    rot_sigma_deg: float = 1.0  # per axis, per step
    trans_frac: float = 0.05  # per-axis translation sigma as a fraction of the step length
    yaw_bias_deg: float = 1.5  # per step, about the camera's y axis: the drift


@dataclass
class LoopEdge:
    """B (view j) in A (view i): a RelativePose (unit translation when the scale is unknown)."""

    i: int
    j: int
    pose: RelativePose


def simulate_odometry(
    truth: Sequence[np.ndarray], noise: OdometryNoise, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """([4 x 4] measured step i -> i+1, [6 x 6] its GTSAM covariance) for consecutive views.

    truth: camera-to-world [4 x 4] per view.
    """
    rot_sigma = math.radians(noise.rot_sigma_deg)
    bias = np.array([0.0, math.radians(noise.yaw_bias_deg), 0.0])
    steps, covariances = [], []
    for before, after in zip(truth[:-1], truth[1:]):
        T = np.linalg.inv(before) @ after
        trans_sigma = noise.trans_frac * float(np.linalg.norm(T[:3, 3]))
        measured = T.copy()
        measured[:3, :3] = T[:3, :3] @ so3_exp(rng.normal(0, rot_sigma, 3) + bias)
        measured[:3, 3] += rng.normal(0, trans_sigma, 3)
        steps.append(measured)
        covariances.append(np.diag([rot_sigma**2] * 3 + [trans_sigma**2] * 3))
    return steps, covariances


def chain(first: np.ndarray, steps: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Poses from `first` composed with each relative step in turn."""
    poses = [first]
    for T in steps:
        poses.append(poses[-1] @ T)
    return poses


def ask_direct_path(
    keyframes: Sequence[Keyframe], direct_conf: dict | None, min_gap: int
) -> tuple[list[LoopEdge], list[tuple[int, int]]]:
    """(accepted edges, refused pairs) of the direct path on every pair >= min_gap apart."""
    edges, refused = [], []
    for i in range(len(keyframes)):
        for j in range(i + min_gap, len(keyframes)):
            estimate = estimate_two_view(keyframes[i], keyframes[j], direct_conf)
            if estimate.accepted:
                edges.append(LoopEdge(i, j, estimate.pose))
            else:
                refused.append((i, j))
    return edges, refused


def to_gtsam_covariance(cov: np.ndarray, R: np.ndarray) -> np.ndarray:
    """The project's [6 x 6] ([dt, w], A's frame) -> GTSAM's Pose3 tangent ([omega, v], B's
    frame): from exp([w]x) R = R exp([omega]x) and t + dt = t + R v, omega = R^T w and
    v = R^T dt (first order)."""
    J = np.zeros((6, 6))
    J[:3, 3:] = R.T  # omega from w
    J[3:, :3] = R.T  # v from dt
    out = J @ cov @ J.T
    return 0.5 * (out + out.T)


def scaled_edge(
    t_unit: np.ndarray, cov: np.ndarray, baseline: float
) -> tuple[np.ndarray, np.ndarray]:
    """(t, cov) of an unknown-scale edge at `baseline`: the unit direction and its
    perpendicular uncertainty scale with the baseline; the along-t variance stays as given."""
    along = np.outer(t_unit, t_unit)
    across = np.eye(3) - along
    scaled = cov.copy()
    scaled[:3, :3] = (
        baseline**2 * across @ cov[:3, :3] @ across + (t_unit @ cov[:3, :3] @ t_unit) * along
    )
    scaled[:3, 3:] = baseline * across @ cov[:3, 3:]
    scaled[3:, :3] = scaled[:3, 3:].T
    return t_unit * baseline, scaled


def optimise(
    truth_first: np.ndarray,
    odometry: Sequence[np.ndarray],
    odometry_covariances: Sequence[np.ndarray],
    edges: Sequence[LoopEdge],
    robust: bool = False,
) -> list[np.ndarray]:
    """Camera-to-world poses after Levenberg-Marquardt on prior + odometry + loop edges,
    started from the odometry's own trajectory. robust: a Cauchy kernel on the loop edges."""
    import gtsam

    initial = chain(truth_first, odometry)
    graph = gtsam.NonlinearFactorGraph()
    values = gtsam.Values()
    graph.add(
        gtsam.PriorFactorPose3(
            0, gtsam.Pose3(truth_first), gtsam.noiseModel.Isotropic.Sigma(6, 1e-6)
        )
    )
    for k, (T, cov) in enumerate(zip(odometry, odometry_covariances)):
        noise = gtsam.noiseModel.Gaussian.Covariance(cov)
        graph.add(gtsam.BetweenFactorPose3(k, k + 1, gtsam.Pose3(T), noise))
    for k, T in enumerate(initial):
        values.insert(k, gtsam.Pose3(T))
    for edge in edges:
        pose = edge.pose
        t, cov = np.asarray(pose.t, float), np.asarray(pose.covariance, float)
        if not pose.scale_known:
            baseline = float(
                np.linalg.norm((np.linalg.inv(initial[edge.i]) @ initial[edge.j])[:3, 3])
            )
            t, cov = scaled_edge(t, cov, baseline)
        noise = gtsam.noiseModel.Gaussian.Covariance(to_gtsam_covariance(cov, pose.R))
        if robust:
            noise = gtsam.noiseModel.Robust.Create(
                gtsam.noiseModel.mEstimator.Cauchy.Create(1.0), noise
            )
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = pose.R, t
        graph.add(gtsam.BetweenFactorPose3(edge.i, edge.j, gtsam.Pose3(T), noise))
    result = gtsam.LevenbergMarquardtOptimizer(graph, values).optimize()
    return [result.atPose3(k).matrix() for k in range(len(initial))]


def absolute_trajectory_error(
    estimated: Sequence[np.ndarray], truth: Sequence[np.ndarray]
) -> tuple[float, float]:
    """(position RMSE, mean rotation error in degrees) after aligning the first poses (the
    prior pins the first pose, so no further alignment is fitted)."""
    align = truth[0] @ np.linalg.inv(estimated[0])
    positions, rotations = [], []
    for T_est, T_true in zip(estimated, truth):
        T = align @ T_est
        positions.append(np.linalg.norm(T[:3, 3] - T_true[:3, 3]))
        rotations.append(rotation_error_deg(T[:3, :3], T_true[:3, :3]))
    return float(np.sqrt(np.mean(np.square(positions)))), float(np.mean(rotations))


def false_accept(
    truth: Sequence[np.ndarray],
    edges: Sequence[LoopEdge],
    refused: Sequence[tuple[int, int]],
    error_deg: float,
) -> LoopEdge | None:
    """A confident wrong edge on the longest refused loop: its true rotation turned by
    `error_deg` about the camera's y axis, with the covariance of the tightest real edge
    (rotation block). None without a refused pair or a real edge to copy."""
    if not refused or not edges:
        return None
    tightest = min(edges, key=lambda e: np.trace(e.pose.covariance[3:, 3:])).pose
    i, j = max(refused, key=lambda pair: pair[1] - pair[0])
    T_true = np.linalg.inv(truth[i]) @ truth[j]
    R_false = so3_exp(np.radians([0.0, error_deg, 0.0])) @ T_true[:3, :3]
    t_unit = T_true[:3, 3] / np.linalg.norm(T_true[:3, 3])
    wrong = RelativePose(R_false, t_unit, tightest.covariance.copy(), scale_known=False)
    return LoopEdge(i, j, wrong)


def loop_closure_rows(
    truth: Sequence[np.ndarray],
    keyframes: Sequence[Keyframe],
    direct_conf: dict | None = None,
    noise: OdometryNoise | None = None,
    min_gap: int = 2,
    false_deg: float = 30.0,
    seed: int = 0,
) -> tuple[dict[str, list[np.ndarray]], list[LoopEdge], list[tuple[int, int]]]:
    """({trajectory name: camera-to-world poses}, accepted edges, refused pairs).

    Rows: "odometry only", "+ SUCCESS edges", and, when the direct path refused a pair,
    "+ one false accept" with Gaussian loop factors and "... with a Cauchy kernel".
    """
    noise = noise or OdometryNoise()
    odometry, covariances = simulate_odometry(truth, noise, np.random.default_rng(seed))
    edges, refused = ask_direct_path(keyframes, direct_conf, min_gap)
    rows = {
        "odometry only": chain(truth[0], odometry),
        "+ SUCCESS edges": optimise(truth[0], odometry, covariances, edges),
    }
    wrong = false_accept(truth, edges, refused, false_deg)
    if wrong is not None:
        name = f"+ one false accept ({wrong.i}-{wrong.j}, {false_deg:g} deg off)"
        rows[name] = optimise(truth[0], odometry, covariances, [*edges, wrong])
        rows["  ... with a Cauchy kernel on loop edges"] = optimise(
            truth[0], odometry, covariances, [*edges, wrong], robust=True
        )
    return rows, edges, refused
