"""Fitting a matcher's gate and covariance out of sample (leave one scene out).

    corpus = load_corpus(...)                          # scenes of posed pairs
    samples = measure_corpus(corpus, matcher_conf)     # matching + geometry once (cacheable)
    for scene in scenes: trust = fit_trust_chosen(train); evaluate(test, trust)
    fit_trust_chosen(all samples) -> the numbers that ship in core/matching/trust/<matcher>.json

`fit_trust_chosen` also chooses the operating point (how many wrong training answers the
threshold may admit, how scenes are weighted) out of sample: by leaving one of its own
training scenes out at a time (nested), against the targets below.

A `Sample` is one pair's `Measurement` (core.twoview: what the images say, before any fitted
number) with its ground truth, so refitting runs only `judge` (milliseconds per pair).
Every fitted number goes through the same `judge` the node runs.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.covariance import (
    CHI2_95_2DOF,
    CHI2_95_3DOF,
    rotation_mahalanobis2,
    so3_log,
    translation_direction_mahalanobis2,
)
from ..core.focal import with_focal_factor
from ..core.gate import (
    INTRINSICS_CRITERIA,
    SUPPORT_FEATURES,
    GateConf,
    decide,
    probability_wrong,
)
from ..core.matching import get_matcher
from ..core.twoview import (
    DEFAULT_COVARIANCE_CONF,
    DEFAULT_GEOMETRY_CONF,
    Correspondences,
    Measurement,
    TwoViewEstimate,
    judge,
    match_keyframes,
    measure,
)
from ..core.types import Keyframe
from .datasets import PosedPair, all_pairs, load_middlebury, load_posed_pairs
from .frames import read_rgb
from .metrics import rotation_error_deg

WRONG_DEG = 5.0  # "wrong" for the support model: rotation error at least this
INFLATIONS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0)
ROTATION_FLOORS_DEG = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
TRANSLATION_FLOORS_DEG = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0)
P_WRONG_THRESHOLDS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
# Share of the right training answers the focal-length check may refuse (fit_max_focal_evidence).
FOCAL_FALSE_FLAG_QUANTILE = 0.02
# Targets among the SUCCESS answers of scenes not used for fitting: at most this share off by
# more than 5 deg and by more than 15 deg (what a pose-graph back end can absorb).
TARGET_OFF_5 = 0.05
TARGET_OFF_15 = 0.01
# Operating points `choose_operating_point` tries (fit_trust options; on a tie the earlier
# one): the scene-weighted share of accepted training answers off by >= 5 deg the threshold
# may admit, and the scene weighting (1: every scene the same total, 0: every pair the same).
OPERATING_POINTS = tuple(
    {"scene_weight_power": power, "max_false_share": share}
    for power in (1.0, 0.0)
    for share in (0.01, 0.02, 0.03, 0.04, 0.05)
)


@dataclass
class Sample:
    """One posed pair measured with one matcher."""

    scene: str
    pair: PosedPair
    measurement: Measurement
    # The matches it was measured from (to measure them again, e.g. under a wrong focal).
    correspondences: Correspondences | None = None

    @property
    def rotation_deg(self) -> float:
        return self.pair.rotation_deg

    @property
    def rotation_error_deg(self) -> float:
        """Rotation error of the measured pose (judge keeps it) against the ground truth."""
        return rotation_error_deg(self.measurement.R.T, self.pair.R_0to1)


# -- corpus ---------------------------------------------------------------------------------


def load_corpus(
    strecha: Path | None,
    templering: Path | None,
    posed_pairs: Path | None,
    max_rotation_deg: float = 120.0,
    max_pairs_per_scene: int = 250,
    seed: int = 0,
) -> dict[str, list[PosedPair]]:
    """Scene name -> posed pairs: each Strecha walk, templeRing, and the fixture's robovision
    pairs (its templeRing pairs are already in the ring). Pairs of a scene beyond
    `max_pairs_per_scene` are subsampled (seeded) to bound the matching time."""
    scenes: dict[str, list[PosedPair]] = {}
    if strecha is not None:
        for folder in sorted(p for p in Path(strecha).iterdir() if p.is_dir()):
            scenes[folder.name] = all_pairs(load_middlebury(folder), max_rotation_deg)
    if templering is not None:
        scenes["templeRing"] = all_pairs(load_middlebury(templering), max_rotation_deg)
    if posed_pairs is not None:
        robovision = [p for p in load_posed_pairs(posed_pairs) if "robovision" in str(p.image0)]
        if robovision:
            scenes["robovision"] = robovision
    rng = np.random.default_rng(seed)
    for name, pairs in scenes.items():
        if len(pairs) > max_pairs_per_scene:
            keep = np.sort(rng.choice(len(pairs), max_pairs_per_scene, replace=False))
            scenes[name] = [pairs[i] for i in keep]
    return scenes


def measure_corpus(
    corpus: dict[str, list[PosedPair]],
    matcher_conf: dict[str, Any],
    cache: Path | None = None,
    geometry_conf: dict[str, Any] | None = None,
    log=print,
) -> list[Sample]:
    """Match every pair once per image set (features extracted once per image) and measure it.

    With `cache`, the correspondences (the matcher's output) are read from / written to that
    pickle (a run folder's file, never committed); the geometry is always measured again, so
    a change to `core.twoview.measure` never meets a stale cache (about 0.05 s per pair)."""
    cached = read_correspondence_cache(cache) if cache is not None else {}
    matcher = get_matcher(matcher_conf)
    geometry_conf = {**DEFAULT_GEOMETRY_CONF, **(geometry_conf or {})}
    keyframes: dict[Path, Keyframe] = {}
    features: dict[Path, Any] = {}

    def prepared(path: Path, K: np.ndarray):
        if path not in features:
            keyframes[path] = Keyframe(read_rgb(path), np.asarray(K, float))
            features[path] = matcher.extract(keyframes[path].image)
        return keyframes[path], features[path]

    samples, started, fresh = [], time.perf_counter(), 0
    total = sum(len(p) for p in corpus.values())
    for scene, pairs in corpus.items():
        for pair in pairs:
            key = f"{scene}/{pair.name}"
            if key not in cached:
                kf_a, feats_a = prepared(pair.image0, pair.K0)
                kf_b, feats_b = prepared(pair.image1, pair.K1)
                cached[key], _ = match_keyframes(matcher, kf_a, kf_b, feats_a, feats_b)
                fresh += 1
                if fresh % 50 == 0:
                    log(
                        f"  matched {fresh} new pairs ({len(samples) + 1}/{total}), "
                        f"{time.perf_counter() - started:.0f} s"
                    )
                    if cache is not None:
                        _write_cache(cache, cached)
            corr = cached[key]
            samples.append(Sample(scene, pair, measure(corr, geometry_conf), corr))
    if cache is not None and fresh:
        _write_cache(cache, cached)
    return samples


def read_correspondence_cache(cache: Path) -> dict[str, Correspondences]:
    """ "<scene>/<pair name>" -> correspondences from a `measure_corpus` cache (empty when the
    file is missing; entries of another format are dropped, so they are matched again)."""
    if not cache.is_file():
        return {}
    stored = pickle.loads(cache.read_bytes())
    return {k: v for k, v in stored.items() if isinstance(v, Correspondences)}


def _write_cache(cache: Path, cached: dict[str, Correspondences]) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(cached))


# -- fitting --------------------------------------------------------------------------------


def fixed_gate_settings() -> dict[str, Any]:
    """The gate's settings that are not fitted (core.gate.GateConf defaults), stored with the
    fitted ones so a trust file is complete on its own."""
    conf = GateConf()
    return {
        "max_rotation_sigma_deg": conf.max_rotation_sigma_deg,
        "min_inliers": conf.min_inliers,
        "min_model_support": conf.min_model_support,
        "max_focal_evidence": conf.max_focal_evidence,
        "reject_degeneracies": list(conf.reject_degeneracies),
    }


def resolved_conf(trust: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The `judge` conf of a trust record (as core.twoview.resolve_conf would build it)."""
    return {
        "gate": dict(trust["gate"]),
        "covariance": {**DEFAULT_COVARIANCE_CONF, **trust["covariance"]},
    }


def _scene_weights(samples: Sequence[Sample], power: float = 1.0) -> np.ndarray:
    """Pair weights (mean 1) proportional to (pairs of the pair's scene)^-power: with power 1
    every scene has the same total (a 1000-pair scene does not decide alone, but a 5-pair
    scene counts as much as a 250-pair one); with 0 every pair counts the same."""
    scenes = [s.scene for s in samples]
    counts = {name: scenes.count(name) for name in set(scenes)}
    weights = np.array([counts[name] ** -power for name in scenes], float)
    return weights * len(samples) / weights.sum()


def fit_support_model(
    samples: Sequence[Sample],
    rotation_errors: np.ndarray,
    l2: float = 1.0,
    scene_weight_power: float = 1.0,
) -> tuple[float, dict[str, float]]:
    """(bias, weights) of P(rotation error >= WRONG_DEG): L2-regularised logistic regression on
    standardised features, pairs weighted by `_scene_weights`."""
    from scipy.optimize import minimize

    names = list(SUPPORT_FEATURES)
    X = np.array([[s.measurement.features[n] for n in names] for s in samples])
    y = (rotation_errors >= WRONG_DEG).astype(float)
    weights = _scene_weights(samples, scene_weight_power)
    mean, std = X.mean(axis=0), np.maximum(X.std(axis=0), 1e-6)
    Z = (X - mean) / std

    def loss(w: np.ndarray) -> float:
        z = w[0] + Z @ w[1:]
        return float(np.sum(weights * (np.logaddexp(0.0, z) - y * z)) + l2 * w[1:] @ w[1:])

    w = minimize(loss, np.zeros(len(names) + 1), method="BFGS").x
    raw = w[1:] / std
    bias = float(w[0] - raw @ mean)
    return bias, {n: float(v) for n, v in zip(names, raw)}


def _judge_all(samples: Sequence[Sample], trust: dict[str, Any]) -> list[TwoViewEstimate]:
    conf = resolved_conf(trust)
    return [judge(s.measurement, conf) for s in samples]


def fit_trust(
    samples: Sequence[Sample],
    max_false_share: float = 0.02,
    target_coverage: float = 0.95,
    gate_defaults: dict[str, Any] | None = None,
    scene_weight_power: float = 1.0,
) -> dict[str, Any]:
    """Gate weights, acceptance threshold and covariance calibration fitted on `samples`.

    1. support model on every pair with a pose (label: rotation error >= 5 deg);
    2. the largest P(wrong) threshold whose accepted training answers have at most
       `max_false_share` off by >= 5 deg (both steps weighted by `_scene_weights` with
       `scene_weight_power`);
    3. the covariance inflation and rotation floor with the smallest median rotation std among
       those putting >= `target_coverage` of the accepted answers' rotation errors inside the
       95% region; then the translation-direction floor likewise (2 dof, observable only).
    """
    posed = [s for s in samples if s.measurement.R is not None]
    rot_err = np.array([s.rotation_error_deg for s in posed])
    bias, weights = fit_support_model(posed, rot_err, scene_weight_power=scene_weight_power)
    gate = {**(gate_defaults or {}), "bias": bias, "weights": weights}
    gate["max_focal_evidence"] = fit_max_focal_evidence(
        posed, rot_err, float(GateConf.from_dict(gate).max_focal_evidence)
    )
    # Every criterion but the support model and the rotation std (which waits for the
    # calibrated covariance).
    conf = GateConf.from_dict(gate)
    p_wrong = np.array([probability_wrong(s.measurement.features, conf) for s in posed])
    supported = np.array(
        [
            decide(
                0.0,
                0.0,
                s.measurement.num_inliers,
                s.measurement.degeneracy,
                s.measurement.features["model_support"],
                conf,
                s.measurement.focal,
            ).accepted
            for s in posed
        ]
    )
    sample_weights = _scene_weights(posed, scene_weight_power)
    gate["max_p_wrong"] = P_WRONG_THRESHOLDS[0]
    for threshold in P_WRONG_THRESHOLDS:
        accepted = supported & (p_wrong <= threshold)
        wrong = rot_err >= WRONG_DEG
        if accepted.any() and np.average(wrong[accepted], weights=sample_weights[accepted]) <= (
            max_false_share
        ):
            gate["max_p_wrong"] = threshold
    accepted = supported & (p_wrong <= gate["max_p_wrong"])
    covariance = fit_covariance([s for s, a in zip(posed, accepted) if a], target_coverage)
    return {"gate": gate, "covariance": covariance}


def fit_max_focal_evidence(
    posed: Sequence[Sample], rotation_errors: np.ndarray, floor: float
) -> float:
    """The focal-length evidence (core.focal) above which only FOCAL_FALSE_FLAG_QUANTILE of the
    right answers (correct intrinsics, rotation error < WRONG_DEG) fall, at least `floor`: how
    clearly the matches must prefer another focal length before the gate names the given one
    wrong. (The essential-vs-fundamental support bound is not fitted: on a planar or repeated
    facade F absorbs more matches under the right K, so a bound fitted on other scenes refuses
    right answers there; the gate keeps its fixed floor for gross contradictions.)"""
    evidence = [
        s.measurement.focal.evidence
        for s, error in zip(posed, rotation_errors)
        if error < WRONG_DEG
    ]
    if not evidence:
        return floor
    return max(floor, round(float(np.quantile(evidence, 1.0 - FOCAL_FALSE_FLAG_QUANTILE)), 1))


def _error_vectors(samples: Sequence[Sample]):
    """Per sample: rotation error vector w (R_true = exp([w]x) R_est) with the rotation block
    of the Gauss-Newton covariance, and, where the translation is observable, the direction
    error in the tangent basis of t with its [2 x 2] block (core.covariance conventions)."""
    rot_w, rot_cov, trans_d, trans_cov = [], [], [], []
    for s in samples:
        m = s.measurement
        rot_w.append(so3_log(s.pair.R_0to1.T @ m.R.T))
        rot_cov.append(m.cov_gn if m.basis is None else m.cov_gn[2:, 2:])
        if m.basis is not None:
            t_true = _true_t_b_in_a(s)
            t_true = t_true / np.linalg.norm(t_true)
            angle = math.acos(float(np.clip(m.t @ t_true, -1.0, 1.0)))
            tangent = t_true - (m.t @ t_true) * m.t
            norm = float(np.linalg.norm(tangent))
            trans_d.append(m.basis.T @ (tangent * (angle / norm if norm > 1e-12 else 0.0)))
            trans_cov.append(m.cov_gn[:2, :2])
    return (
        np.array(rot_w),
        np.array(rot_cov),
        np.array(trans_d).reshape(-1, 2),
        np.array(trans_cov).reshape(-1, 2, 2),
    )


def _inside(errors: np.ndarray, blocks: np.ndarray, bound: float) -> np.ndarray:
    """[N] bool: e_i^T blocks_i^-1 e_i < bound."""
    solved = np.linalg.solve(blocks, errors[..., None])[..., 0]
    return np.sum(errors * solved, axis=1) < bound


def _worst_scene_coverage(inside: np.ndarray, scenes: np.ndarray, min_answers: int) -> float:
    """The smallest per-scene share inside (scenes with at least `min_answers` answers; all
    answers pooled when no scene has that many)."""
    shares = [
        inside[scenes == s].mean() for s in np.unique(scenes) if (scenes == s).sum() >= min_answers
    ]
    return float(min(shares)) if shares else float(inside.mean())


def fit_covariance(
    samples: Sequence[Sample], target_coverage: float = 0.95, min_answers: int = 10
) -> dict[str, float]:
    """Inflation and floors (see fit_trust, step 3): the coverage that must reach the target is
    the worst training scene's, so the calibration holds on each scene rather than on average;
    the defaults when there is nothing to fit."""
    fitted = {"inflation": 1.0, "rotation_floor_deg": 0.0, "translation_floor_deg": 0.0}
    if not samples:
        return fitted
    rot_w, rot_cov, trans_d, trans_cov = _error_vectors(samples)
    scenes = np.array([s.scene for s in samples])
    eye3 = np.eye(3)
    best = None
    for inflation in INFLATIONS:
        for floor in ROTATION_FLOORS_DEG:
            blocks = inflation * rot_cov + math.radians(floor) ** 2 * eye3
            coverage = _worst_scene_coverage(
                _inside(rot_w, blocks, CHI2_95_3DOF), scenes, min_answers
            )
            sigma = float(np.median(np.sqrt(np.linalg.eigvalsh(blocks)[:, -1])))
            # Calibrated candidates first (smallest spread wins), then the best-covering one.
            score = (0, sigma) if coverage >= target_coverage else (1, -coverage)
            if best is None or score < best[0]:
                best = (score, inflation, floor)
    fitted["inflation"], fitted["rotation_floor_deg"] = best[1], best[2]
    observable = np.array([s.measurement.basis is not None for s in samples])
    if observable.any():
        for floor in TRANSLATION_FLOORS_DEG:
            blocks = fitted["inflation"] * trans_cov + math.radians(floor) ** 2 * np.eye(2)
            inside = _inside(trans_d, blocks, CHI2_95_2DOF)
            fitted["translation_floor_deg"] = floor
            if _worst_scene_coverage(inside, scenes[observable], min_answers) >= target_coverage:
                break
    return fitted


def _true_t_b_in_a(sample: Sample) -> np.ndarray:
    """Ground-truth translation of B in A (p_A = R p_B + t) of a pair x_1 = R_0to1 x_0 + t_0to1."""
    return -sample.pair.R_0to1.T @ sample.pair.t_0to1


# -- evaluation -----------------------------------------------------------------------------


@dataclass
class TrustReport:
    """What a SLAM back end would see on a set of pairs."""

    pairs: int
    pairs_under_50: int
    accepted_under_50: int
    success: int
    off_5: int
    off_15: int
    inside_rotation: int
    translation_observable: int
    inside_translation: int

    def row(self) -> dict[str, Any]:
        def share(a: int, b: int) -> float:
            return a / b if b else float("nan")

        return {
            "pairs": self.pairs,
            "accept<50": share(self.accepted_under_50, self.pairs_under_50),
            "success": self.success,
            ">5deg": share(self.off_5, self.success),
            ">15deg": share(self.off_15, self.success),
            "in95%R": share(self.inside_rotation, self.success),
            "in95%t": share(self.inside_translation, self.translation_observable),
        }

    def __add__(self, other: "TrustReport") -> "TrustReport":
        return TrustReport(*(a + b for a, b in zip(vars(self).values(), vars(other).values())))


def evaluate(samples: Sequence[Sample], trust: dict[str, Any]) -> TrustReport:
    """Acceptance, errors of the SUCCESS answers and covariance coverage under `trust`."""
    counts = dict.fromkeys(TrustReport.__dataclass_fields__, 0)
    counts["pairs"] = len(samples)
    for sample, estimate in zip(samples, _judge_all(samples, trust)):
        under_50 = sample.rotation_deg < 50.0
        counts["pairs_under_50"] += under_50
        if not estimate.accepted:
            continue
        counts["accepted_under_50"] += under_50
        rot_err = sample.rotation_error_deg
        counts["success"] += 1
        counts["off_5"] += rot_err > 5.0
        counts["off_15"] += rot_err > 15.0
        pose = estimate.pose
        counts["inside_rotation"] += (
            rotation_mahalanobis2(pose.covariance, pose.R, sample.pair.R_0to1.T) < CHI2_95_3DOF
        )
        if estimate.translation_observable:
            counts["translation_observable"] += 1
            counts["inside_translation"] += (
                translation_direction_mahalanobis2(pose.covariance, pose.t, _true_t_b_in_a(sample))
                < CHI2_95_2DOF
            )
    return TrustReport(**{k: int(v) for k, v in counts.items()})


def verdicts_under_50(samples: Sequence[Sample], trust: dict[str, Any]) -> dict[str, int]:
    """Why the pairs under 50 deg were or were not answered: counts by the gate criterion that
    decided (core.gate.CRITERIA; "no_pose" when no geometry was found) and by whether the
    measured pose was right (rotation error < WRONG_DEG), e.g. "p_wrong (right pose)" (a
    right answer the gate refused) or "accepted (wrong pose)" (a false accept)."""
    counts: dict[str, int] = {}
    for sample, estimate in zip(samples, _judge_all(samples, trust)):
        if sample.rotation_deg >= 50.0:
            continue
        if estimate.pose is None:
            key = "no_pose"
        else:
            right = sample.rotation_error_deg < WRONG_DEG
            key = f"{estimate.info['gate_criterion']} ({'right' if right else 'wrong'} pose)"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


# Focal lengths the intrinsics checks are tested with: the true one times these factors.
WRONG_FOCAL_FACTORS = (1 / 6, 1 / 3, 1 / 2, 2.0, 3.3)


@dataclass
class IntrinsicsReport:
    """How the gate answers the pairs under 50 deg when every focal length is scaled by one
    factor: how many have a pose, how many of those an intrinsics criterion refuses
    (core.gate.INTRINSICS_CRITERIA), how many are still answered and how many of those are
    off by > 5 deg."""

    posed: int = 0
    flagged: int = 0
    success: int = 0
    success_off_5: int = 0

    def __add__(self, other: "IntrinsicsReport") -> "IntrinsicsReport":
        return IntrinsicsReport(*(a + b for a, b in zip(vars(self).values(), vars(other).values())))


def correspondences_with_focal_factor(corr: Correspondences, factor: float) -> Correspondences:
    """The same matches under intrinsics whose focal lengths are `factor` times the given."""
    return dataclasses.replace(
        corr, K_a=with_focal_factor(corr.K_a, factor), K_b=with_focal_factor(corr.K_b, factor)
    )


def intrinsics_report(
    samples: Sequence[Sample],
    trust: dict[str, Any],
    factor: float,
    geometry_conf: dict[str, Any] | None = None,
) -> IntrinsicsReport:
    """The gate's answers to `samples`' pairs under 50 deg with every focal length times
    `factor` (1: as measured, so `flagged` counts false flags), measured again from their
    correspondences."""
    geometry_conf = {**DEFAULT_GEOMETRY_CONF, **(geometry_conf or {})}
    conf = resolved_conf(trust)
    report = IntrinsicsReport()
    for sample in samples:
        if sample.rotation_deg >= 50.0:
            continue
        if factor == 1.0:
            m = sample.measurement
        else:
            m = measure(
                correspondences_with_focal_factor(sample.correspondences, factor), geometry_conf
            )
        if m.R is None:
            continue
        estimate = judge(m, conf)
        report.posed += 1
        report.flagged += estimate.info["gate_criterion"] in INTRINSICS_CRITERIA
        if estimate.accepted:
            report.success += 1
            report.success_off_5 += rotation_error_deg(m.R.T, sample.pair.R_0to1) > 5.0
    return report


def leave_one_scene_out(
    samples: Sequence[Sample], fit=fit_trust, **fit_options
) -> dict[str, tuple[TrustReport, dict[str, Any]]]:
    """Held-out scene -> (report on it, numbers `fit` fitted on all other scenes)."""
    out = {}
    for scene in dict.fromkeys(s.scene for s in samples):
        train = [s for s in samples if s.scene != scene]
        test = [s for s in samples if s.scene == scene]
        trust = fit(train, **fit_options)
        out[scene] = (evaluate(test, trust), trust)
    return out


def pooled_report(held_out: dict[str, tuple[TrustReport, dict[str, Any]]]) -> TrustReport:
    """All held-out scenes' answers counted together."""
    reports = [report for report, _ in held_out.values()]
    return sum(reports[1:], reports[0])


def meets_targets(report: TrustReport) -> bool:
    """At most TARGET_OFF_5 / TARGET_OFF_15 of the SUCCESS answers off by > 5 / 15 deg."""
    return report.off_5 <= TARGET_OFF_5 * report.success and (
        report.off_15 <= TARGET_OFF_15 * report.success
    )


def choose_operating_point(
    samples: Sequence[Sample], gate_defaults: dict[str, Any] | None = None
) -> tuple[dict[str, Any], TrustReport]:
    """(fit_trust options, their pooled held-out report): of OPERATING_POINTS, the one whose
    leave-one-scene-out answers within `samples` meet the targets and accept the most pairs
    under 50 deg; when none meets them, the one with the fewest answers off by > 5 deg.
    Only `samples` are used, so the choice stays out of sample for a scene held out of them."""
    best = None
    for options in OPERATING_POINTS:
        report = pooled_report(leave_one_scene_out(samples, gate_defaults=gate_defaults, **options))
        meets = meets_targets(report)
        off_5 = report.off_5 / report.success if report.success else 0.0
        score = (meets, report.accepted_under_50 if meets else -off_5)
        if best is None or score > best[0]:
            best = (score, options, report)
    return dict(best[1]), best[2]


def fit_trust_chosen(
    samples: Sequence[Sample], gate_defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`fit_trust` at the operating point `choose_operating_point` picks on the same samples;
    the choice and its nested held-out figures are stored under "operating_point"."""
    options, report = choose_operating_point(samples, gate_defaults)
    trust = fit_trust(samples, gate_defaults=gate_defaults, **options)
    trust["operating_point"] = {**options, "nested_held_out": report.row()}
    return trust
