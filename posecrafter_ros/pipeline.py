"""The PoseCrafter pipeline: direct estimate -> gate -> bridge -> relative pose.

One `Pipeline` object serves the service, the action, the CLIs and the evaluation. Stages
are chosen by a profile (posecrafter_ros/profiles/<name>.yaml, or a path):

    validate -> direct two-view estimate -> gate
        accepted (and not force_bridge)      -> answer directly
        the intrinsics contradict the images -> the bridge, else INVALID_REQUEST (the cause)
        otherwise, candidates from either
            a supplied frame sequence (oracle source), or
            HVG: interpolate (stage 1) -> relay poses -> trajectory renders -> video (stage 2)
        -> Feature Matching Selector -> multi-view pose on {A, selected, B}
        (when the oracle source does not bridge the pair and HVG is configured, HVG is
        tried next, and the message says so)

`estimate` never raises: every failure becomes a Status and a message.
"""

from __future__ import annotations

import copy
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import yaml

from .core.camera import undistort_keyframe
from .core.config import check_keys
from .core.gate import INTRINSICS_CRITERIA
from .core.oracle import OracleSource, same_keyframe
from .core.twoview import estimate_two_view
from .core.types import (
    BudgetExceeded,
    Canceled,
    CandidateFrame,
    Diagnostics,
    EstimateOptions,
    EstimateResult,
    EstimationError,
    Keyframe,
    RunContext,
    StageRecord,
    Status,
)
from .stages import Placement, build_stage
from .stages.relay_pose import relay_frames
from .stages.select import ends_overlap

logger = logging.getLogger(__name__)

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"

# Share of the overall progress each stage covers (action feedback).
STAGE_SPANS = {
    "validate": (0.0, 0.01),
    "direct": (0.01, 0.05),
    "interpolate": (0.05, 0.35),
    "relay_pose": (0.35, 0.45),
    "synthesize": (0.45, 0.8),
    "oracle_candidates": (0.05, 0.8),
    "select": (0.8, 0.9),
    "multiview_pose": (0.9, 1.0),
}

HVG_STAGES = ("interpolator", "relay_poser", "synthesizer")
SELECT_STAGES = ("selector", "pose_model")
PROFILE_KEYS = ("name", "device", "dtype", "offload_idle", "direct", "bridge", "oracle_sequence")
# cyclic: true / false / auto (a sequence whose first and last frames match is a loop);
# max_candidates: at most this many frames between A and B are candidates (evenly spaced).
BRIDGE_KEYS = (
    ("enabled", "oracle", "num_relay_frames", "cyclic", "max_candidates")
    + HVG_STAGES
    + SELECT_STAGES
)


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_profile(name_or_path: str | Path) -> dict:
    """A profile by name (posecrafter_ros/profiles/<name>.yaml) or by path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise FileNotFoundError(
            f"profile {name_or_path!r} not found (known: {known}, or give a path)"
        )
    conf = yaml.safe_load(path.read_text()) or {}
    conf.setdefault("name", path.stem)
    return conf


def validate_keyframe(kf: Keyframe, label: str) -> None:
    """Raise EstimationError(INVALID_REQUEST) unless `kf` is a usable image + intrinsics."""
    img, K = kf.image, np.asarray(kf.K)
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise EstimationError(Status.INVALID_REQUEST, f"{label}: image must be a uint8 array")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise EstimationError(
            Status.INVALID_REQUEST, f"{label}: image must be HxW or HxWx3, got {img.shape}"
        )
    if img.shape[0] < 32 or img.shape[1] < 32:
        raise EstimationError(
            Status.INVALID_REQUEST,
            f"{label}: image {img.shape[1]}x{img.shape[0]} is smaller than 32x32",
        )
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise EstimationError(
            Status.INVALID_REQUEST, f"{label}: intrinsics must be a finite 3x3 matrix"
        )
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if fx <= 0 or fy <= 0:
        raise EstimationError(
            Status.INVALID_REQUEST, f"{label}: focal lengths must be positive (fx={fx}, fy={fy})"
        )
    if not (0 <= cx <= img.shape[1] and 0 <= cy <= img.shape[0]):
        raise EstimationError(
            Status.INVALID_REQUEST,
            f"{label}: principal point ({cx:.1f}, {cy:.1f}) lies outside the {img.shape[1]}x{img.shape[0]} image",
        )


def failure_result(err: Exception, stage: str) -> EstimateResult:
    """The status and message of an exception raised while `stage` ran."""
    if isinstance(err, EstimationError):
        return EstimateResult(err.status, err.message)
    if isinstance(err, Canceled):
        return EstimateResult(Status.CANCELED, str(err))
    if isinstance(err, BudgetExceeded):
        return EstimateResult(Status.TIMEOUT, str(err))
    if isinstance(err, MemoryError):
        return EstimateResult(Status.INTERNAL_ERROR, f"out of memory in stage '{stage}'")
    logger.error("stage %s failed", stage, exc_info=err)
    oom = "out of memory" in str(err).lower()
    what = "out of memory" if oom else f"{type(err).__name__}: {err}"
    return EstimateResult(Status.INTERNAL_ERROR, f"stage '{stage}' failed: {what}")


class Pipeline:
    """Configured stages plus the flow that uses them. Build with `from_profile`, then `load`."""

    def __init__(self, conf: dict):
        """Raises ValueError for a key the profile's top level or `bridge:` does not have;
        each stage checks its own section when it is built (see `load`)."""
        check_keys("the profile", conf, PROFILE_KEYS)
        check_keys("bridge", conf.get("bridge") or {}, BRIDGE_KEYS)
        self.conf = conf
        self.name = str(conf.get("name", "custom"))
        self.direct_conf: dict = dict(conf.get("direct") or {})
        self.bridge_conf: dict = dict(conf.get("bridge") or {})
        self.default_sequence: list[Keyframe] | None = conf.get("oracle_sequence")
        self.stages: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}
        self.loaded = False
        # Runs the bridge elsewhere (an object with `run_bridge` and `describe`, e.g. the
        # Ray pool of remote_bridge.py); the direct path stays here. Set before `load`.
        self.remote_bridge = None

    @classmethod
    def from_profile(
        cls, name_or_path: str | Path = "cpu", overrides: dict | None = None
    ) -> "Pipeline":
        conf = load_profile(name_or_path)
        sequence = None
        if overrides:
            overrides = dict(overrides)
            sequence = overrides.pop("oracle_sequence", None)
            conf = deep_merge(conf, overrides)
        if sequence is not None:
            conf["oracle_sequence"] = list(sequence)
        return cls(conf)

    # ------------------------------------------------------------------ loading
    @property
    def hvg_enabled(self) -> bool:
        return bool(self.bridge_conf.get("enabled", False))

    @property
    def oracle_enabled(self) -> bool:
        return bool(self.bridge_conf.get("oracle", False))

    def load(self) -> "Pipeline":
        """Build every configured stage once; failures are recorded, never raised."""
        bridge_here = self.remote_bridge is None and (self.hvg_enabled or self.oracle_enabled)
        slots = list(SELECT_STAGES) if bridge_here else []
        if bridge_here and self.hvg_enabled:
            slots = list(HVG_STAGES) + slots
        placement = Placement(
            str(self.conf.get("device", "cpu")), str(self.conf.get("dtype", "float32"))
        )
        for slot in slots:
            section = dict(self.bridge_conf.get(slot) or {})
            try:
                self.stages[slot] = build_stage(slot, section, placement)
            except Exception as err:  # a stage that cannot load leaves the rest serving
                self.unavailable[slot] = f"{type(err).__name__}: {err}"
                logger.warning("stage %s (%s) unavailable: %s", slot, section.get("type"), err)
        self.loaded = True
        return self

    def describe(self) -> dict[str, str]:
        """Stage -> 'ready' / reason unavailable, for diagnostics."""
        out = {"direct": "ready"}
        out.update({slot: "ready" for slot in self.stages})
        out.update(self.unavailable)
        if self.remote_bridge is not None:
            out.update(self.remote_bridge.describe())
        if not self.hvg_enabled:
            out["hvg"] = "disabled by profile"
        return out

    # ------------------------------------------------------------------ running
    def estimate(
        self,
        a: Keyframe,
        b: Keyframe,
        options: EstimateOptions | None = None,
        ctx: RunContext | None = None,
        sequence: Sequence[Keyframe] | None = None,
    ) -> EstimateResult:
        """Relative pose of B in A. `sequence`: real frames usable as bridge candidates."""
        options = options or EstimateOptions()
        ctx = ctx or RunContext(options.budget_sec)
        if not self.loaded:
            self.load()
        diag = Diagnostics()
        started = time.monotonic()
        try:
            result = self._run(a, b, options, ctx, diag, sequence)
        except Exception as err:  # never let a stage's bug escape to the caller
            result = failure_result(err, ctx.stage)
        diag.total_seconds = time.monotonic() - started
        result.diagnostics = diag
        return result

    @contextmanager
    def _stage(
        self, ctx: RunContext, diag: Diagnostics, name: str, slot: str | None = None
    ) -> Iterator[None]:
        ctx.begin_stage(name, *STAGE_SPANS[name])
        start = time.monotonic()
        try:
            with self._resident(slot):
                yield
        finally:
            diag.stages.append(StageRecord(name, time.monotonic() - start))
        ctx.report(1.0)

    @contextmanager
    def _resident(self, slot: str | None) -> Iterator[None]:
        """With `offload_idle`, a model stage lives on the device only while it runs.

        Stages opt in by having a `to(device)` method; the others are left alone.
        """
        stage = self.stages.get(slot) if slot else None
        device = str(self.conf.get("device", "cpu"))
        if stage is None or not self.conf.get("offload_idle", False) or not hasattr(stage, "to"):
            yield
            return
        stage.to(device)
        try:
            yield
        finally:
            stage.to("cpu")
            if device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()

    def _run(self, a, b, options, ctx, diag, sequence) -> EstimateResult:
        with self._stage(ctx, diag, "validate"):
            validate_keyframe(a, "keyframe A")
            validate_keyframe(b, "keyframe B")
        with self._stage(ctx, diag, "direct"):
            direct = estimate_two_view(a, b, self.direct_conf)
        diag.direct_matches, diag.direct_inliers = direct.num_matches, direct.num_inliers
        diag.direct_confidence = float(direct.confidence)
        accepted = direct.pose is not None and bool(
            getattr(direct, "accepted", direct.confidence >= 0.5)
        )
        if accepted and not options.force_bridge:
            diag.path = "direct"
            return EstimateResult(
                Status.SUCCESS,
                f"direct two-view estimate: {direct.num_inliers} inliers of "
                f"{direct.num_matches} matches ({direct.reason})",
                direct.pose,
            )
        # The direct path's matches dispute the intrinsics. Wide pairs with the right intrinsics
        # are sometimes flagged too (the check is calibrated on pairs under 50 deg; on the
        # Strecha walks' 50-90 deg pairs it flagged 5 of 110 right ones), so the bridge still
        # gets its chance, and its answer says that it rests on the same intrinsics; without
        # a bridge answer the request is refused as INVALID_REQUEST, naming the cause.
        intrinsics_disputed = direct.info.get("gate_criterion") in INTRINSICS_CRITERIA
        # The bridge's stages work on pixels: give them pinhole images.
        a, b = undistort_keyframe(a), undistort_keyframe(b)
        why_direct = (
            f"direct estimate not confident ({direct.num_inliers} inliers, confidence "
            f"{direct.confidence:.2f}{': ' + direct.reason if direct.reason else ''})"
            if not accepted
            else "bridge forced by the request"
        )
        sequence = sequence if sequence is not None else self.default_sequence
        low_confidence_pose = direct.pose if not accepted else None
        bridge = self.remote_bridge or self
        bridged = bridge.run_bridge(a, b, ctx, diag, sequence)
        if bridged.ok:
            caveat = (
                "; the bridge used the same intrinsics, which the direct path's matches disputed"
                if intrinsics_disputed
                else ""
            )
            return EstimateResult(
                bridged.status, f"{bridged.message} ({why_direct}){caveat}", bridged.pose
            )
        if intrinsics_disputed:
            return EstimateResult(
                Status.INVALID_REQUEST,
                f"the images contradict the given camera intrinsics: {direct.reason}; "
                f"no bridge answered either ({bridged.message})",
            )
        note = (
            " A low-confidence direct estimate is attached."
            if low_confidence_pose is not None
            else ""
        )
        return EstimateResult(
            bridged.status, f"{why_direct}; {bridged.message}.{note}", low_confidence_pose
        )

    def run_bridge(
        self,
        a: Keyframe,
        b: Keyframe,
        ctx: RunContext,
        diag: Diagnostics,
        sequence: Sequence[Keyframe] | None,
    ) -> EstimateResult:
        """The bridge alone, after the direct path gave up or was skipped: the real frames of
        `sequence` first (oracle), the generative bridge when they do not bridge the pair (or
        there are none) and it is configured. Failures come back as a status and the reason;
        Canceled and BudgetExceeded propagate (estimate turns them into statuses)."""
        oracle_failure = ""
        if sequence and self.oracle_enabled:
            try:
                return self._bridged(a, b, "oracle", sequence, ctx, diag)
            except EstimationError as err:
                if not (self.hvg_enabled and err.status == Status.INSUFFICIENT_OVERLAP):
                    return EstimateResult(err.status, err.message)
                # The real frames did not bridge the pair; the generative bridge may.
                oracle_failure = f"the oracle bridge failed ({err.message})"
                logger.info("%s; falling back to the generative bridge", oracle_failure)
        if not self.hvg_enabled:
            return EstimateResult(
                Status.INSUFFICIENT_OVERLAP,
                f"the generative bridge is not configured (profile '{self.name}'; use the gpu "
                "profile with checkpoints, or supply a frame sequence for the oracle bridge)",
            )
        missing = [s for s in HVG_STAGES + SELECT_STAGES if s not in self.stages]
        if missing:
            reasons = "; ".join(
                f"{s}: {self.unavailable.get(s, 'not configured')}" for s in missing
            )
            if oracle_failure:
                return EstimateResult(
                    Status.INSUFFICIENT_OVERLAP,
                    f"{oracle_failure}; no generative fallback ({reasons})",
                )
            return EstimateResult(
                Status.MODEL_UNAVAILABLE, f"generative bridge unavailable ({reasons})"
            )
        try:
            result = self._bridged(a, b, "generative", sequence, ctx, diag)
        except EstimationError as err:
            prefix = f"{oracle_failure}; the generative bridge: " if oracle_failure else ""
            return EstimateResult(err.status, prefix + err.message)
        if oracle_failure:
            result.message = (
                f"{oracle_failure}; fell back to the generative bridge: {result.message}"
            )
        return result

    def _bridged(self, a, b, source, sequence, ctx, diag) -> EstimateResult:
        """One bridge source ("oracle" or "generative"): candidates -> selection ->
        multi-view pose. Raises EstimationError when it cannot bridge the pair."""
        if source == "oracle":
            candidates = self._oracle_candidates(a, b, sequence, ctx, diag)
        else:
            candidates = self._hvg_candidates(a, b, ctx, diag)
        missing = [s for s in SELECT_STAGES if s not in self.stages]
        if missing:
            reasons = "; ".join(
                f"{s}: {self.unavailable.get(s, 'not configured')}" for s in missing
            )
            raise EstimationError(Status.MODEL_UNAVAILABLE, f"bridge stage unavailable ({reasons})")
        diag.num_candidate_frames = len(candidates)
        with self._stage(ctx, diag, "select", "selector"):
            selection = self.stages["selector"].select(a, b, candidates, ctx)
        diag.selected_frames = [candidates[i].index for i in selection.indices]
        diag.selected_scores = [int(s) for s in selection.scores]
        if not selection.indices:
            raise EstimationError(
                Status.INSUFFICIENT_OVERLAP,
                f"no candidate frame of {len(candidates)} matched both keyframes",
            )
        # In sequence order (capture or trajectory order): the pose model pairs up neighbours.
        views = [a] + [candidates[i].keyframe for i in sorted(selection.indices)] + [b]
        with self._stage(ctx, diag, "multiview_pose", "pose_model"):
            pose = self.stages["pose_model"].estimate(views, ctx)
        diag.path = "bridge"
        return EstimateResult(
            Status.SUCCESS,
            f"bridged through {len(selection.indices)} of {len(candidates)} candidate frames",
            pose,
        )

    def _oracle_candidates(self, a, b, sequence, ctx, diag) -> list[CandidateFrame]:
        with self._stage(ctx, diag, "oracle_candidates"):
            pinhole = [undistort_keyframe(keyframe) for keyframe in sequence]
            cyclic = self.bridge_conf.get("cyclic", "auto")
            if cyclic == "auto":  # a loop when the sequence's ends match (needs A, B inside)
                cyclic = (
                    ends_overlap(pinhole)
                    if any(same_keyframe(v, k) for v in pinhole for k in (a, b))
                    else False
                )
            source = OracleSource(pinhole, cyclic=bool(cyclic))
            limit = self.bridge_conf.get("max_candidates")
            return source.candidates_between(a, b, int(limit) if limit else None)

    def _hvg_candidates(self, a, b, ctx, diag) -> list[CandidateFrame]:
        with self._stage(ctx, diag, "interpolate", "interpolator"):
            frames = self.stages["interpolator"].interpolate(a, b, ctx)
        relay = relay_frames(a, b, frames, int(self.bridge_conf.get("num_relay_frames", 4)))
        diag.num_relay_frames = len(relay)
        with self._stage(ctx, diag, "relay_pose", "relay_poser"):
            relay = self.stages["relay_poser"].reconstruct(relay, ctx)
        with self._stage(ctx, diag, "synthesize", "synthesizer"):
            return self.stages["synthesizer"].synthesize(relay, ctx)
