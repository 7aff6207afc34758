"""The matcher interface every backend implements (one module per backend, hloc style)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass
class Features:
    """Local features of one image.

    keypoints: [N x 2] float64 pixel (x, y) in the image the caller passed (OpenCV frame).
    descriptors: [N x D] backend-specific (uint8 for ORB, float32 numpy or torch otherwise).
    image_size: (width, height) of that image.
    extra: backend data the matcher needs (e.g. SIFT scales), never required by callers.
    scale: working resolution / image resolution (<= 1): keypoints were detected on the image
        resized by this factor, so their localisation noise is about 1 / scale pixels here.
    """

    keypoints: np.ndarray
    descriptors: Any
    image_size: tuple[int, int]
    extra: dict = field(default_factory=dict)
    scale: float = 1.0

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


class Matcher:
    """Extract features per image and match two feature sets.

    Subclasses set `default_conf` (every key commented, `max_side` included) and implement
    `_init`, `_extract` and `match`. The user's conf overrides the defaults key by key; unknown
    keys are an error so a typo in a YAML profile does not silently fall back to a default.

    Working resolution: `extract` downscales an image whose longest side exceeds the conf's
    `max_side` (0: never) before `_extract` and maps the keypoints back, so a 6000 x 4000 image
    is matched like its 1024-pixel version and callers keep the image's own intrinsics.
    """

    default_conf: ClassVar[dict[str, Any]] = {}

    def __init__(self, conf: dict[str, Any] | None = None):
        conf = dict(conf or {})
        conf.pop("name", None)
        unknown = sorted(set(conf) - set(self.default_conf))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown conf keys {unknown}; valid keys: "
                f"{sorted(self.default_conf)}"
            )
        self.conf = {**self.default_conf, **conf}
        self._init()

    def _init(self) -> None:
        """Build detectors / networks from self.conf."""

    def extract(self, image: np.ndarray) -> Features:
        """Features of one image ([H x W] uint8 grey or [H x W x 3] uint8 RGB) at the working
        resolution, keypoints in the pixel frame of `image`."""
        import cv2

        height, width = image.shape[:2]
        max_side = int(self.conf.get("max_side") or 0)
        scale = min(1.0, max_side / max(height, width)) if max_side > 0 else 1.0
        if scale == 1.0:
            return self._extract(image)
        size = (max(round(width * scale), 1), max(round(height * scale), 1))
        feats = self._extract(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        # Pixel-centre convention: x_original = (x_resized + 0.5) / scale - 0.5 per axis.
        factors = np.array([size[0] / width, size[1] / height])
        feats.keypoints = (feats.keypoints + 0.5) / factors - 0.5
        feats.image_size = (width, height)
        feats.scale = scale
        return feats

    def _extract(self, image: np.ndarray) -> Features:
        """Features of an image already at the working resolution."""
        raise NotImplementedError

    def match(self, feats_a: Features, feats_b: Features) -> np.ndarray:
        """[M x 2] int64 index pairs (into feats_a, feats_b) of the putative matches."""
        raise NotImplementedError

    def build_index(self, feats: Features) -> Any:
        """A search structure for matching many query images against `feats` (e.g. the two
        keyframes FMS scores every candidate against). The default is the features themselves."""
        return feats

    def match_to_index(
        self, index: Any, feats_reference: Features, feats_query: Features
    ) -> np.ndarray:
        """[M x 2] (reference, query) index pairs, using `index = build_index(feats_reference)`."""
        return self.match(feats_reference, feats_query)

    def match_images(
        self, image_a: np.ndarray, image_b: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Matched pixel coordinates ([M x 2] in A, [M x 2] in B) of two images."""
        feats_a, feats_b = self.extract(image_a), self.extract(image_b)
        pairs = self.match(feats_a, feats_b)
        return feats_a.keypoints[pairs[:, 0]], feats_b.keypoints[pairs[:, 1]]


def to_gray(image: np.ndarray) -> np.ndarray:
    """[H x W] uint8 grey from grey, RGB or RGBA uint8 input."""
    import cv2

    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """[H x W x 3] uint8 RGB from grey, RGB or RGBA uint8 input."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]
