"""The rows of an evaluation: estimators compared side by side on the same pairs.

Every row answers (R_0to1, t_0to1) in the pair convention x_1 = R_0to1 x_0 + t_0to1, or
None with a reason. Row names are the keys of summary.json:
  baseline            plain OpenCV five-point (eval/baseline.py)
  direct              core.twoview.estimate_two_view, the pipeline's direct path alone
  pipeline:<profile>  pipeline.Pipeline.from_profile(<profile>).estimate(A, B)
  oracle              the pipeline's bridge fed with the real frames captured between A and
                      B (FMS + multi-view pose on real instead of generated frames)
A row whose code is not available says why (`skip_reason`) and is left out, not failed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..core.types import Keyframe
from .baseline import estimate_five_point

ORACLE_PROFILE = "cpu"


@dataclass
class RowOutcome:
    """An estimate in the pair convention, or R/t None with the reason in `message`.

    covariance: the [6 x 6] covariance the row returned with its pose (core.types.RelativePose
    layout: pose of B in A, rotation block last), None when the row gives none.
    """

    R_0to1: np.ndarray | None
    t_0to1: np.ndarray | None
    message: str = ""
    path: str = ""
    info: dict = field(default_factory=dict)
    covariance: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.R_0to1 is not None and self.t_0to1 is not None

    @property
    def epipolar(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(R_0to1, t_0to1), None when the row gave no pose (eval.metrics.pair_errors)."""
        return (self.R_0to1, self.t_0to1) if self.ok else None


class Row(Protocol):
    name: str
    skip_reason: str | None
    needs_between: bool

    def estimate(
        self, a: Keyframe, b: Keyframe, between: Sequence[Keyframe] | None
    ) -> RowOutcome: ...


class BaselineRow:
    """OpenCV five-point (ORB or SIFT + RANSAC essential matrix + recoverPose)."""

    name = "baseline"
    needs_between = False

    def __init__(self, conf: dict | None = None):
        self.conf = dict(conf or {})
        self.skip_reason = None

    def estimate(self, a, b, between=None) -> RowOutcome:
        est = estimate_five_point(a, b, self.conf)
        message = est.reason or f"{est.num_inliers} inliers of {est.num_matches} matches"
        return RowOutcome(
            est.R_0to1,
            est.t_0to1,
            message,
            "baseline",
            {"matches": est.num_matches, "inliers": est.num_inliers},
        )


class DirectRow:
    """The direct two-view path on its own: any pose it returns counts, even one its gate
    would reject (the pipeline row shows the gated behaviour); the gate's numbers are kept."""

    name = "direct"
    needs_between = False

    def __init__(self, conf: dict | None = None):
        self.conf = dict(conf or {})
        self.skip_reason = None

    def estimate(self, a, b, between=None) -> RowOutcome:
        from ..core.twoview import estimate_two_view

        est = estimate_two_view(a, b, self.conf)
        # Only `pose` is the seam's contract; the rest is read if the estimate carries it.
        info = {
            key: getattr(est, key)
            for key in ("num_matches", "num_inliers", "confidence", "accepted")
            if hasattr(est, key)
        }
        summary = ", ".join(
            f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}"
            for key, value in info.items()
        )
        if est.pose is None:
            return RowOutcome(None, None, getattr(est, "reason", "") or "no pose", "direct", info)
        R, t = est.pose.to_epipolar()
        return RowOutcome(R, np.ravel(t), summary, "direct", info, est.pose.covariance)


def _pipeline_class():
    """pipeline.Pipeline, or the reason it cannot be imported."""
    try:
        from ..pipeline import Pipeline
    except ImportError as err:
        return None, f"posecrafter_ros.pipeline is not importable here ({err})"
    return Pipeline, None


def _outcome_of(result) -> RowOutcome:
    """RowOutcome of a core EstimateResult: only SUCCESS counts as an estimate."""
    path = getattr(result.diagnostics, "path", "")
    if not result.ok or result.pose is None:
        return RowOutcome(None, None, f"{result.status.name}: {result.message}", path)
    R, t = result.pose.to_epipolar()
    return RowOutcome(R, np.ravel(t), result.message, path, covariance=result.pose.covariance)


class PipelineRow:
    """The full pipeline of a profile (name in posecrafter_ros/profiles or a YAML path).

    force_bridge: bridge every pair, even those the direct path answers (the paper reports
    bridged numbers per bin; without it the row shows the product's gated behaviour).
    """

    needs_between = False

    def __init__(self, profile: str, force_bridge: bool = False):
        self.name = f"pipeline:{profile}"
        self.profile = profile
        self.force_bridge = force_bridge
        self.pipeline = None
        Pipeline, self.skip_reason = _pipeline_class()
        if Pipeline is None:
            return
        try:
            self.pipeline = Pipeline.from_profile(profile)
        except Exception as err:  # a bad profile skips this row, the others still run
            self.skip_reason = f"profile {profile!r} cannot be built: {type(err).__name__}: {err}"
            return
        # Load models now, if the pipeline loads eagerly, so loading is not timed as pair 1.
        load = getattr(self.pipeline, "load", None)
        if callable(load):
            load()

    def estimate(self, a, b, between=None) -> RowOutcome:
        from ..core.types import EstimateOptions

        options = EstimateOptions(force_bridge=self.force_bridge)
        return _outcome_of(self.pipeline.estimate(a, b, options=options, ctx=None))


class OracleRow:
    """The bridge with real intermediate frames as candidates (an upper bound of HVG).

    Built per pair: Pipeline.from_profile("cpu", overrides={"oracle_sequence": frames})
    with the bridge forced. Pairs with no frame between them use the pipeline unforced.
    """

    name = "oracle"
    needs_between = True

    def __init__(self, profile: str = ORACLE_PROFILE):
        self.profile = profile
        self.Pipeline, self.skip_reason = _pipeline_class()
        if (
            self.skip_reason is None
            and importlib.util.find_spec("posecrafter_ros.core.oracle") is None
        ):
            self.skip_reason = "posecrafter_ros.core.oracle (OracleSource) is not available here"

    def estimate(self, a, b, between=None) -> RowOutcome:
        from ..core.types import EstimateOptions

        frames = list(between or [])
        pipeline = self.Pipeline.from_profile(self.profile, overrides={"oracle_sequence": frames})
        options = EstimateOptions(force_bridge=bool(frames))
        outcome = _outcome_of(pipeline.estimate(a, b, options=options, ctx=None))
        outcome.info["oracle_frames"] = len(frames)
        return outcome


ROW_NAMES = ("baseline", "direct", "oracle", "pipeline:<profile>")


def check_row_name(spec: str) -> None:
    """Raise ValueError unless `spec` names a row: baseline, direct, oracle or pipeline:<profile>."""
    if spec in ("baseline", "direct", "oracle"):
        return
    if spec.startswith("pipeline:") and len(spec) > len("pipeline:"):
        return
    raise ValueError(f"unknown row {spec!r} (known: {', '.join(ROW_NAMES)})")


def build_row(
    spec: str,
    baseline_conf: dict | None = None,
    direct_conf: dict | None = None,
    force_bridge: bool = False,
) -> Row:
    """A row from its name: baseline, direct, oracle or pipeline:<profile>.

    force_bridge applies to pipeline rows (the oracle row always bridges).
    """
    check_row_name(spec)
    if spec == "baseline":
        return BaselineRow(baseline_conf)
    if spec == "direct":
        return DirectRow(direct_conf)
    if spec == "oracle":
        return OracleRow()
    return PipelineRow(spec.split(":", 1)[1], force_bridge)
