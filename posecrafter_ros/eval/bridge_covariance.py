"""The bridge's covariance model and its leave-one-scene-out fit (scripts/bridge_covariance.py).

Every answered oracle row (scripts/oracle_report.py --json) carries what the COLMAP pose model
built its covariance from (`stages.pose.CovarianceTerms`: the bundle adjustment's marginal
covariance, the number of links, the pairs' disagreement d) and the rotation error vector
w = log(R_est R_true^T). The rotation block of the model (`stages.pose.bridge_covariance`) is

    C(s, sigma) = weight * d^2 * I + s * C_BA + (views - 1) * sigma^2 * I

(C_BA: COLMAP's bundle-adjustment marginal covariance of the relative rotation; weight:
`pair_disagreement_weight`, set, not fitted; sigma: `rotation_sigma_per_link_deg`, a per-link
floor; s: `covariance_scale`).

`fit`: for each sigma of a grid, s is the smallest factor (from 1e-3) that puts 95% of the
answers' rotation errors (pooled over the scenes) inside the 95% chi-square(3) region and at
least 90% of each scene's; of those calibrated pairs the sharpest is kept (smallest median
log det C). `leave_one_scene_out` fits on the other scenes and reports each held-out scene's
coverage.

Why each scene: scenes differ in error level more than the BA's covariance says (on the Strecha
walks and templeRing, answers 0.2-1.3 deg off on one, 1-4 deg on another, at the same BA
sigma), and a pooled-only fit follows the scene with the most answers. An unseen scene is
better served by a model that holds on every scene it was fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.covariance import CHI2_95_3DOF

COVERAGE = 0.95  # of the pooled answers inside the 95% region
SCENE_COVERAGE = 0.90  # ... and of each scene's (the low end of the 90-99% target)
SIGMA_GRID_DEG = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


class Answer:
    """One bridged answer: its rotation error and what its rotation covariance is made of."""

    def __init__(self, row: dict, disagreement_weight: float):
        terms = row["covariance_terms"]
        self.links = int(terms["links"])
        self.ba = np.asarray(terms["ba"], float)[3:, 3:]
        self.level = disagreement_weight * float(terms["pair_disagreement"]) ** 2
        self.error = np.asarray(row["rotation_error"], float)

    def covariance(self, scale: float, sigma_deg: float) -> np.ndarray:
        floor = self.level + self.links * np.radians(sigma_deg) ** 2
        return scale * self.ba + floor * np.eye(3)

    def inside(self, scale: float, sigma_deg: float) -> bool:
        w = self.error
        return float(w @ np.linalg.solve(self.covariance(scale, sigma_deg), w)) <= CHI2_95_3DOF


def coverage(answers: Sequence[Answer], scale: float, sigma_deg: float) -> float:
    return float(np.mean([a.inside(scale, sigma_deg) for a in answers]))


def calibrated_scale(answers: Sequence[Answer], sigma_deg: float, level: float) -> float | None:
    """Smallest s in [1e-3, 1e7] with `level` of the answers inside (bisection in log s);
    None if none."""
    lo, hi = 1e-3, 1e7
    if coverage(answers, lo, sigma_deg) >= level:
        return lo
    if coverage(answers, hi, sigma_deg) < level:
        return None  # errors no factor covers (the BA says nothing about them)
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        lo, hi = (lo, mid) if coverage(answers, mid, sigma_deg) >= level else (mid, hi)
    return hi


def fit(scenes: Sequence[Sequence[Answer]]) -> tuple[float, float]:
    """(scale, sigma_deg): the sharpest model calibrated on these scenes' answers (COVERAGE
    pooled, SCENE_COVERAGE on each scene)."""
    answers = [a for scene in scenes for a in scene]
    best = None
    for sigma in SIGMA_GRID_DEG:
        scales = [calibrated_scale(answers, sigma, COVERAGE)]
        scales += [calibrated_scale(scene, sigma, SCENE_COVERAGE) for scene in scenes]
        if any(scale is None for scale in scales):
            continue
        scale = max(scales)
        sharpness = float(
            np.median([np.linalg.slogdet(a.covariance(scale, sigma))[1] for a in answers])
        )
        if best is None or sharpness < best[0]:
            best = (sharpness, scale, sigma)
    if best is None:
        raise ValueError("no model in the grid covers these answers")
    return best[1], best[2]


def leave_one_scene_out(
    by_scene: dict[str, Sequence[Answer]],
) -> dict[str, tuple[float, float, float]]:
    """{held-out scene: (scale, sigma_deg, its coverage)}, each fitted on the other scenes."""
    out = {}
    for scene, answers in by_scene.items():
        scale, sigma = fit([group for name, group in by_scene.items() if name != scene])
        out[scene] = (scale, sigma, coverage(answers, scale, sigma))
    return out
