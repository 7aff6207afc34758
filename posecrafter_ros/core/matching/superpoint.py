"""SuperPoint keypoints + LightGlue from weights the user supplies.

SuperPoint's weights (Magic Leap, non-commercial licence) cannot ship with this package, nor
can its LightGlue weights be found in a PyPI package: both load from configured paths. kornia
0.9 has no SuperPoint network, so `SuperPointNet` below re-implements the published
architecture with the official checkpoint's key names (`conv1a` ... `convDb`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from posecrafter_ros.models.checkpoint import read_state_dict

from .base import Features, Matcher, to_gray
from .lightglue import build_lightglue, lightglue_match
from .weights import load_weights, user_file

if TYPE_CHECKING:
    import torch


def build_superpoint_net() -> "torch.nn.Module":
    """The SuperPoint network: a VGG-style encoder at 1/8 resolution, a 65-way detector head
    (64 cells + "no keypoint" dustbin) and a 256-D descriptor head."""
    import torch
    from torch import nn

    class SuperPointNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = (1, 64, 64, 128, 128)
            for stage, name in enumerate(("1", "2", "3", "4")):
                c_in, c_out = widths[stage], widths[stage + 1]
                setattr(self, f"conv{name}a", nn.Conv2d(c_in, c_out, 3, padding=1))
                setattr(self, f"conv{name}b", nn.Conv2d(c_out, c_out, 3, padding=1))
            self.convPa = nn.Conv2d(128, 256, 3, padding=1)
            self.convPb = nn.Conv2d(256, 65, 1)
            self.convDa = nn.Conv2d(128, 256, 3, padding=1)
            self.convDb = nn.Conv2d(256, 256, 1)

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """image: [B x 1 x H x W] grey in [0, 1] (H, W multiples of 8).

            Returns scores [B x H x W] (keypoint probability per pixel) and
            descriptors [B x 256 x H/8 x W/8] (L2-normalised).
            """
            relu, pool = torch.relu, nn.functional.max_pool2d
            x = image
            for stage in ("1", "2", "3", "4"):
                x = relu(getattr(self, f"conv{stage}a")(x))
                x = relu(getattr(self, f"conv{stage}b")(x))
                if stage != "4":
                    x = pool(x, 2, 2)
            logits = self.convPb(relu(self.convPa(x)))
            cells = torch.softmax(logits, dim=1)[:, :64]  # [B x 64 x H/8 x W/8], dustbin dropped
            scores = nn.functional.pixel_shuffle(cells, 8)[:, 0]
            desc = self.convDb(relu(self.convDa(x)))
            return scores, nn.functional.normalize(desc, dim=1)

    return SuperPointNet()


class SuperPointLightGlueMatcher(Matcher):
    default_conf: ClassVar[dict[str, Any]] = {
        "max_side": 1024,  # working resolution: longest image side features are extracted at
        "weights": None,  # path to the official superpoint_v1.pth (required)
        "lightglue_weights": None,  # path to superpoint_lightglue.pth (required)
        "max_num_keypoints": 2048,  # strongest keypoints per image
        "detection_threshold": 0.005,  # keypoint probability a keypoint must exceed
        "nms_radius": 4,  # non-maximum suppression radius (pixels)
        "border": 4,  # keypoints closer than this to the border are dropped
        "filter_threshold": 0.1,  # LightGlue match confidence threshold
        "depth_confidence": 0.95,  # LightGlue early stopping, -1 disables
        "width_confidence": 0.99,  # LightGlue point pruning, -1 disables
    }

    def _init(self) -> None:
        c = self.conf
        weights = user_file(c["weights"], "SuperPoint")
        lightglue_weights = user_file(c["lightglue_weights"], "SuperPoint LightGlue")
        self.net = build_superpoint_net()
        load_weights(self.net, read_state_dict(weights), f"SuperPoint from {weights}")
        self.net.eval()
        self.matcher = build_lightglue(
            "superpoint",
            lightglue_weights,
            {k: c[k] for k in ("filter_threshold", "depth_confidence", "width_confidence")},
        )

    def _extract(self, image: np.ndarray) -> Features:
        import torch

        gray = to_gray(image)
        h, w = gray.shape
        padded = np.zeros((-(-h // 8) * 8, -(-w // 8) * 8), np.float32)
        padded[:h, :w] = gray / 255.0
        with torch.inference_mode():
            scores, desc = self.net(torch.from_numpy(padded)[None, None])
            keypoints = self._detect(scores[0, :h, :w])
            descriptors = self._sample(desc, keypoints, padded.shape)
        return Features(keypoints.double().numpy(), descriptors, (w, h))

    def _detect(self, scores: "torch.Tensor") -> "torch.Tensor":
        """[N x 2] (x, y) of the strongest local maxima of scores [H x W]."""
        import torch

        c = self.conf
        radius = int(c["nms_radius"])
        pooled = torch.nn.functional.max_pool2d(scores[None, None], 2 * radius + 1, 1, radius)[0, 0]
        keep = (scores == pooled) & (scores > float(c["detection_threshold"]))
        border = int(c["border"])
        keep[:border], keep[-border:], keep[:, :border], keep[:, -border:] = (
            False,
            False,
            False,
            False,
        )
        ys, xs = torch.nonzero(keep, as_tuple=True)
        strength = scores[ys, xs]
        order = torch.argsort(strength, descending=True)[: int(c["max_num_keypoints"])]
        return torch.stack([xs[order], ys[order]], dim=1).float()

    @staticmethod
    def _sample(
        desc: "torch.Tensor", keypoints: "torch.Tensor", padded_hw: tuple
    ) -> "torch.Tensor":
        """[N x 256] descriptors read bilinearly at pixel keypoints from the 1/8-resolution map
        [1 x 256 x h x w]."""
        import torch

        height, width = padded_hw
        grid = keypoints.clone()
        grid[:, 0] = (keypoints[:, 0] + 0.5) / width * 2 - 1
        grid[:, 1] = (keypoints[:, 1] + 0.5) / height * 2 - 1
        sampled = torch.nn.functional.grid_sample(desc, grid[None, None], align_corners=False)
        return torch.nn.functional.normalize(sampled[0, :, 0].T, dim=1)

    def match(self, feats_a: Features, feats_b: Features) -> np.ndarray:
        return lightglue_match(self.matcher, feats_a, feats_b)
