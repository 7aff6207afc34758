"""Run rows side by side on the same pairs and summarise them per rotation bin.

A pair a row cannot answer (no estimate, an exception, an unreadable image) counts with
180° rotation and translation errors: failures are never dropped from the statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..core.covariance import CHI2_95_3DOF, rotation_mahalanobis2, rotation_sigma_deg
from ..core.types import Keyframe
from .datasets import ROTATION_BINS, PosedDataset, PosedPair, rotation_bin
from .frames import pair_keyframes, view_keyframe
from .metrics import FAILED_DEG, pair_errors, summarize
from .rows import Row

ALL_BIN = "all"
# One image per stamp when a view set is replayed or fed to the oracle (10 Hz).
DEFAULT_PERIOD_NS = 100_000_000


@dataclass
class EvalItem:
    """A ground-truth pair and how to get its images.

    load: -> (A, B) keyframes; load_between: -> the frames captured between A and B (view
    sets, bags), None when the data has no sequence.
    """

    pair: PosedPair
    load: Callable[[], tuple[Keyframe, Keyframe]]
    load_between: Callable[[], list[Keyframe]] | None = None


@dataclass
class PairResult:
    """One row's answer on one pair (a line of pairs.csv)."""

    row: str
    pair: str
    bin: str
    gt_rotation_deg: float
    rotation_error_deg: float
    translation_error_deg: float
    success: bool
    seconds: float
    path: str
    message: str
    # Trust of the returned covariance (None -> empty in pairs.csv when no pose came back):
    # sqrt of the largest eigenvalue of its rotation block (deg), and the squared Mahalanobis
    # distance of the rotation error under that block (chi-square, 3 dof, if calibrated).
    rotation_sigma_deg: float | None = None
    rotation_mahalanobis2: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def spaced(items: Sequence, limit: int) -> list:
    """At most `limit` items, evenly spread over the sequence (all when limit <= 0)."""
    if limit <= 0 or len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def dataset_items(
    dataset: PosedDataset, pairs: Sequence[PosedPair], max_side: int = 0, max_between: int = 32
) -> list[EvalItem]:
    """EvalItems of sampled pairs; view-set pairs also offer their in-between frames.

    Stamps follow the capture order (view index x 100 ms) so A < frames between < B.
    """
    items = []
    for pair in pairs:
        if "index0" not in pair.meta:
            items.append(EvalItem(pair, lambda p=pair: pair_keyframes(p, max_side)))
            continue
        i0, i1 = pair.meta["index0"], pair.meta["index1"]

        def load(i0=i0, i1=i1):
            return tuple(
                view_keyframe(dataset.views[i], max_side, (i + 1) * DEFAULT_PERIOD_NS)
                for i in (i0, i1)
            )

        def load_between(pair=pair):
            return [
                view_keyframe(dataset.views[i], max_side, (i + 1) * DEFAULT_PERIOD_NS)
                for i in spaced(dataset.between_indices(pair), max_between)
            ]

        items.append(EvalItem(pair, load, load_between))
    return items


def _trust(outcome, pair: PosedPair) -> tuple[float | None, float | None]:
    """(rotation_sigma_deg, rotation_mahalanobis2) of an outcome's covariance, or Nones."""
    cov = None if outcome.covariance is None else np.asarray(outcome.covariance, float)
    if not outcome.ok or cov is None or cov.shape != (6, 6) or not np.all(np.isfinite(cov)):
        return None, None
    R_b_in_a = np.asarray(outcome.R_0to1, float).T
    try:
        return rotation_sigma_deg(cov), rotation_mahalanobis2(cov, R_b_in_a, pair.R_0to1.T)
    except np.linalg.LinAlgError:
        return rotation_sigma_deg(cov), None


def _answer(row: Row, pair: PosedPair, frames) -> tuple:
    """(success, rotation error, translation error, path, message, rotation sigma, rotation
    Mahalanobis^2) of one row on one pair.

    frames: (A, B, between) keyframes, or the reason the pair's images could not be read.
    """
    if isinstance(frames, str):
        return False, FAILED_DEG, FAILED_DEG, "", frames, None, None
    try:
        outcome = row.estimate(*frames)
    except Exception as err:  # a row's bug must not end the evaluation
        return False, FAILED_DEG, FAILED_DEG, "", f"{type(err).__name__}: {err}", None, None
    rot, trans = pair_errors(outcome.epipolar, pair)
    return (outcome.ok, rot, trans, outcome.path, outcome.message, *_trust(outcome, pair))


def evaluate_item(item: EvalItem, rows: Sequence[Row]) -> list[PairResult]:
    """Every row on one pair (its images read once), in row order."""
    pair = item.pair
    bin_name = rotation_bin(pair.rotation_deg) or "out-of-range"
    need_between = any(r.needs_between for r in rows)
    try:
        a, b = item.load()
        between = item.load_between() if (need_between and item.load_between) else None
        frames = (a, b, between)
    except Exception as err:  # an unreadable pair fails every row, the run goes on
        frames = f"images not readable: {type(err).__name__}: {err}"
    results = []
    for row in rows:
        start = time.perf_counter()
        ok, rot, trans, path, message, sigma, mahalanobis2 = _answer(row, pair, frames)
        seconds = time.perf_counter() - start
        results.append(
            PairResult(
                row.name,
                pair.name,
                bin_name,
                pair.rotation_deg,
                rot,
                trans,
                ok,
                seconds,
                path,
                message,
                sigma,
                mahalanobis2,
            )
        )
    return results


def evaluate(
    items: Sequence[EvalItem], rows: Sequence[Row], progress: bool = True
) -> list[PairResult]:
    """Every row on every pair (images read once per pair); results in pair-major order."""
    from tqdm import tqdm

    results: list[PairResult] = []
    with tqdm(total=len(items), unit="pair", disable=not progress, desc="evaluating") as bar:
        for item in items:
            bar.set_postfix_str(item.pair.name[:40])
            results.extend(evaluate_item(item, rows))
            bar.update(1)
    return results


def share_inside_95(results: Sequence[PairResult]) -> float | None:
    """Share of the answers with a covariance whose rotation error lies inside its 95% region
    (chi-square, 3 dof); None when no answer carried a covariance."""
    values = [r.rotation_mahalanobis2 for r in results if r.rotation_mahalanobis2 is not None]
    return float(np.mean(np.asarray(values) < CHI2_95_3DOF)) if values else None


def summarize_results(results: Sequence[PairResult]) -> dict[str, dict]:
    """{row: {"bins": {bin: metrics}}} with bins "all" and every protocol bin that has pairs.

    metrics: n, MRE, MTE, R@5/15/30, T@5/15/30, AUC@30 (see metrics.summarize), sec_per_pair.
    """
    rows: dict[str, dict] = {}
    for row in dict.fromkeys(r.row for r in results):
        mine = [r for r in results if r.row == row]
        bins = {}
        for bin_name in (ALL_BIN, *ROTATION_BINS):
            members = mine if bin_name == ALL_BIN else [r for r in mine if r.bin == bin_name]
            if not members:
                continue
            stats = summarize(
                [r.rotation_error_deg for r in members], [r.translation_error_deg for r in members]
            )
            stats["sec_per_pair"] = float(np.mean([r.seconds for r in members]))
            stats["inside95"] = share_inside_95(members)
            bins[bin_name] = stats
        rows[row] = {"bins": bins}
    return rows
