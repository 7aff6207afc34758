"""The bridge's covariance model and its leave-one-scene-out fit (scripts/bridge_covariance.py).

Every answered oracle row (scripts/oracle_report.py --json) carries what the COLMAP pose model
built its covariance from (`stages.pose.CovarianceTerms`: the bundle adjustment's marginal
covariance, the number of links, the pairs' disagreement d) and the rotation error vector
w = log(R_est R_true^T). The rotation block of the model (`stages.pose.bridge_covariance`) is

    C(s, sigma) = weight * d^2 * I + s * C_BA + (views - 1) * sigma^2 * I

(C_BA: COLMAP's bundle-adjustment marginal covariance of the relative rotation; weight:
`pair_disagreement_weight`, set, not fitted; sigma: `rotation_sigma_per_link_deg`, a per-link
floor; s: `covariance_scale`).

`fit`: for each sigma of a grid, s is the smallest factor (0, or from 1e-3) that puts 95% of the
answers' rotation errors (pooled over the scenes) inside the 95% chi-square(3) region and at
least 90% of each scene's; of those calibrated pairs the sharpest is kept (smallest median
log det C). `leave_one_scene_out` fits on the other scenes and reports each held-out scene's
coverage. The translation direction's block (the same floor across t, s times the BA's) is not
fitted; its held-out coverage is reported beside (`translation_coverage`).

Why each scene: scenes differ in error level more than the BA's covariance says (on the Strecha
walks and templeRing, answers 0.2-1.3 deg off on one, 1-4 deg on another, at the same BA
sigma), and a pooled-only fit follows the scene with the most answers. An unseen scene is
better served by a model that holds on every scene it was fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.covariance import (
    CHI2_95_2DOF,
    CHI2_95_3DOF,
    translation_direction_mahalanobis2,
)

COVERAGE = 0.95  # of the pooled answers inside the 95% region
SCENE_COVERAGE = 0.90  # ... and of each scene's (the low end of the 90-99% target)
SIGMA_GRID_DEG = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


class Answer:
    """One bridged answer: its errors and what its covariance is made of."""

    def __init__(self, row: dict, disagreement_weight: float):
        terms = row["covariance_terms"]
        self.links = int(terms["links"])
        ba = np.asarray(terms["ba"], float)
        self.ba, self.ba_translation = ba[3:, 3:], ba[:3, :3]
        self.level = disagreement_weight * float(terms["pair_disagreement"]) ** 2
        self.t_unit = np.asarray(terms["t_unit"], float)
        self.error = np.asarray(row["rotation_error"], float)
        self.translation_error = np.asarray(row["translation_error"], float)

    def floor(self, sigma_deg: float) -> float:
        return self.level + self.links * np.radians(sigma_deg) ** 2

    def covariance(self, scale: float, sigma_deg: float) -> np.ndarray:
        """[3 x 3] rotation block (stages.pose.bridge_covariance)."""
        return scale * self.ba + self.floor(sigma_deg) * np.eye(3)

    def inside(self, scale: float, sigma_deg: float) -> bool:
        return _mahalanobis2(self.error, self.covariance(scale, sigma_deg)) <= CHI2_95_3DOF

    def translation_inside(self, scale: float, sigma_deg: float) -> bool:
        """Whether the unit translation's direction error lies inside the 95% region of its
        covariance across t (2 degrees of freedom: along t is the unobservable scale)."""
        covariance = np.zeros((6, 6))
        covariance[:3, :3] = scale * self.ba_translation + self.floor(sigma_deg) * np.eye(3)
        try:
            distance2 = translation_direction_mahalanobis2(
                covariance, self.t_unit, self.t_unit - self.translation_error
            )
        except np.linalg.LinAlgError:  # a zero covariance covers nothing
            return False
        return distance2 <= CHI2_95_2DOF


def _mahalanobis2(error: np.ndarray, covariance: np.ndarray) -> float:
    """error^T C^-1 error; infinite when C is singular (a zero covariance covers nothing)."""
    try:
        return float(error @ np.linalg.solve(covariance, error))
    except np.linalg.LinAlgError:
        return float("inf")


def coverage(answers: Sequence[Answer], scale: float, sigma_deg: float) -> float:
    return float(np.mean([a.inside(scale, sigma_deg) for a in answers]))


def translation_coverage(answers: Sequence[Answer], scale: float, sigma_deg: float) -> float:
    return float(np.mean([a.translation_inside(scale, sigma_deg) for a in answers]))


def calibrated_scale(answers: Sequence[Answer], sigma_deg: float, level: float) -> float | None:
    """Smallest s, 0 or in [1e-3, 1e7], with `level` of the answers inside (bisection in
    log s); None if none."""
    if coverage(answers, 0.0, sigma_deg) >= level:
        return 0.0  # the other terms alone cover them: no BA term
    lo, hi = 1e-3, 1e7
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
