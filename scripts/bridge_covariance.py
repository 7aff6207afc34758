#!/usr/bin/env python3
"""Fit the bridge covariance and check it out of sample: leave one scene out.

Reads the per-pair rows that scripts/oracle_report.py --json wrote. Every answered pair carries
the [6 x 6] covariance the COLMAP pose model returned, the model's covariance settings, the
number of views of the bridge and the rotation error vector w = log(R_est R_true^T). The
rotation block of the model is

    C(s, sigma) = s * C_BA + (views - 1) * sigma^2 * I

(C_BA: COLMAP's bundle-adjustment marginal covariance of the relative rotation, recovered from
the row; sigma: `rotation_sigma_per_link_deg`, a per-link floor; s: `covariance_scale`).

Protocol, per held-out scene: on the OTHER scenes' answers, for each sigma of a grid, s is the
smallest factor that puts 95% of their rotation errors inside the 95% chi-square(3) region
(w^T C^-1 w <= 7.81); of those calibrated pairs (sigma, s) the sharpest is kept (smallest
median log det C over the training answers). The held-out scene's coverage with that pair is
reported: the fraction of its rotation errors inside the 95% region (target 0.90-0.99). The pair
fitted on all scenes the same way is the one to ship in the pose model's defaults.

    python scripts/bridge_covariance.py REPORT.json [REPORT.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import chi2

CHI2_3_95 = float(chi2.ppf(0.95, 3))
COVERAGE = 0.95
SIGMA_GRID_DEG = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


class Answer:
    """One bridged answer: its rotation error, BA rotation covariance and number of links."""

    def __init__(self, row: dict):
        model = row["covariance_model"]
        self.links = int(row["num_views"]) - 1
        used_floor = self.links * np.radians(model["rotation_sigma_per_link_deg"]) ** 2
        rotation = np.asarray(row["covariance"], float)[3:, 3:]
        self.ba = (rotation - used_floor * np.eye(3)) / float(model["covariance_scale"])
        self.error = np.asarray(row["rotation_error"], float)

    def covariance(self, scale: float, sigma_deg: float) -> np.ndarray:
        return scale * self.ba + self.links * np.radians(sigma_deg) ** 2 * np.eye(3)

    def inside(self, scale: float, sigma_deg: float) -> bool:
        w = self.error
        return float(w @ np.linalg.solve(self.covariance(scale, sigma_deg), w)) <= CHI2_3_95


def coverage(answers: list[Answer], scale: float, sigma_deg: float) -> float:
    return float(np.mean([a.inside(scale, sigma_deg) for a in answers]))


def calibrated_scale(answers: list[Answer], sigma_deg: float) -> float | None:
    """Smallest s with COVERAGE of the answers inside (bisection in log s); None if none."""
    if sigma_deg > 0 and coverage(answers, 0.0, sigma_deg) >= COVERAGE:
        return 0.0
    lo, hi = 1e-3, 1e7
    if coverage(answers, hi, sigma_deg) < COVERAGE:
        return None  # errors no factor covers (the BA says nothing about them)
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        lo, hi = (lo, mid) if coverage(answers, mid, sigma_deg) >= COVERAGE else (mid, hi)
    return hi


def fit(answers: list[Answer]) -> tuple[float, float]:
    """(scale, sigma_deg): the sharpest calibrated model on these answers."""
    best = None
    for sigma in SIGMA_GRID_DEG:
        scale = calibrated_scale(answers, sigma)
        if scale is None:
            continue
        sharpness = float(
            np.median([np.linalg.slogdet(a.covariance(scale, sigma))[1] for a in answers])
        )
        if best is None or sharpness < best[0]:
            best = (sharpness, scale, sigma)
    if best is None:
        raise ValueError("no model in the grid covers these answers")
    return best[1], best[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path)
    args = parser.parse_args(argv)
    by_scene: dict[str, list[Answer]] = defaultdict(list)
    refused: dict[str, int] = defaultdict(int)
    for path in args.reports:
        for row in json.loads(path.read_text()):
            if row.get("covariance_model") is None:
                continue  # not the COLMAP pose model's covariance
            if row.get("covariance") is not None and row.get("rotation_error") is not None:
                by_scene[row["set"]].append(Answer(row))
            else:
                refused[row["set"]] += 1
    if len(by_scene) < 2:
        print("need answered pairs from at least two scenes", file=sys.stderr)
        return 1
    print(
        f"{'held-out scene':>16} {'answers':>7} {'refused':>7} {'fit: scale':>10} "
        f"{'sigma/link':>10} {'raw 95%':>8} {'held-out 95%':>12}"
    )
    inside_all, n_all = 0, 0
    for scene, answers in sorted(by_scene.items()):
        others = [a for s, group in by_scene.items() if s != scene for a in group]
        scale, sigma = fit(others)
        raw = coverage(answers, 1.0, 0.0)  # COLMAP's covariance as it is
        held_out = coverage(answers, scale, sigma)
        inside_all += round(held_out * len(answers))
        n_all += len(answers)
        print(
            f"{scene[:16]:>16} {len(answers):7d} {refused[scene]:7d} {scale:10.2f} "
            f"{sigma:10.2f} {raw:8.2f} {held_out:12.2f}"
        )
    pooled = [a for group in by_scene.values() for a in group]
    scale, sigma = fit(pooled)
    print(
        f"pooled held-out coverage {inside_all / n_all:.2f} of {n_all} answers; fitted on all "
        f"scenes: covariance_scale {scale:.2f}, rotation_sigma_per_link_deg {sigma:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
