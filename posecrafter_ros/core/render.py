"""Z-buffer point splatting in torch (CPU or GPU), the renderer behind HVG stage 2.

ViewCrafter conditions its video model on renders of the DUSt3R point cloud along the
camera trajectory, plus the masks of the pixels those renders cover. This module draws a
coloured point cloud into a pinhole camera: every point covers the pixel it falls in and
the pixels within `radius` pixels of that one (a digital disc), and each pixel keeps the
nearest point. The nearest point per pixel is found with `scatter_reduce(amin)` over 64-bit
keys that pack (depth bits << 32 | point index): for positive float32 depths the bit
pattern orders like the value, so the minimum key is the nearest point and carries its
index; equal depths resolve to the lower point index, so renders are deterministic. Splats
away from their own pixel compete with a slightly inflated depth (`depth_bias`), so a
surface's own point keeps its pixel and splats only fill holes or draw true occluders.

Conventions: OpenCV camera axes (x right, y down, z forward), pixel centres at integer
coordinates, cam_to_world [4 x 4], K [3 x 3].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_INDEX_BITS = 32
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_EMPTY_KEY = np.iinfo(np.int64).max


@dataclass
class Rendering:
    """One rendered view.

    image: [H x W x 3] uint8 RGB, `background` where mask is False.
    mask: [H x W] bool, True where a point was drawn.
    depth: [H x W] float32 camera-frame z of the drawn point, 0 where mask is False.
    """

    image: np.ndarray
    mask: np.ndarray
    depth: np.ndarray


def splat_offsets(radius: float) -> np.ndarray:
    """[O x 2] integer offsets (dx, dy) with dx^2 + dy^2 <= radius^2: the splat footprint.

    Offsets are taken from the pixel a point falls in (its rounded projection), so the
    footprint is the same digital disc for every point: radius 0 is one pixel, 1 a plus sign,
    1.5 a 3x3 square, 2 a 13-pixel disc.
    """
    reach = math.floor(radius)
    steps = np.arange(-reach, reach + 1)
    dx, dy = np.meshgrid(steps, steps, indexing="xy")
    offsets = np.stack([dx.ravel(), dy.ravel()], axis=1)
    return offsets[(offsets**2).sum(axis=1) <= radius**2]


class PointSplatRenderer:
    """Renders one fixed coloured point cloud from any number of pinhole cameras.

    points: [P x 3] world coordinates; colors: [P x 3] uint8 RGB.
    radius: splat radius in pixels (0: only the pixel a point falls in).
    depth_bias: a splat competes at offset (dx, dy) from its own pixel with its depth scaled
        by about (1 + depth_bias (dx^2 + dy^2)), so on a slanted surface each pixel keeps its
        own point rather than a slightly nearer neighbour's splat (which would shift the
        texture by up to `radius` pixels); true occluders, nearer by more than that margin,
        still win.
    min_depth: points with camera z <= min_depth are behind the camera / too close.
    background: RGB of pixels no point covers.
    """

    def __init__(
        self,
        points: np.ndarray,
        colors: np.ndarray,
        radius: float = 1.0,
        depth_bias: float = 0.1,
        min_depth: float = 1e-6,
        background: tuple[int, int, int] = (0, 0, 0),
        device: str = "cpu",
    ):
        import torch

        points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
        colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        if points.shape[0] != colors.shape[0]:
            raise ValueError(f"{points.shape[0]} points but {colors.shape[0]} colours")
        if points.shape[0] >= 2**31:
            raise ValueError(f"at most 2^31 - 1 points can be rendered, got {points.shape[0]}")
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        if depth_bias < 0:
            raise ValueError(f"depth_bias must be >= 0, got {depth_bias}")
        finite = np.isfinite(points).all(axis=1)
        self.device = torch.device(device)
        # Stored as [3 x P] so x, y and z are contiguous rows for the elementwise passes.
        self.points_t = torch.from_numpy(np.ascontiguousarray(points[finite].T)).to(self.device)
        self.point_index = torch.arange(self.points_t.shape[1], device=self.device)
        self.colors = torch.from_numpy(colors[finite]).to(self.device)
        self.radius = float(radius)
        self.min_depth = float(min_depth)
        self.background = np.asarray(background, dtype=np.uint8)
        self.offsets = splat_offsets(self.radius)
        self.reach = int(np.abs(self.offsets).max())
        # The bits of a positive float32 are a piecewise-linear log2 of it (2^23 per octave),
        # so adding log2(factor) 2^23 to the key's depth bits scales the depth by ~factor.
        squared_offset = (self.offsets**2).sum(axis=1)
        # Kept under one octave so a key never outgrows int64 (finite float32 bits < 2^31 - 2^23).
        octaves = np.minimum(np.log2(1.0 + depth_bias * squared_offset), 1.0 - 2.0**-23)
        self.offset_penalties = [int(round(o * 2**23)) << _INDEX_BITS for o in octaves]

    def __len__(self) -> int:
        return int(self.points_t.shape[1])

    def render(self, cam_to_world: np.ndarray, K: np.ndarray, height: int, width: int) -> Rendering:
        """Draw the cloud into an [height x width] image seen by (cam_to_world, K)."""
        import torch

        if len(self) == 0:
            return Rendering(
                image=np.broadcast_to(self.background, (height, width, 3)).copy(),
                mask=np.zeros((height, width), dtype=bool),
                depth=np.zeros((height, width), dtype=np.float32),
            )
        with torch.no_grad():
            zbuffer, point_depth = self._zbuffer(cam_to_world, K, height, width)
            mask = zbuffer != _EMPTY_KEY
            point = torch.where(mask, zbuffer & _INDEX_MASK, 0)
            depth = torch.where(mask, point_depth[point], 0.0)
            background = torch.from_numpy(self.background).to(self.device)
            image = torch.where(mask[:, None], self.colors[point], background)
        return Rendering(
            image=image.cpu().numpy().reshape(height, width, 3),
            mask=mask.cpu().numpy().reshape(height, width),
            depth=depth.cpu().numpy().reshape(height, width),
        )

    def _zbuffer(
        self, cam_to_world: np.ndarray, K: np.ndarray, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Winning keys [H*W] int64 (biased depth bits << 32 | point index, or _EMPTY_KEY)
        and the camera-frame depths [P] of all points."""
        import torch

        cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
        rotation = cam_to_world[:3, :3].T  # world -> camera
        translation = -rotation @ cam_to_world[:3, 3]
        # Project in one step: pixel_h = (K R) p + K t, and its third entry is the camera z.
        projection = np.asarray(K, dtype=np.float64) @ np.hstack([rotation, translation[:, None]])
        projection_t = torch.from_numpy(projection.astype(np.float32)).to(self.device)
        homogeneous = torch.addmm(projection_t[:, 3:], projection_t[:, :3], self.points_t)
        depth = homogeneous[2]
        nearest_u = torch.round(homogeneous[0] / depth)
        nearest_v = torch.round(homogeneous[1] / depth)

        # Splats are drawn into a buffer padded by twice the splat reach on every side, so no
        # splat needs a bounds test (a drawn point falls at most `reach` pixels outside the
        # image); points whose splat misses the image all go to one parking pixel below the
        # padded image, whose splat lands in rows that are cropped away.
        reach = self.reach
        pad = 2 * reach
        padded_width = width + 2 * pad
        padded_height = height + 2 * pad
        drawn = (
            (depth > self.min_depth)
            & (nearest_u >= -reach)
            & (nearest_u <= width - 1 + reach)
            & (nearest_v >= -reach)
            & (nearest_v <= height - 1 + reach)
        )
        parking = (padded_height + reach) * padded_width + reach
        # Flat indices in int64: float32 is exact only up to 2^24 pixels.
        centre = (nearest_v.to(torch.int64) + pad) * padded_width + nearest_u.to(torch.int64) + pad
        centre = torch.where(drawn, centre, parking)
        keys = (depth.view(torch.int32).to(torch.int64) << _INDEX_BITS) | self.point_index

        buffer_size = (padded_height + 2 * reach + 1) * padded_width
        zbuffer = torch.full((buffer_size,), _EMPTY_KEY, dtype=torch.int64, device=self.device)
        for (dx, dy), penalty in zip(self.offsets.tolist(), self.offset_penalties):
            pixel = centre + (dy * padded_width + dx)
            zbuffer.scatter_reduce_(0, pixel, keys + penalty if penalty else keys, reduce="amin")
        image_rows = zbuffer[: padded_height * padded_width].view(padded_height, padded_width)
        return image_rows[pad : pad + height, pad : pad + width].reshape(-1), depth
