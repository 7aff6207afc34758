"""The stage interfaces the pipeline composes (one Protocol per slot of the method).

Each implementation takes a RunContext and calls `ctx.report(...)` / `ctx.check()` between
units of work so progress is visible and cancel/timeout stop the work promptly.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from ..core.types import (
    CandidateFrame,
    Keyframe,
    RelativePose,
    RunContext,
    SceneReconstruction,
    Selection,
)


class Interpolator(Protocol):
    """HVG stage 1: a coarse video between A and B (DynamiCrafter: 16 frames at 512x320)."""

    def interpolate(self, a: Keyframe, b: Keyframe, ctx: RunContext) -> list[Keyframe]:
        """All T frames, first ~ A and last ~ B, each with intrinsics at its resolution."""
        ...


class RelayPoser(Protocol):
    """Poses and point maps of the relay frames (DUSt3R + global alignment)."""

    def reconstruct(self, frames: Sequence[Keyframe], ctx: RunContext) -> SceneReconstruction: ...


class ViewSynthesizer(Protocol):
    """HVG stage 2: dense trajectory -> point-cloud renders -> ViewCrafter frames."""

    def synthesize(self, relay: SceneReconstruction, ctx: RunContext) -> list[CandidateFrame]: ...


class FrameSelector(Protocol):
    """Feature Matching Selector: keep the candidates that match both A and B best."""

    def select(
        self, a: Keyframe, b: Keyframe, candidates: Sequence[CandidateFrame], ctx: RunContext
    ) -> Selection: ...


class MultiViewPoseModel(Protocol):
    """Relative pose of the last view in the first view's frame from N >= 2 views.

    Raises EstimationError(INSUFFICIENT_OVERLAP, ...) when the views do not connect.
    """

    def estimate(self, views: Sequence[Keyframe], ctx: RunContext) -> RelativePose: ...
