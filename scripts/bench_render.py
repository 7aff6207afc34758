#!/usr/bin/env python3
"""Renders per second of the point rasteriser (ViewCrafter semantics) at the video model size.

  python scripts/bench_render.py                      # 512x320, 4 point maps, 1 and 2 threads
  python scripts/bench_render.py --radius 0.01 --threads 2 --frames 50 --repeats 5

The cloud is what HVG stage 2 renders: four 512x320 point maps (655,360 points) of a
synthetic bumpy surface seen from four relay cameras; the cameras rendered are a 25-frame
slerp trajectory through them (as one ViewCrafter clip), so most points are in view. Each
figure is the best of --repeats passes over the trajectory (the machine may be shared).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def relay_point_maps(
    width: int, height: int, num_views: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Point maps [N x H x W x 3], colours [N x H x W x 3], poses [N x 4 x 4] and K [3 x 3]."""
    from scipy.spatial.transform import Rotation

    K = np.array(
        [[0.9 * width, 0.0, (width - 1) / 2], [0.0, 0.9 * width, (height - 1) / 2], [0, 0, 1]]
    )
    xs, ys = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    rays = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ np.linalg.inv(K).T
    rng = np.random.default_rng(0)
    points, colors, poses = [], [], []
    for view in range(num_views):
        cam_to_world = np.eye(4)
        yaw = np.deg2rad(-20 + 40 * view / max(num_views - 1, 1))
        cam_to_world[:3, :3] = Rotation.from_euler("y", yaw).as_matrix()
        cam_to_world[:3, 3] = [-0.5 + view / max(num_views - 1, 1), 0.0, 0.0]
        depth = 4.0 + 0.3 * np.sin(xs / 17.0 + view) * np.cos(ys / 11.0)
        points.append((rays * depth[..., None]) @ cam_to_world[:3, :3].T + cam_to_world[:3, 3])
        colors.append(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))
        poses.append(cam_to_world)
    return np.stack(points).astype(np.float32), np.stack(colors), np.stack(poses), K


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--views", type=int, default=4, help="relay point maps in the cloud")
    parser.add_argument(
        "--radius", type=float, nargs="+", default=[0.01], help="point radius, NDC units"
    )
    parser.add_argument("--points-per-pixel", type=int, default=10)
    parser.add_argument("--frames", type=int, default=25, help="trajectory cameras rendered")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="passes; the fastest is shown")
    args = parser.parse_args()

    import torch

    from posecrafter_ros.core.render import PointRasterRenderer, radius_in_pixels
    from posecrafter_ros.core.trajectory import interpolate_trajectory

    points, colors, poses, K = relay_point_maps(args.width, args.height, args.views)
    trajectory = interpolate_trajectory(poses, K, args.frames)
    print(
        f"{points[..., 0].size:,} points, {args.width}x{args.height} image, "
        f"{args.frames} trajectory cameras, best of {args.repeats} passes"
    )
    for threads in args.threads:
        torch.set_num_threads(threads)
        for radius in args.radius:
            renderer = PointRasterRenderer(
                points, colors, radius_ndc=radius, points_per_pixel=args.points_per_pixel
            )
            renderer.render(trajectory.cam_to_world[0], trajectory.K[0], args.height, args.width)
            best = float("inf")
            for _ in range(args.repeats):
                coverage = 0.0
                start = time.perf_counter()
                for cam_to_world, intrinsics in zip(trajectory.cam_to_world, trajectory.K):
                    rendering = renderer.render(cam_to_world, intrinsics, args.height, args.width)
                    coverage += rendering.mask.mean()
                best = min(best, time.perf_counter() - start)
            print(
                f"threads {threads}, radius {radius:.3f} NDC "
                f"({radius_in_pixels(radius, args.height, args.width):.2f} px), "
                f"{args.points_per_pixel} points per pixel:"
                f" {args.frames / best:6.1f} renders/s, {1000 * best / args.frames:6.1f} ms/render,"
                f" coverage {100 * coverage / args.frames:5.1f}%"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
