#!/usr/bin/env python3
"""Loop closures from the direct path in a GTSAM pose graph: absolute trajectory error of
drifting odometry before and after, and what one confident false accept does.

The protocol is eval/pose_graph.py's (simulated drifting odometry with --odom-rot-deg,
--odom-trans-frac, --odom-bias-deg and --seed; the direct path asked for every pair at least
--min-gap views apart; one false accept --false-deg off, with and without a Cauchy kernel).

Out of sample: with --trust-cache (the match cache of scripts/calibrate_trust.py), the
gate and covariance used for a scene are fitted on the other scenes only.

    python scripts/loop_closure_graph.py [--scene ../shared/data/strecha/fountain-P11]
        [--trust-cache runs/trust/sift-side1024-rot120.pkl] [--plot docs/loop_closure.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from posecrafter_ros.eval.datasets import load_middlebury
from posecrafter_ros.eval.frames import view_keyframe
from posecrafter_ros.eval.metrics import rotation_error_deg
from posecrafter_ros.eval.pose_graph import (
    OdometryNoise,
    absolute_trajectory_error,
    loop_closure_rows,
)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"  # ../shared/data beside the clone


def held_out_conf(cache: Path, scene: str, shared: Path = SHARED) -> dict:
    """The direct conf (the cache's matcher) whose gate and covariance were fitted on every
    scene but `scene`."""
    from posecrafter_ros.core.twoview import DEFAULT_GEOMETRY_CONF, measure
    from posecrafter_ros.eval.trust import (
        Sample,
        fit_trust_chosen,
        fixed_gate_settings,
        load_corpus,
        read_correspondence_cache,
    )

    matches = read_correspondence_cache(cache)
    corpus = load_corpus(shared / "strecha", shared / "templering_sequence", None)
    train = [
        Sample(name, pair, measure(corr, DEFAULT_GEOMETRY_CONF), corr)
        for name, pairs in corpus.items()
        if name != scene
        for pair in pairs
        if (corr := matches.get(f"{name}/{pair.name}")) is not None
    ]
    if not train:
        sys.exit(f"ERROR: {cache} holds no measurement of a scene other than {scene}")
    trust = fit_trust_chosen(train, gate_defaults=fixed_gate_settings())
    # The cache is calibrate_trust.py's "<matcher>-side<max_side>-rot<deg>.pkl": the edges
    # must come from the matcher it measured.
    matcher = cache.stem.rsplit("-side", 1)[0]
    return {"matcher": {"name": matcher}, "gate": trust["gate"], "covariance": trust["covariance"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, default=SHARED / "strecha" / "fountain-P11")
    parser.add_argument(
        "--shared-data", type=Path, default=SHARED, help="the corpus the trust cache measured"
    )
    parser.add_argument("--odom-rot-deg", type=float, default=OdometryNoise.rot_sigma_deg)
    parser.add_argument("--odom-trans-frac", type=float, default=OdometryNoise.trans_frac)
    parser.add_argument("--odom-bias-deg", type=float, default=OdometryNoise.yaw_bias_deg)
    parser.add_argument("--min-gap", type=int, default=2)
    parser.add_argument("--false-deg", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trust-cache", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        import gtsam  # noqa: F401
    except ImportError:
        sys.exit("ERROR: this script needs gtsam 4.3: pip install gtsam==4.3.0")

    views = load_middlebury(args.scene)
    scene = views[0].group
    truth = [v.cam_to_world for v in views]
    conf = held_out_conf(args.trust_cache, scene, args.shared_data) if args.trust_cache else {}
    print(
        f"{scene}: {len(views)} views; gate and covariance "
        + ("fitted without this scene (held out)" if conf else "as shipped (may be in-sample)")
    )
    noise = OdometryNoise(args.odom_rot_deg, args.odom_trans_frac, args.odom_bias_deg)
    rows, edges, refused = loop_closure_rows(
        truth,
        [view_keyframe(v) for v in views],
        conf,
        noise,
        args.min_gap,
        args.false_deg,
        args.seed,
    )
    errors = [
        rotation_error_deg(edge.pose.R, (np.linalg.inv(truth[edge.i]) @ truth[edge.j])[:3, :3])
        for edge in edges
    ]
    print(
        f"loop edges asked: {len(edges) + len(refused)}, SUCCESS: {len(edges)} "
        f"(rotation error median {np.median(errors) if errors else float('nan'):.2f} deg, "
        f"max {max(errors) if errors else float('nan'):.2f} deg)"
    )
    print(f"{'trajectory':>44s} {'ATE m':>8s} {'rot deg':>8s}")
    for name, poses in rows.items():
        ate, rot = absolute_trajectory_error(poses, truth)
        print(f"{name:>44s} {ate:8.3f} {rot:8.2f}")
    if args.plot:
        plot(rows, truth, [(e.i, e.j) for e in edges], args.plot, scene)
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
    for i, j in edges:
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
