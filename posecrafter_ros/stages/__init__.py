"""The generative bridge's stages, one module per slot, in the order the pipeline runs them:

    interpolate (HVG stage 1: DynamiCrafter)        -> frames between the keyframes
    relay_pose  (DUSt3R)                            -> relay cameras + point maps
    synthesize  (HVG stage 2: renders + ViewCrafter) -> candidate frames
    select      (Feature Matching Selector)         -> the candidates that bridge A and B
    pose        (classical or DUSt3R multi-view)    -> pose of B in A

`base.py` holds the Protocol of each slot. `REGISTRY[slot][type]` builds a stage from its
profile section (a dict) and the profile's `Placement` (device, dtype); each entry is a small
function that imports its module only when called, so the CPU path never loads torch. A
profile may also name a user's stage as `package.module:factory`; the factory takes the
section as a dict, with the profile's device and dtype filled in.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from .base import FrameSelector, Interpolator, MultiViewPoseModel, RelayPoser, ViewSynthesizer


@dataclass(frozen=True)
class Placement:
    """Where the model stages run: the profile's top-level `device` and `dtype`."""

    device: str = "cpu"
    dtype: str = "float32"

    def fill(self, section: dict[str, Any]) -> dict[str, Any]:
        """`section` with device and dtype defaulted to the profile's."""
        return {"device": self.device, "dtype": self.dtype, **section}


def _dynamicrafter(section: dict[str, Any], placement: Placement) -> Interpolator:
    from .interpolate import DynamiCrafterInterpolator

    return DynamiCrafterInterpolator.from_config(placement.fill(section))


def _dust3r_relay_poser(section: dict[str, Any], placement: Placement) -> RelayPoser:
    from .relay_pose import Dust3rRelayPoser

    return Dust3rRelayPoser.from_config(placement.fill(section))


def _viewcrafter(section: dict[str, Any], placement: Placement) -> ViewSynthesizer:
    from .synthesize import build_viewcrafter_synthesizer

    return build_viewcrafter_synthesizer(section, placement.device, placement.dtype)


def _render_only(section: dict[str, Any], placement: Placement) -> ViewSynthesizer:
    from .synthesize import build_render_only_synthesizer

    return build_render_only_synthesizer(section)


def _fms(section: dict[str, Any], placement: Placement) -> FrameSelector:
    from .select import FeatureMatchingSelector

    return FeatureMatchingSelector.from_config(section)


def _classical_pose(section: dict[str, Any], placement: Placement) -> MultiViewPoseModel:
    from .pose import ClassicalMultiViewPose

    return ClassicalMultiViewPose.from_config(section)


def _dust3r_pose(section: dict[str, Any], placement: Placement) -> MultiViewPoseModel:
    from .pose import Dust3rPoseModel

    return Dust3rPoseModel.from_config(placement.fill(section))


StageFactory = Callable[[dict[str, Any], Placement], Any]

# Slot (profile key under `bridge:`) -> type name -> factory.
REGISTRY: dict[str, dict[str, StageFactory]] = {
    "interpolator": {"dynamicrafter": _dynamicrafter},
    "relay_poser": {"dust3r": _dust3r_relay_poser},
    "synthesizer": {"viewcrafter": _viewcrafter, "render_only": _render_only},
    "selector": {"fms": _fms},
    "pose_model": {"classical": _classical_pose, "dust3r": _dust3r_pose},
}


def build_stage(slot: str, section: dict[str, Any], placement: Placement) -> Any:
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
