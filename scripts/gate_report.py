#!/usr/bin/env python3
"""Precision and acceptance of the direct-path gate per rotation bin, on every templeRing pair.

Precision: share of accepted pairs with rotation error < 5 deg. Acceptance: share of the bin's
pairs the gate accepts. `--fit` refits the support model (core.gate) on these pairs and prints
the weights to put in the `gate` conf (use it when changing the matcher).

    python scripts/gate_report.py [--ring test/data/templering]
        [--pairs test/data/posed_pairs_fixture] [--conf '{"gate": {...}}'] [--fit]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from posecrafter_ros.eval.bench_common import run_direct_on_pairs
from posecrafter_ros.eval.datasets import all_pairs, load_middlebury, load_posed_pairs

ROOT = Path(__file__).resolve().parent.parent
BINS = [(0, 15), (15, 30), (30, 50), (50, 65), (65, 90), (90, 120), (120, 180.01)]


def fit_support_model(inliers, matches, wrong, max_rotation, rotations) -> np.ndarray:
    """Maximum-likelihood logistic weights (bias, ln inliers, inlier ratio) for P(error >= 5)."""
    from scipy.optimize import minimize

    inliers, matches = np.maximum(inliers, 1), np.maximum(matches, 1)
    use = rotations <= max_rotation
    X = np.stack([np.ones_like(inliers), np.log(inliers), inliers / matches], axis=1)[use]
    y = wrong[use].astype(float)

    def nll(w):
        z = X @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    return minimize(nll, np.zeros(3), method="BFGS").x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ring", type=Path, default=ROOT / "test/data/templering")
    parser.add_argument("--pairs", type=Path, default=ROOT / "test/data/posed_pairs_fixture")
    parser.add_argument("--conf", type=json.loads, default={}, help="direct-path conf (JSON)")
    parser.add_argument("--fit", action="store_true", help="refit the gate's support model")
    args = parser.parse_args(argv)

    ring_runs = run_direct_on_pairs(all_pairs(load_middlebury(args.ring)), args.conf)
    rot = np.array([r.pair.rotation_deg for r in ring_runs])
    err = np.array([r.rotation_error_deg for r in ring_runs])
    acc = np.array([r.estimate.accepted for r in ring_runs])
    print(
        f"templeRing, all {len(ring_runs)} pairs: gate accepts {acc.sum()}, "
        "precision (rot err < 5 deg) "
        f"{np.mean(err[acc] < 5):.3f}"
    )
    print(
        f"{'bin (deg)':>12} {'pairs':>6} {'accepted':>9} {'acceptance':>11} "
        f"{'precision':>10} {'R<5 all':>8}"
    )
    for lo, hi in BINS:
        sel = (rot >= lo) & (rot < hi)
        n_acc = int(acc[sel].sum())
        precision = f"{np.mean(err[sel & acc] < 5):.3f}" if n_acc else "-"
        print(
            f"{f'[{lo},{math.floor(hi)})':>12} {sel.sum():6d} {n_acc:9d} {np.mean(acc[sel]):11.3f} "
            f"{precision:>10} {np.mean(err[sel] < 5):8.3f}"
        )
    under30 = rot < 30
    print(f"acceptance under 30 deg: {np.mean(acc[under30]):.3f}")
    if args.pairs and (args.pairs / "pairs.json").is_file():
        print("posed-pairs fixture:")
        for run in run_direct_on_pairs(load_posed_pairs(args.pairs), args.conf):
            est = run.estimate
            print(
                f"  {run.pair.name:38s} {run.pair.rotation_deg:6.1f} deg  "
                f"accepted={str(est.accepted):5s} "
                f"rot err {run.rotation_error_deg:6.2f}  "
                f"inliers {est.num_inliers}/{est.num_matches}"
                f"  ({est.reason})"
            )
    if args.fit:
        inl = np.array([r.estimate.num_inliers for r in ring_runs], float)
        matches = np.array([r.estimate.num_matches for r in ring_runs], float)
        w = fit_support_model(inl, matches, err >= 5, 90.0, rot)
        print(
            f"support model fit (pairs <= 90 deg): bias={w[0]:.2f} w_log_inliers={w[1]:.2f} "
            f"w_inlier_ratio={w[2]:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
