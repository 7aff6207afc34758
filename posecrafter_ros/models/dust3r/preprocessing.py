"""Image preparation exactly as the official `dust3r.utils.image.load_images`, with the maps
between original pixels and the network's working pixels.

size == 224: the short side is resized to 224 and the centre square is cropped.
otherwise:   the long side is resized to `size` and the centre is cropped to multiples of the
             patch size (a square result becomes 4:3 unless `square_ok`).
Resampling is Pillow's (LANCZOS when shrinking, BICUBIC otherwise), then `x / 255`, then
`(x - 0.5) / 0.5`. Portrait images stay portrait (true_shape = (H, W)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

SQUARE_CROP_SIZE = 224


@dataclass(frozen=True)
class PreparedImage:
    """One image at the network's working resolution.

    tensor: [1 x 3 x H x W] float32 in [-1, 1]. image: [H x W x 3] uint8 (same pixels).
    scale: (sx, sy) of the resize from the original image; offset: (left, top) of the crop
    in resized pixels. original_size: (W, H) of the input.
    """

    tensor: "torch.Tensor"
    image: np.ndarray
    scale: tuple[float, float]
    offset: tuple[float, float]
    original_size: tuple[int, int]

    @property
    def true_shape(self) -> tuple[int, int]:
        """(H, W) at working resolution."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    def intrinsics_to_working(self, K: np.ndarray) -> np.ndarray:
        """Map [3 x 3] intrinsics of the original image to working pixels.

        Pillow's resize maps pixel centres: u' + 0.5 = (u + 0.5) * s; the crop shifts by offset.
        """
        sx, sy = self.scale
        left, top = self.offset
        out = np.array(K, dtype=np.float64)
        out[0] = out[0] * sx
        out[1] = out[1] * sy
        out[0, 2] = (K[0, 2] + 0.5) * sx - 0.5 - left
        out[1, 2] = (K[1, 2] + 0.5) * sy - 0.5 - top
        out[2] = (0.0, 0.0, 1.0)
        return out

    def intrinsics_to_original(self, K_work: np.ndarray) -> np.ndarray:
        """Inverse of `intrinsics_to_working`: [3 x 3] working intrinsics -> original pixels."""
        sx, sy = self.scale
        left, top = self.offset
        out = np.array(K_work, dtype=np.float64)
        out[0] = out[0] / sx
        out[1] = out[1] / sy
        out[0, 2] = (K_work[0, 2] + 0.5 + left) / sx - 0.5
        out[1, 2] = (K_work[1, 2] + 0.5 + top) / sy - 0.5
        out[2] = (0.0, 0.0, 1.0)
        return out


def _resize_long_edge(img: "Image.Image", long_edge: int) -> "Image.Image":
    from PIL import Image

    longest = max(img.size)
    resample = Image.LANCZOS if longest > long_edge else Image.BICUBIC
    new_size = tuple(int(round(v * long_edge / longest)) for v in img.size)
    return img.resize(new_size, resample)


def prepare_image(
    image: np.ndarray, size: int = 512, square_ok: bool = False, patch_size: int = 16
) -> PreparedImage:
    """image: [H x W x 3] uint8 RGB (or [H x W] grey) -> PreparedImage at `size`."""
    import torch
    from PIL import Image

    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    img = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")
    width0, height0 = img.size
    if size == SQUARE_CROP_SIZE:
        img = _resize_long_edge(img, round(size * max(width0 / height0, height0 / width0)))
    else:
        img = _resize_long_edge(img, size)
    width, height = img.size
    cx, cy = width // 2, height // 2
    if size == SQUARE_CROP_SIZE:
        half_w = half_h = min(cx, cy)
    else:
        half_w = ((2 * cx) // patch_size) * patch_size / 2
        half_h = ((2 * cy) // patch_size) * patch_size / 2
        if not square_ok and width == height:
            half_h = 3 * half_w / 4
    box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    img = img.crop(box)
    pixels = np.asarray(img, dtype=np.uint8)
    tensor = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div(255)
    tensor = tensor.sub(0.5).div(0.5)[None]
    return PreparedImage(
        tensor=tensor,
        image=pixels,
        scale=(width / width0, height / height0),
        offset=(float(round(box[0])), float(round(box[1]))),
        original_size=(width0, height0),
    )


def load_image_file(path: str | Path, size: int = 512, square_ok: bool = False) -> PreparedImage:
    """Read an image file like the official loader (EXIF orientation applied, RGB)."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        rgb = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    return prepare_image(rgb, size, square_ok)
