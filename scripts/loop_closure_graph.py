#!/usr/bin/env python3
"""Loop closures from the direct path in a GTSAM pose graph: absolute trajectory error of
drifting odometry before and after, and what one confident false accept does.

A posed sequence (views in capture order, Middlebury `_par.txt`) plays a robot's keyframes:
- odometry between consecutive views = ground truth perturbed per step by a rotation of
  N(0, --odom-rot-deg^2) per axis, a translation error of N(0, (--odom-trans-frac * step)^2)
  per axis and a yaw bias of --odom-bias-deg per step (the drift), seed --seed; the graph
  gets the odometry's own noise model (the bias is the part it does not know about);
- every non-adjacent pair (at least --min-gap views apart) is asked of the direct path
  (`core.twoview.estimate_two_view`, the cpu profile's SUCCESS answers); every accepted
  answer becomes a between-factor with the covariance it returned. Its translation is a unit
  vector whose variance along itself is huge (the scale is unknown): the factor scales it by
  the current estimate's baseline and scales the observable (perpendicular) block with it,
  leaving the along-baseline direction as free as the covariance says;
- one false accept: a pair the direct path did not accept, given a confident wrong edge
  (the ground truth rotated by --false-deg, with the covariance of the tightest real edge),
  optimised with Gaussian loop factors and with a Cauchy robust kernel on the loop factors.

Out of sample: with --trust-cache (the measurement cache of scripts/calibrate_trust.py), the
gate and covariance used for a scene are fitted on the other scenes only.

    python scripts/loop_closure_graph.py [--scene ../shared/data/strecha/fountain-P11]
        [--trust-cache runs/trust/sift-side1024-rot120.pkl] [--plot docs/loop_closure.png]
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from pathlib import Path

import numpy as np

from posecrafter_ros.core.covariance import so3_exp
from posecrafter_ros.core.twoview import estimate_two_view
from posecrafter_ros.eval.datasets import load_middlebury
from posecrafter_ros.eval.frames import view_keyframe

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent.parent / "shared" / "data"


def import_gtsam():
    try:
        import gtsam
    except ImportError:
        sys.exit("ERROR: this script needs gtsam 4.3: pip install gtsam==4.3.0")
    return gtsam


def held_out_conf(cache: Path, scene: str) -> dict:
    """The direct conf (the cache's matcher) whose gate and covariance were fitted on every
    scene but `scene`."""
    from posecrafter_ros.eval.trust import (
        Sample,
        fit_trust_chosen,
        fixed_gate_settings,
        load_corpus,
    )

    measurements = pickle.loads(cache.read_bytes())
    corpus = load_corpus(SHARED / "strecha", SHARED / "templering_sequence", None)
    train = [
        Sample(name, pair, measurements[f"{name}/{pair.name}"])
        for name, pairs in corpus.items()
        if name != scene
        for pair in pairs
        if f"{name}/{pair.name}" in measurements
    ]
    if not train:
        sys.exit(f"ERROR: {cache} holds no measurement of a scene other than {scene}")
    trust = fit_trust_chosen(train, gate_defaults=fixed_gate_settings())
    # The cache is calibrate_trust.py's "<matcher>-side<max_side>-rot<deg>.pkl": the edges
    # must come from the matcher it measured.
    matcher = cache.stem.rsplit("-side", 1)[0]
    return {"matcher": {"name": matcher}, "gate": trust["gate"], "covariance": trust["covariance"]}


def to_gtsam_covariance(cov: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Our [6 x 6] (dt, w) covariance of p_A = R p_B + t, with R <- exp([w]x) R and t <- t + dt
    in A's frame, -> GTSAM's Pose3 tangent (omega, v) with T <- T Exp(xi) (B's frame):
    omega = R^T w, v = R^T dt (first order)."""
    J = np.zeros((6, 6))
    J[:3, 3:] = R.T  # omega from w
    J[3:, :3] = R.T  # v from dt
    out = J @ cov @ J.T
    return 0.5 * (out + out.T)


def scaled_edge(R: np.ndarray, t_unit: np.ndarray, cov: np.ndarray, baseline: float):
    """(t, cov) of an unknown-scale edge at a baseline: the unit direction and its
    perpendicular uncertainty scale with the baseline, the along-t variance stays huge."""
    along = np.outer(t_unit, t_unit)
    scaled = cov.copy()
    huge = float(t_unit @ cov[:3, :3] @ t_unit)
    perpendicular = (np.eye(3) - along) @ cov[:3, :3] @ (np.eye(3) - along)
    scaled[:3, :3] = baseline**2 * perpendicular + huge * along
    scaled[:3, 3:] = baseline * (np.eye(3) - along) @ cov[:3, 3:]
    scaled[3:, :3] = scaled[:3, 3:].T
    return t_unit * baseline, scaled


def absolute_trajectory_error(estimated: list[np.ndarray], truth: list[np.ndarray]):
    """(position RMSE after a rigid alignment of the first pose, mean rotation error deg)."""
    align = truth[0] @ np.linalg.inv(estimated[0])
    pos, rot = [], []
    for T_est, T_true in zip(estimated, truth):
        T = align @ T_est
        pos.append(np.linalg.norm(T[:3, 3] - T_true[:3, 3]))
        cos = (np.trace(T[:3, :3].T @ T_true[:3, :3]) - 1) / 2
        rot.append(math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
    return float(np.sqrt(np.mean(np.square(pos)))), float(np.mean(rot))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, default=SHARED / "strecha" / "fountain-P11")
    parser.add_argument("--odom-rot-deg", type=float, default=1.0)
    parser.add_argument("--odom-trans-frac", type=float, default=0.05)
    parser.add_argument("--odom-bias-deg", type=float, default=1.5)
    parser.add_argument("--min-gap", type=int, default=2)
    parser.add_argument("--false-deg", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trust-cache", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    gtsam = import_gtsam()

    views = load_middlebury(args.scene)
    scene = views[0].group
    truth = [v.cam_to_world for v in views]
    n = len(views)
    conf = held_out_conf(args.trust_cache, scene) if args.trust_cache else {}
    print(
        f"{scene}: {n} views; gate and covariance "
        + ("fitted without this scene (held out)" if conf else "as shipped (may be in-sample)")
    )

    rng = np.random.default_rng(args.seed)
    odom_sigma_rot = math.radians(args.odom_rot_deg)
    odometry, odom_covs = [], []
    for i in range(n - 1):
        T = np.linalg.inv(truth[i]) @ truth[i + 1]
        step = float(np.linalg.norm(T[:3, 3]))
        noise_R = so3_exp(
            rng.normal(0, odom_sigma_rot, 3) + [0, math.radians(args.odom_bias_deg), 0]
        )
        sigma_t = args.odom_trans_frac * step
        measured = T.copy()
        measured[:3, :3] = T[:3, :3] @ noise_R
        measured[:3, 3] += rng.normal(0, sigma_t, 3)
        odometry.append(measured)
        odom_covs.append(np.diag([odom_sigma_rot**2] * 3 + [sigma_t**2] * 3))
    initial = [truth[0]]
    for T in odometry:
        initial.append(initial[-1] @ T)

    keyframes = [view_keyframe(v) for v in views]
    edges, refused = [], []
    for i in range(n):
        for j in range(i + args.min_gap, n):
            est = estimate_two_view(keyframes[i], keyframes[j], conf)
            T_true = np.linalg.inv(truth[i]) @ truth[j]
            if est.accepted:
                R_err = est.pose.R.T @ T_true[:3, :3]
                err = math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(R_err) - 1) / 2))))
                edges.append((i, j, est, err))
            else:
                refused.append((i, j))
    errs = [e[3] for e in edges]
    print(
        f"loop edges asked: {len(edges) + len(refused)}, SUCCESS: {len(edges)} "
        f"(rotation error median {np.median(errs) if errs else float('nan'):.2f} deg, "
        f"max {max(errs) if errs else float('nan'):.2f} deg)"
    )

    def optimise(loop_edges, robust: bool):
        graph = gtsam.NonlinearFactorGraph()
        values = gtsam.Values()
        prior = gtsam.noiseModel.Isotropic.Sigma(6, 1e-6)
        graph.add(gtsam.PriorFactorPose3(0, gtsam.Pose3(truth[0]), prior))
        for i, (T, cov) in enumerate(zip(odometry, odom_covs)):
            noise = gtsam.noiseModel.Gaussian.Covariance(cov)
            graph.add(gtsam.BetweenFactorPose3(i, i + 1, gtsam.Pose3(T), noise))
        for i, T in enumerate(initial):
            values.insert(i, gtsam.Pose3(T))
        for i, j, R, t_unit, cov in loop_edges:
            baseline = float(np.linalg.norm((np.linalg.inv(initial[i]) @ initial[j])[:3, 3]))
            t, cov_scaled = scaled_edge(R, t_unit, cov, baseline)
            noise = gtsam.noiseModel.Gaussian.Covariance(to_gtsam_covariance(cov_scaled, R))
            if robust:
                noise = gtsam.noiseModel.Robust.Create(
                    gtsam.noiseModel.mEstimator.Cauchy.Create(1.0), noise
                )
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = R, t
            graph.add(gtsam.BetweenFactorPose3(i, j, gtsam.Pose3(T), noise))
        result = gtsam.LevenbergMarquardtOptimizer(graph, values).optimize()
        return [result.atPose3(i).matrix() for i in range(n)]

    real = [(i, j, e.pose.R, e.pose.t, e.pose.covariance) for i, j, e, _ in edges]
    tightest = (
        min(edges, key=lambda e: np.trace(e[2].pose.covariance[3:, 3:]))[2] if edges else None
    )
    rows = {"odometry only": initial, "+ SUCCESS edges": optimise(real, robust=False)}
    if refused and tightest is not None:
        i, j = max(refused, key=lambda p: p[1] - p[0])  # the longest loop: the most damage
        T_true = np.linalg.inv(truth[i]) @ truth[j]
        R_false = so3_exp(np.radians([0.0, args.false_deg, 0.0])) @ T_true[:3, :3]
        t_false = T_true[:3, 3] / np.linalg.norm(T_true[:3, 3])
        false = [(i, j, R_false, t_false, tightest.pose.covariance.copy())]
        rows[f"+ one false accept ({i}-{j}, {args.false_deg:g} deg off)"] = optimise(
            real + false, robust=False
        )
        rows["  ... with a Cauchy kernel on loop edges"] = optimise(real + false, robust=True)
    print(f"{'trajectory':>44s} {'ATE m':>8s} {'rot deg':>8s}")
    for name, poses in rows.items():
        ate, rot = absolute_trajectory_error(poses, truth)
        print(f"{name:>44s} {ate:8.3f} {rot:8.2f}")
    if args.plot:
        plot(rows, truth, edges, args.plot, scene)
        print(f"wrote {args.plot}")
    return 0


def plot(rows, truth, edges, path: Path, scene: str) -> None:
    """Left: the trajectories in the ground truth's plane of largest spread, with the SUCCESS
    edges in grey; right: position error per view after the rigid alignment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gt = np.array([T[:3, 3] for T in truth])
    centre = gt.mean(axis=0)
    axes_2d = np.linalg.svd(gt - centre)[2][:2]  # the two directions of largest spread
    fig, (ax, ax_err) = plt.subplots(1, 2, figsize=(11, 4.5))
    flat = (gt - centre) @ axes_2d.T
    for i, j, _, _ in edges:
        ax.plot(flat[[i, j], 0], flat[[i, j], 1], color="0.85", lw=0.6, zorder=0)
    ax.plot(flat[:, 0], flat[:, 1], "k-o", ms=3, label="ground truth")
    for name, poses in rows.items():
        align = truth[0] @ np.linalg.inv(poses[0])
        p = np.array([(align @ T)[:3, 3] for T in poses])
        ax.plot(*((p - centre) @ axes_2d.T).T, "-", label=name.strip())
        ax_err.plot(np.linalg.norm(p - gt, axis=1), "-o", ms=3, label=name.strip())
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{scene}: trajectories (grey: SUCCESS edges)", fontsize=9)
    ax.legend(fontsize=7)
    ax_err.set_xlabel("view (capture order)")
    ax_err.set_ylabel("position error (m)")
    ax_err.set_title("position error per view", fontsize=9)
    ax_err.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
