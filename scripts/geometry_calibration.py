#!/usr/bin/env python3
"""Calibration of the direct path's covariance: share of pairs whose rotation error lies inside
the 95% region of the reported covariance (chi-square, 3 dof, on the rotation block).

    python scripts/geometry_calibration.py [--ring test/data/templering]
        [--pairs test/data/posed_pairs_fixture] [--max-deg 60]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import chi2

from posecrafter_ros.core.covariance import rotation_mahalanobis2
from posecrafter_ros.eval.bench_common import run_direct_on_pairs
from posecrafter_ros.eval.datasets import all_pairs, load_middlebury, load_posed_pairs

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ring", type=Path, default=ROOT / "test/data/templering")
    parser.add_argument("--pairs", type=Path, default=ROOT / "test/data/posed_pairs_fixture")
    parser.add_argument(
        "--max-deg", type=float, default=60.0, help="ring pairs up to this rotation"
    )
    parser.add_argument("--conf", type=json.loads, default={}, help="direct-path conf (JSON)")
    args = parser.parse_args(argv)

    pairs = all_pairs(load_middlebury(args.ring), args.max_deg)
    num_ring = len(pairs)
    if args.pairs and (args.pairs / "pairs.json").is_file():
        pairs += load_posed_pairs(args.pairs)
    runs = run_direct_on_pairs(pairs, args.conf)
    bound = chi2.ppf(0.95, 3)
    inside, failed = [], 0
    for run in runs:
        if run.estimate.pose is None:
            failed += 1  # no estimate, no covariance: counted as outside
            inside.append(False)
            continue
        R_true = run.pair.R_0to1.T  # ground-truth pose of B in A
        inside.append(
            rotation_mahalanobis2(run.estimate.pose.covariance, run.estimate.pose.R, R_true) < bound
        )
    inside = np.asarray(inside)
    ring = np.arange(len(runs)) < num_ring  # runs keep the order of `pairs`
    print(
        f"pairs: {len(runs)} ({ring.sum()} templeRing <= {args.max_deg:g} deg, "
        f"{(~ring).sum()} posed-pairs "
        f"fixture); no estimate: {failed}"
    )
    print(f"templeRing:        {inside[ring].mean():.3f} inside the 95% rotation region")
    if (~ring).any():
        print(f"posed-pairs:       {inside[~ring].mean():.3f} inside the 95% rotation region")
    print(
        f"calibration (all): {inside.mean():.3f} inside the 95% rotation region (target 0.85-0.99)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
