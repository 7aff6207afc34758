"""Reading the images of posed views and pairs as core Keyframes (intrinsics kept in step)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.types import Keyframe
from .datasets import DatasetError, PosedPair, PosedView


def read_rgb(path: str | Path) -> np.ndarray:
    """[H x W x 3] uint8 RGB image (EXIF orientation applied, alpha dropped)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: missing or not an image OpenCV can read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def scale_intrinsics(K: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """K of the same camera after resizing the image by (scale_x, scale_y)."""
    return np.diag([scale_x, scale_y, 1.0]) @ np.asarray(K, dtype=float)


def load_keyframe(
    path: str | Path,
    K: np.ndarray,
    calibrated_size: tuple[int, int] | None = None,
    max_side: int = 0,
    frame_id: str = "",
    stamp_ns: int = 0,
) -> Keyframe:
    """A Keyframe of the image at `path`.

    K is given for an image of `calibrated_size` (width, height), None = the file's own
    size; it is rescaled to the file's size, then with the image when `max_side` > 0
    shrinks it so that its longer side is at most `max_side` pixels.
    """
    import cv2

    image = read_rgb(path)
    height, width = image.shape[:2]
    K = np.asarray(K, dtype=float)
    if calibrated_size is not None and tuple(calibrated_size) != (width, height):
        K = scale_intrinsics(K, width / calibrated_size[0], height / calibrated_size[1])
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        K = scale_intrinsics(K, size[0] / width, size[1] / height)
    return Keyframe(image, K, frame_id=frame_id, stamp_ns=stamp_ns)


def view_keyframe(view: PosedView, max_side: int = 0, stamp_ns: int = 0) -> Keyframe:
    return load_keyframe(view.image_path, view.K, view.image_size, max_side, view.name, stamp_ns)


def pair_keyframes(pair: PosedPair, max_side: int = 0) -> tuple[Keyframe, Keyframe]:
    """Keyframes of a pair's two images (A = image0, B = image1)."""
    return (
        load_keyframe(pair.image0, pair.K0, pair.meta.get("size0"), max_side, "image0"),
        load_keyframe(pair.image1, pair.K1, pair.meta.get("size1"), max_side, "image1"),
    )
