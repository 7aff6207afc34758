"""Point rasterisation with PyTorch3D/ViewCrafter semantics: hand-computed small cases,
occlusion, culling, projection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from posecrafter_ros.core.render import PointRasterRenderer, radius_in_pixels

WIDTH, HEIGHT = 64, 48
K = np.array([[50.0, 0.0, 31.5], [0.0, 55.0, 23.5], [0.0, 0.0, 1.0]])


def pixel_grid(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """[H x W x 2] (x, y) pixel-centre coordinates."""
    xs, ys = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    return np.stack([xs, ys], axis=-1)


def backproject(depth: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """[H x W x 3] world points of every pixel centre at the given camera z."""
    grid = pixel_grid(depth.shape[1], depth.shape[0])
    rays = np.concatenate([grid, np.ones_like(grid[..., :1])], axis=-1) @ np.linalg.inv(K).T
    points_cam = rays * depth[..., None]
    return points_cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def pose(rotvec: tuple[float, float, float], centre: tuple[float, float, float]) -> np.ndarray:
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    cam_to_world[:3, 3] = centre
    return cam_to_world


def point_at_pixel(u: float, v: float, depth: float) -> np.ndarray:
    """[3] camera-frame point that projects to pixel (u, v) through K at `depth`."""
    return np.linalg.inv(K) @ np.array([u, v, 1.0]) * depth


def test_radius_is_in_ndc_units_of_the_shorter_side():
    # ViewCrafter's 0.01 at 512x320 (and 320x512) is 1.6 pixels.
    assert radius_in_pixels(0.01, 320, 512) == pytest.approx(1.6)
    assert radius_in_pixels(0.01, 512, 320) == pytest.approx(1.6)
    assert radius_in_pixels(0.01, 48, 64) == pytest.approx(0.24)


def test_one_point_covers_the_pixels_strictly_within_the_radius_with_falling_alpha():
    # Radius 1.6 px (r^2 = 2.56) on the 48-row image: 0.01 * 48 / 2 = 0.24, so 1.6 px is
    # radius_ndc = 1.6 / 24. A point exactly on pixel (30, 20): alpha = 1 - d^2 / 2.56.
    renderer = PointRasterRenderer(
        point_at_pixel(30, 20, 3.0)[None], np.array([[200, 100, 50]]), radius_ndc=1.6 / 24
    )
    rendering = renderer.render(np.eye(4), K, HEIGHT, WIDTH)
    ys, xs = np.nonzero(rendering.mask)
    assert sorted(zip(ys - 20, xs - 30)) == [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    colour = np.array([200, 100, 50])
    np.testing.assert_array_equal(rendering.image[20, 30], colour)  # d = 0: alpha 1
    edge = np.round(colour * (1 - 1 / 2.56))  # d^2 = 1: alpha 0.609375
    corner = np.round(colour * (1 - 2 / 2.56))  # d^2 = 2: alpha 0.21875
    np.testing.assert_array_equal(rendering.image[20, 31], edge)
    np.testing.assert_array_equal(rendering.image[19, 30], edge)
    np.testing.assert_array_equal(rendering.image[21, 29], corner)
    np.testing.assert_allclose(rendering.depth[rendering.mask], 3.0, rtol=1e-6)
    assert (rendering.image[~rendering.mask] == 0).all()  # no background colour: black


def test_a_point_exactly_one_radius_away_does_not_cover_the_pixel():
    # PyTorch3D keeps dist^2 < r^2 strictly: a point half-way between two pixels with
    # radius 0.5 px covers neither; a hair closer to one covers only that one.
    radius_ndc = 0.5 / 24
    between = PointRasterRenderer(
        point_at_pixel(10.5, 10, 2.0)[None], np.array([[1, 2, 3]]), radius_ndc=radius_ndc
    ).render(np.eye(4), K, HEIGHT, WIDTH)
    assert not between.mask.any()
    nearer = PointRasterRenderer(
        point_at_pixel(10.45, 10, 2.0)[None], np.array([[100, 100, 100]]), radius_ndc=radius_ndc
    ).render(np.eye(4), K, HEIGHT, WIDTH)
    assert list(zip(*np.nonzero(nearer.mask))) == [(10, 10)]  # 0.45 px away; pixel 11: 0.55


def test_points_are_composited_front_to_back_up_to_points_per_pixel():
    # Three points on pixel (12, 7) at depths 2, 3, 4 (given back to front), radius 2 px.
    # At the pixel itself: the front point has alpha 1 and hides the rest. At pixel (13, 7)
    # (d^2 = 1, alpha = 1 - 1/4 = 0.75 for each): 0.75 c1 + 0.25 * 0.75 c2 + 0.0625 * 0.75 c3.
    points = np.stack([point_at_pixel(12, 7, z) for z in (4.0, 3.0, 2.0)])
    colours = np.array([[0, 0, 240], [0, 240, 0], [240, 0, 0]], dtype=np.uint8)
    radius_ndc = 2.0 / 24
    full = PointRasterRenderer(points, colours, radius_ndc=radius_ndc).render(
        np.eye(4), K, HEIGHT, WIDTH
    )
    np.testing.assert_array_equal(full.image[7, 12], [240, 0, 0])
    expected = np.round(0.75 * np.array([240, 0, 0]) + 0.1875 * np.array([0, 240, 0]))
    expected += np.round(0.046875 * np.array([0, 0, 240]))
    np.testing.assert_array_equal(full.image[7, 13], expected)
    assert full.depth[7, 13] == pytest.approx(2.0)
    # points_per_pixel = 2: the farthest point is dropped.
    two = PointRasterRenderer(points, colours, radius_ndc=radius_ndc, points_per_pixel=2).render(
        np.eye(4), K, HEIGHT, WIDTH
    )
    np.testing.assert_array_equal(two.image[7, 13], [180, 45, 0])


def test_sparse_points_land_where_opencv_projects_them_from_a_moved_camera():
    rng = np.random.default_rng(0)
    cam_to_world = pose((0.1, -0.3, 0.05), (0.4, -0.2, -1.0))
    # One point per chosen pixel, at a chosen depth, at most 0.2 px off its pixel centre;
    # with radius 0.5 px each covers exactly its own pixel.
    chosen = rng.choice(HEIGHT * WIDTH, size=40, replace=False)
    rows, cols = np.divmod(chosen, WIDTH)
    depths = rng.uniform(1.0, 6.0, size=40)
    subpixel = rng.uniform(-0.14, 0.14, size=(40, 2))
    pixels_h = np.c_[cols + subpixel[:, 0], rows + subpixel[:, 1], np.ones(40)]
    points_cam = (pixels_h @ np.linalg.inv(K).T) * depths[:, None]
    points = points_cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    colours = rng.integers(0, 256, size=(40, 3), dtype=np.uint8)

    renderer = PointRasterRenderer(points, colours, radius_ndc=0.5 / 24)
    rendering = renderer.render(cam_to_world, K, HEIGHT, WIDTH)

    world_to_cam = np.linalg.inv(cam_to_world)
    projected, _ = cv2.projectPoints(
        points, cv2.Rodrigues(world_to_cam[:3, :3])[0], world_to_cam[:3, 3], K, None
    )
    projected = projected[:, 0]
    expected_px = np.round(projected).astype(int)
    assert rendering.mask.sum() == 40
    alpha = 1 - ((projected - expected_px) ** 2).sum(axis=1) / 0.25
    np.testing.assert_allclose(
        rendering.image[expected_px[:, 1], expected_px[:, 0]],
        np.round(colours * alpha[:, None]),
        atol=1,
    )
    np.testing.assert_allclose(
        rendering.depth[expected_px[:, 1], expected_px[:, 0]], depths, rtol=1e-5
    )


def test_nearer_surface_occludes_whatever_the_point_order():
    back = backproject(np.full((HEIGHT, WIDTH), 4.0), K, np.eye(4))
    front_depth = np.full((HEIGHT, WIDTH), np.nan)
    front_depth[10:30, 20:40] = 2.0  # a square in front
    front = backproject(front_depth, K, np.eye(4))[10:30, 20:40]
    points = np.concatenate([back.reshape(-1, 3), front.reshape(-1, 3)])
    colours = np.concatenate(
        [np.tile([0, 0, 255], (back.size // 3, 1)), np.tile([255, 0, 0], (front.size // 3, 1))]
    ).astype(np.uint8)
    expected_red = np.zeros((HEIGHT, WIDTH), dtype=bool)
    expected_red[10:30, 20:40] = True
    for order in (
        slice(None),
        slice(None, None, -1),
        np.random.default_rng(1).permutation(len(points)),
    ):
        rendering = PointRasterRenderer(points[order], colours[order], radius_ndc=1.6 / 24).render(
            np.eye(4), K, HEIGHT, WIDTH
        )
        # Every pixel of the square has its own front point at d = 0 (alpha 1).
        assert (rendering.image[expected_red] == [255, 0, 0]).all()
        # One pixel beyond the square its splats blend over the wall; further out, wall only.
        grown = cv2.dilate(expected_red.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert (rendering.image[~grown] == [0, 0, 255]).all()
        np.testing.assert_allclose(rendering.depth[expected_red], 2.0, rtol=1e-6)
        np.testing.assert_allclose(rendering.depth[~grown], 4.0, rtol=1e-6)


def test_points_behind_the_camera_outside_the_view_or_invalid_are_not_drawn():
    on_axis = np.array([[0.0, 0.0, 2.0]])
    # Mirror images behind the camera would project inside the image if not culled.
    behind = np.array([[0.1, 0.1, -2.0], [0.0, 0.0, -1e-3], [0.0, 0.0, 0.0]])
    outside = np.array([[50.0, 0.0, 2.0], [0.0, -80.0, 2.0], [1e30, 1e30, 1.0]])
    invalid = np.array([[np.nan, 0.0, 2.0], [np.inf, 0.0, 1.0]])
    points = np.concatenate([on_axis, behind, outside, invalid])
    colours = np.full((len(points), 3), 200, dtype=np.uint8)
    rendering = PointRasterRenderer(points, colours, radius_ndc=2 / 24).render(
        np.eye(4), K, HEIGHT, WIDTH
    )
    ys, xs = np.nonzero(rendering.mask)
    # The on-axis point projects to (31.5, 23.5): pixels within 2 px of it, a 4x4 block
    # minus its corners (d^2 = 4.5).
    assert len(xs) == 12
    assert ((xs - 31.5) ** 2 + (ys - 23.5) ** 2 < 4).all()


def test_points_just_outside_the_image_reach_in():
    # A point at x = -0.8 covers pixel 0 (d = 0.8 < 1) of its row with a 1 px radius.
    point = point_at_pixel(-0.8, 10.0, 2.0)
    rendering = PointRasterRenderer(point[None], np.array([[1, 2, 3]]), radius_ndc=1 / 24).render(
        np.eye(4), K, HEIGHT, WIDTH
    )
    assert list(zip(*np.nonzero(rendering.mask))) == [(10, 0)]


def test_empty_cloud_renders_background():
    renderer = PointRasterRenderer(np.zeros((0, 3)), np.zeros((0, 3)), background=(10, 20, 30))
    rendering = renderer.render(np.eye(4), K, HEIGHT, WIDTH)
    assert not rendering.mask.any()
    assert (rendering.image == [10, 20, 30]).all()
    assert (rendering.depth == 0).all()


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError, match="colours"):
        PointRasterRenderer(np.zeros((3, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="radius"):
        PointRasterRenderer(np.zeros((3, 3)), np.zeros((3, 3)), radius_ndc=0)
    with pytest.raises(ValueError, match="points_per_pixel"):
        PointRasterRenderer(np.zeros((3, 3)), np.zeros((3, 3)), points_per_pixel=0)
