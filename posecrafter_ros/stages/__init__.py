"""The generative bridge's stages, one module per slot, in the order the pipeline runs them:

    interpolate (HVG stage 1: DynamiCrafter)        -> frames between the keyframes
    relay_pose  (DUSt3R)                            -> relay cameras + point maps
    synthesize  (HVG stage 2: renders + ViewCrafter) -> candidate frames
    select      (Feature Matching Selector)         -> the candidates that bridge A and B
    pose        (COLMAP or DUSt3R multi-view)       -> pose of B in A

`base.py` holds the Protocol of each slot. `REGISTRY[slot][type]` builds a stage from its
profile section (a dict) and the profile's `Placement` (device, dtype); each entry is a small
function that imports its module only when called (so the CPU path never loads torch) and
parses the section into the adapter's strict config dataclass (`FmsConfig`, `ColmapPoseConfig`,
`Dust3rStageConfig`, `ViewSynthesisConfig`, the video models' `RuntimeConfig`). A profile may
also name a user's stage as `package.module:factory`; the factory takes the section as a dict,
with the profile's device and dtype filled in.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from .base import FrameSelector, Interpolator, MultiViewPoseModel, RelayPoser, ViewSynthesizer

Section = dict[str, Any]  # one profile section, e.g. `bridge.selector`


@dataclass(frozen=True)
class Placement:
    """Where the model stages run: the profile's top-level `device` and `dtype`."""

    device: str = "cpu"
    dtype: str = "float32"

    def fill(self, section: dict[str, Any]) -> dict[str, Any]:
        """`section` with device and dtype defaulted to the profile's."""
        return {"device": self.device, "dtype": self.dtype, **section}


def _dynamicrafter(section: Section, placement: Placement) -> Interpolator:
    from .interpolate import DynamiCrafterInterpolator

    return DynamiCrafterInterpolator.from_config(placement.fill(section))


def _dust3r_relay_poser(section: Section, placement: Placement) -> RelayPoser:
    from .relay_pose import Dust3rRelayPoser

    return Dust3rRelayPoser.from_config(placement.fill(section))


def _viewcrafter(section: Section, placement: Placement) -> ViewSynthesizer:
    from .synthesize import build_viewcrafter_synthesizer

    return build_viewcrafter_synthesizer(section, placement.device, placement.dtype)


def _render_only(section: Section, placement: Placement) -> ViewSynthesizer:
    from .synthesize import build_render_only_synthesizer

    return build_render_only_synthesizer(section)


def _fms(section: Section, placement: Placement) -> FrameSelector:
    from .select import FeatureMatchingSelector

    return FeatureMatchingSelector.from_config(section)


def _colmap_pose(section: Section, placement: Placement) -> MultiViewPoseModel:
    from .pose import ColmapMultiViewPose

    return ColmapMultiViewPose.from_config(section)


def _dust3r_pose(section: Section, placement: Placement) -> MultiViewPoseModel:
    from .pose import Dust3rPoseModel

    return Dust3rPoseModel.from_config(placement.fill(section))


# Slot (profile key under `bridge:`) -> type name -> factory. Each factory parses its section
# into the adapter's strict config dataclass (unknown keys are errors naming the section).
INTERPOLATORS: dict[str, Callable[[Section, Placement], Interpolator]] = {
    "dynamicrafter": _dynamicrafter,
}
RELAY_POSERS: dict[str, Callable[[Section, Placement], RelayPoser]] = {
    "dust3r": _dust3r_relay_poser,
}
SYNTHESIZERS: dict[str, Callable[[Section, Placement], ViewSynthesizer]] = {
    "viewcrafter": _viewcrafter,
    "render_only": _render_only,
}
SELECTORS: dict[str, Callable[[Section, Placement], FrameSelector]] = {"fms": _fms}
POSE_MODELS: dict[str, Callable[[Section, Placement], MultiViewPoseModel]] = {
    "colmap": _colmap_pose,
    "dust3r": _dust3r_pose,
}
REGISTRY: dict[str, dict[str, Callable[[Section, Placement], Any]]] = {
    "interpolator": INTERPOLATORS,
    "relay_poser": RELAY_POSERS,
    "synthesizer": SYNTHESIZERS,
    "selector": SELECTORS,
    "pose_model": POSE_MODELS,
}


def build_stage(slot: str, section: Section, placement: Placement) -> Any:
    """The stage of `slot` named by `section["type"]`: a registered type, or a user's
    `package.module:factory` (called with the section, device and dtype filled in).

    Raises ValueError for an unknown type; the stage's own errors propagate.
    """
    factories = REGISTRY[slot]
    kind = str(section.get("type", ""))
    conf = {k: v for k, v in section.items() if k != "type"}
    if kind in factories:
        return factories[kind](conf, placement)
    if ":" in kind:
        module_name, _, attr_path = kind.partition(":")
        factory: Any = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            factory = getattr(factory, attr)
        return factory(placement.fill(section))
    raise ValueError(f"unknown {slot} type {kind!r} (known: {sorted(factories)} or module:factory)")
