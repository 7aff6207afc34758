"""LightGlue / LighterGlue from kornia, built offline and loaded exactly from local weights.

kornia's `LightGlue(features=...)` downloads its weights; we build it with `features=None` and
the feature type's configuration instead, then load the checkpoint ourselves with
`load_weights`, which names any missing or unexpected key (kornia itself loads non-strictly).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from posecrafter_ros.models.checkpoint import read_state_dict, select_prefix

from .base import Features
from .weights import load_weights

if TYPE_CHECKING:
    import torch
    from kornia.feature import LightGlue


def official_to_kornia_keys(state: dict[str, "torch.Tensor"], n_layers: int) -> dict:
    """Rename the official LightGlue keys (`self_attn.i`, `cross_attn.i`) to kornia's layout."""
    renamed = {}
    for key, value in state.items():
        for i in range(n_layers):
            key = key.replace(f"self_attn.{i}.", f"transformers.{i}.self_attn.")
            key = key.replace(f"cross_attn.{i}.", f"transformers.{i}.cross_attn.")
        renamed[key] = value
    return renamed


def build_lightglue(
    features: str, weights: Path, overrides: dict[str, Any], prefix: str = ""
) -> "LightGlue":
    """kornia LightGlue for `features` ('aliked', 'disk', 'superpoint', 'xfeat'), eval mode.

    prefix: key prefix of the matcher inside the checkpoint ('matcher.' for LighterGlue).
    """
    from kornia.feature import LightGlue

    conf = {**LightGlue.features[features], **overrides, "weights": None}
    model = LightGlue(features=None, **conf)
    state = read_state_dict(weights)
    if prefix:
        state = select_prefix(state, prefix)
    state = official_to_kornia_keys(state, model.conf.n_layers)
    # Older releases (disk_lightglue) carry a per-layer `log_assignment.i.r` tensor that the
    # matching head never reads.
    unused = tuple(f"log_assignment.{i}.r" for i in range(model.conf.n_layers))
    load_weights(model, state, f"LightGlue ({features}) from {weights}", ignore_unexpected=unused)
    return model.eval()


def lightglue_match(model: "LightGlue", feats_a: Features, feats_b: Features) -> np.ndarray:
    """[M x 2] LightGlue matches of two feature sets whose descriptors are torch tensors."""
    import torch

    if len(feats_a) == 0 or len(feats_b) == 0:
        return np.zeros((0, 2), np.int64)

    def side(feats: Features) -> dict[str, torch.Tensor]:
        return {
            "keypoints": torch.from_numpy(feats.keypoints).float()[None],
            "descriptors": feats.descriptors[None],
            "image_size": torch.tensor([feats.image_size], dtype=torch.float32),
        }

    with torch.inference_mode():
        out = model({"image0": side(feats_a), "image1": side(feats_b)})
    return out["matches"][0].cpu().numpy().astype(np.int64).reshape(-1, 2)


def image_tensor(image: np.ndarray) -> "torch.Tensor":
    """[1 x 3 x H x W] float RGB in [0, 1] of an [H x W (x 3)] uint8 image."""
    import torch

    from .base import to_rgb

    rgb = np.ascontiguousarray(to_rgb(image))
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
