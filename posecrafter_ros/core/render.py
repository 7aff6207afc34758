"""Point-cloud rasterisation with PyTorch3D's point semantics, the renderer behind HVG stage 2.

ViewCrafter conditions its video model on renders of the DUSt3R point cloud along the camera
trajectory. The official code (`setup_renderer` in ViewCrafter's utils/pvd_utils.py) draws
them with PyTorch3D: `PointsRasterizationSettings(radius=0.01, points_per_pixel=10,
bin_size=0)`, a `PointsRenderer` whose weights are `1 - dist^2 / radius^2`, and an
`AlphaCompositor` without a background colour. This module reproduces those semantics in
plain torch (PyTorch3D does not install here), so the renders match what ViewCrafter was
trained on:

- a point covers every pixel whose centre lies strictly within `radius` of its projection
  (PyTorch3D's `dist2 < radius2` in `RasterizePointsNaiveCpu`); the radius is given in NDC
  units, where the image's shorter side spans 2, so it is `radius * min(H, W) / 2` pixels;
- points with negative camera depth are skipped; of the others, each pixel keeps the
  `points_per_pixel` nearest, smallest depth first (exactly equal depths, which PyTorch3D
  orders by point index, are ordered here by splat offset, then point index);
- the pixel's colour is front-to-back alpha compositing of those points with
  alpha_k = 1 - d_k^2 / r^2: sum_k alpha_k prod_{j<k} (1 - alpha_j) c_k, over a black
  background (pixels no point reaches stay black).

One difference is deliberate: PyTorch3D's screen space puts pixel centres at half-integer
coordinates, while ViewCrafter passes DUSt3R's intrinsics (pixel centres at integers), so its
renders sit half a pixel off the relay images; here K is used with pixel centres at integers
(OpenCV convention) throughout, so renders and relay images line up.

Conventions: OpenCV camera axes (x right, y down, z forward), cam_to_world [4 x 4], K [3 x 3].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# ViewCrafter's PointsRasterizationSettings (utils/pvd_utils.py, setup_renderer).
VIEWCRAFTER_RADIUS_NDC = 0.01
VIEWCRAFTER_POINTS_PER_PIXEL = 10


@dataclass
class Rendering:
    """One rendered view.

    image: [H x W x 3] uint8 RGB, `background` where mask is False.
    mask: [H x W] bool, True where at least one point was drawn.
    depth: [H x W] float32 camera-frame z of the nearest drawn point, 0 where mask is False.
    """

    image: np.ndarray
    mask: np.ndarray
    depth: np.ndarray


def radius_in_pixels(radius_ndc: float, height: int, width: int) -> float:
    """A PyTorch3D point radius (NDC units: the shorter image side spans 2) in pixels."""
    return radius_ndc * min(height, width) / 2.0


class PointRasterRenderer:
    """Renders one fixed coloured point cloud from any number of pinhole cameras.

    points: [P x 3] world coordinates; colors: [P x 3] uint8 RGB.
    radius_ndc: point radius in NDC units (ViewCrafter: 0.01).
    points_per_pixel: points composited per pixel, nearest first (ViewCrafter: 10).
    min_depth: points with camera z <= min_depth are not drawn (PyTorch3D skips z < 0;
        a tiny positive bound also keeps the projection finite).
    background: RGB of pixels no point covers (PyTorch3D's AlphaCompositor: black).
    """

    def __init__(
        self,
        points: np.ndarray,
        colors: np.ndarray,
        radius_ndc: float = VIEWCRAFTER_RADIUS_NDC,
        points_per_pixel: int = VIEWCRAFTER_POINTS_PER_PIXEL,
        min_depth: float = 1e-6,
        background: tuple[int, int, int] = (0, 0, 0),
        device: str = "cpu",
    ):
        import torch

        points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
        colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        if points.shape[0] != colors.shape[0]:
            raise ValueError(f"{points.shape[0]} points but {colors.shape[0]} colours")
        if radius_ndc <= 0:
            raise ValueError(f"radius_ndc must be > 0, got {radius_ndc}")
        if points_per_pixel < 1:
            raise ValueError(f"points_per_pixel must be >= 1, got {points_per_pixel}")
        finite = np.isfinite(points).all(axis=1)
        self.device = torch.device(device)
        # Stored as [3 x P] so x, y and z are contiguous rows for the elementwise passes.
        self.points_t = torch.from_numpy(np.ascontiguousarray(points[finite].T)).to(self.device)
        self.colors = torch.from_numpy(colors[finite]).to(self.device).float()
        self.radius_ndc = float(radius_ndc)
        self.points_per_pixel = int(points_per_pixel)
        self.min_depth = float(min_depth)
        self.background = np.asarray(background, dtype=np.uint8)

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
            alpha, point, depth = self._rasterize(cam_to_world, K, height, width)
            # Front-to-back compositing: each point is seen through those before it.
            transmittance = torch.cumprod(1.0 - alpha, dim=1)
            seen_through = torch.cat([torch.ones_like(alpha[:, :1]), transmittance[:, :-1]], 1)
            weights = alpha * seen_through
            colour = (weights[..., None] * self.colors[point.clamp(min=0)]).sum(dim=1)
            mask = point[:, 0] >= 0
            background = torch.from_numpy(self.background).to(self.device).float()
            image = torch.where(mask[:, None], colour, background)
            image = image.round().clamp(0, 255).to(torch.uint8)
            nearest_depth = torch.where(mask, depth, 0.0)
        return Rendering(
            image=image.cpu().numpy().reshape(height, width, 3),
            mask=mask.cpu().numpy().reshape(height, width),
            depth=nearest_depth.cpu().numpy().reshape(height, width).astype(np.float32),
        )

    def _rasterize(self, cam_to_world: np.ndarray, K: np.ndarray, height: int, width: int):
        """Per pixel [H*W x k] alphas and point indices (-1: none), nearest first, and the
        depth [H*W] of each pixel's nearest point."""
        import torch

        k = self.points_per_pixel
        num_pixels = height * width
        alpha = torch.zeros((num_pixels, k), device=self.device)
        point = torch.full((num_pixels, k), -1, dtype=torch.int64, device=self.device)
        depth_out = torch.zeros(num_pixels, device=self.device)
        cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
        rotation = cam_to_world[:3, :3].T  # world -> camera
        translation = -rotation @ cam_to_world[:3, 3]
        projection = np.asarray(K, dtype=np.float64) @ np.hstack([rotation, translation[:, None]])
        projection_t = torch.from_numpy(projection.astype(np.float32)).to(self.device)
        homogeneous = torch.addmm(projection_t[:, 3:], projection_t[:, :3], self.points_t)
        depth = homogeneous[2]
        in_front = depth > self.min_depth
        index = torch.nonzero(in_front).squeeze(1)
        depth = depth[index]
        u = homogeneous[0, index] / depth
        v = homogeneous[1, index] / depth

        radius = radius_in_pixels(self.radius_ndc, height, width)
        reach = math.ceil(radius)
        base_u, base_v = torch.round(u), torch.round(v)
        # Candidate (pixel, point) pairs: every pixel within `reach` of the nearest pixel.
        pixels, points, dist2s = [], [], []
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                pu, pv = base_u + dx, base_v + dy
                dist2 = (pu - u) ** 2 + (pv - v) ** 2
                hit = (dist2 < radius * radius) & (pu >= 0) & (pu < width) & (pv >= 0)
                hit &= pv < height
                pixels.append((pv[hit] * width + pu[hit]).to(torch.int64))
                points.append(index[hit])
                dist2s.append(dist2[hit])
        pixel = torch.cat(pixels)
        hit_point = torch.cat(points)
        dist2 = torch.cat(dist2s)
        if pixel.numel() == 0:
            return alpha, point, depth_out
        hit_depth = torch.zeros(len(self), device=self.device)
        hit_depth[index] = depth
        hit_depth = hit_depth[hit_point]

        # Sort by (pixel, depth) in one pass: for positive float32 depths the bit pattern
        # orders like the value, so pixel << 32 | depth bits is one int64 key.
        key = (pixel << 32) | hit_depth.view(torch.int32).to(torch.int64)
        order = torch.argsort(key, stable=True)
        pixel, hit_point, dist2 = pixel[order], hit_point[order], dist2[order]
        hit_depth = hit_depth[order]
        # Rank of each hit among its pixel's hits; keep the `k` nearest.
        _, counts = torch.unique_consecutive(pixel, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(pixel), device=self.device) - torch.repeat_interleave(
            starts, counts
        )
        keep = rank < k
        pixel, rank = pixel[keep], rank[keep]
        alpha[pixel, rank] = 1.0 - dist2[keep] / (radius * radius)
        point[pixel, rank] = hit_point[keep]
        nearest = rank == 0
        depth_out[pixel[nearest]] = hit_depth[keep][nearest]
        return alpha, point, depth_out
