"""Resize-to-cover + centre crop to a video model's resolution, with exact intrinsics.

DynamiCrafter and ViewCrafter work at 512x320 (width x height). An image of another size is
scaled (aspect preserved) until it covers the target, then cropped around its centre.

This is the official DynamiCrafter interpolation preprocessing (`load_data_prompts` in
scripts/evaluation/inference.py: `transforms.Resize(min(video_size))`, `CenterCrop(video_size)`
on PIL images) for every image at least 1.6:1 wide, to the pixel: PIL bilinear resampling, the
long side truncated (torchvision's `int(size * long / short)`), the crop offset rounded half to
even (`int(round((W - w) / 2.0))`). For narrower images (4:3, portrait) the official
short-side resize leaves the image narrower than 512 and `CenterCrop` pads it with black bars;
here the image is scaled to cover instead, so every pixel stays real (the model was trained on
cover-cropped video, and black bars would reach DUSt3R and FMS as fake structure). Both
steps are affine in pixel coordinates (OpenCV convention: pixel centres at integers), so the
whole map is u' = s_x u + b_x, v' = s_y v + b_y, and intrinsics map as K' = A K with
A = [[s_x, 0, b_x], [0, s_y, b_y], [0, 0, 1]]. s_x and s_y are the exact per-axis ratios of
the integer resized size to the original size, so they may differ by a rounding hair.
(The official loaders resize the SHORT side and centre-crop, which pads with black when the
image is less wide than 1.6:1; covering the target keeps every output pixel real.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODEL_SIZE = (512, 320)
"""(width, height) of DynamiCrafter / ViewCrafter frames."""


@dataclass(frozen=True)
class CoverCrop:
    """The pixel map of one resize-to-cover + centre crop.

    source_size, resized_size, target_size: (width, height); crop_offset: (x, y) of the crop's
    top-left corner in the resized image.
    """

    source_size: tuple[int, int]
    resized_size: tuple[int, int]
    target_size: tuple[int, int]
    crop_offset: tuple[int, int]

    @property
    def matrix(self) -> np.ndarray:
        """[3 x 3] affine map A from source to target pixels (homogeneous)."""
        scale_x = self.resized_size[0] / self.source_size[0]
        scale_y = self.resized_size[1] / self.source_size[1]
        # Resizing maps pixel centres as u' + 0.5 = s (u + 0.5); cropping subtracts the offset.
        return np.array(
            [
                [scale_x, 0.0, 0.5 * scale_x - 0.5 - self.crop_offset[0]],
                [0.0, scale_y, 0.5 * scale_y - 0.5 - self.crop_offset[1]],
                [0.0, 0.0, 1.0],
            ]
        )

    def map_intrinsics(self, K: np.ndarray) -> np.ndarray:
        """[3 x 3] intrinsics of the target image from those of the source image."""
        return self.matrix @ np.asarray(K, dtype=np.float64)

    def unmap_intrinsics(self, K_target: np.ndarray) -> np.ndarray:
        """[3 x 3] intrinsics in source pixels from those of the target image (inverse map)."""
        return np.linalg.solve(self.matrix, np.asarray(K_target, dtype=np.float64))

    def map_points(self, points: np.ndarray) -> np.ndarray:
        """[M x 2] source pixel coordinates -> [M x 2] target pixel coordinates."""
        A = self.matrix
        return np.asarray(points, dtype=np.float64) * A[[0, 1], [0, 1]] + A[:2, 2]

    def unmap_points(self, points: np.ndarray) -> np.ndarray:
        """[M x 2] target pixel coordinates -> [M x 2] source pixel coordinates."""
        A = self.matrix
        return (np.asarray(points, dtype=np.float64) - A[:2, 2]) / A[[0, 1], [0, 1]]

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Resize + crop an [H x W (x C)] uint8 image of source_size to target_size."""
        from PIL import Image

        height, width = image.shape[:2]
        if (width, height) != self.source_size:
            raise ValueError(f"image is {width}x{height}, this crop expects {self.source_size}")
        if self.resized_size == self.source_size:
            resized = image
        else:
            # As torchvision's Resize on a PIL image: PIL bilinear (antialiased when shrinking).
            pil = Image.fromarray(np.ascontiguousarray(image))
            resized = np.asarray(pil.resize(self.resized_size, Image.BILINEAR))
        x0, y0 = self.crop_offset
        target_width, target_height = self.target_size
        return np.ascontiguousarray(resized[y0 : y0 + target_height, x0 : x0 + target_width])


def cover_crop(
    source_size: tuple[int, int], target_size: tuple[int, int] = MODEL_SIZE
) -> CoverCrop:
    """The resize-to-cover + centre crop from source_size to target_size, both (width, height)."""
    source_width, source_height = source_size
    target_width, target_height = target_size
    if min(source_width, source_height, target_width, target_height) <= 0:
        raise ValueError(f"sizes must be positive, got {source_size} -> {target_size}")
    if target_width / source_width >= target_height / source_height:
        # The width binds; the height follows, truncated as torchvision does.
        resized = (
            target_width,
            max(target_height, int(target_width * source_height / source_width)),
        )
    else:
        resized = (
            max(target_width, int(target_height * source_width / source_height)),
            target_height,
        )
    # torchvision's CenterCrop: int(round(...)), Python's round (half to even).
    offset = (
        int(round((resized[0] - target_width) / 2.0)),
        int(round((resized[1] - target_height) / 2.0)),
    )
    return CoverCrop(
        source_size=(source_width, source_height),
        resized_size=resized,
        target_size=(target_width, target_height),
        crop_offset=offset,
    )


def resize_to_model(
    image: np.ndarray, K: np.ndarray, target_size: tuple[int, int] = MODEL_SIZE
) -> tuple[np.ndarray, np.ndarray, CoverCrop]:
    """Resize-to-cover + centre crop of image [H x W (x C)] with its intrinsics K [3 x 3].

    Returns (target image, target intrinsics, the CoverCrop to map back with).
    """
    crop = cover_crop((image.shape[1], image.shape[0]), target_size)
    return crop.apply(image), crop.map_intrinsics(K), crop
