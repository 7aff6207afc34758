"""Z-buffer point splatting: known colours and depths, occlusion, culling, self re-rendering."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from posecrafter_ros.core.render import PointSplatRenderer, splat_offsets

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


def colour_pattern(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    grid = pixel_grid(width, height).astype(int)
    return np.stack(
        [
            grid[..., 0] * 4 % 256,
            grid[..., 1] * 5 % 256,
            (grid[..., 0] * 7 + grid[..., 1] * 3) % 256,
        ],
        axis=-1,
    ).astype(np.uint8)


def pose(rotvec: tuple[float, float, float], centre: tuple[float, float, float]) -> np.ndarray:
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    cam_to_world[:3, 3] = centre
    return cam_to_world


def test_fronto_parallel_plane_reproduces_known_colours_and_depths():
    depth = np.full((HEIGHT, WIDTH), 2.5)
    points = backproject(depth, K, np.eye(4))
    colours = colour_pattern()
    rendering = PointSplatRenderer(points, colours, radius=0).render(np.eye(4), K, HEIGHT, WIDTH)
    assert rendering.image.shape == (HEIGHT, WIDTH, 3) and rendering.image.dtype == np.uint8
    assert rendering.mask.shape == (HEIGHT, WIDTH) and rendering.mask.dtype == bool
    assert rendering.mask.all()
    np.testing.assert_array_equal(rendering.image, colours)
    np.testing.assert_allclose(rendering.depth, 2.5, rtol=1e-6)


def test_sparse_points_land_where_opencv_projects_them_from_a_moved_camera():
    rng = np.random.default_rng(0)
    cam_to_world = pose((0.1, -0.3, 0.05), (0.4, -0.2, -1.0))
    # One point per chosen pixel, at a chosen depth: no two share a pixel.
    chosen = rng.choice(HEIGHT * WIDTH, size=40, replace=False)
    rows, cols = np.divmod(chosen, WIDTH)
    depths = rng.uniform(1.0, 6.0, size=40)
    subpixel = rng.uniform(-0.4, 0.4, size=(40, 2))
    pixels_h = np.c_[cols + subpixel[:, 0], rows + subpixel[:, 1], np.ones(40)]
    points_cam = (pixels_h @ np.linalg.inv(K).T) * depths[:, None]
    points = points_cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    colours = rng.integers(0, 256, size=(40, 3), dtype=np.uint8)

    rendering = PointSplatRenderer(points, colours, radius=0).render(cam_to_world, K, HEIGHT, WIDTH)

    world_to_cam = np.linalg.inv(cam_to_world)
    projected, _ = cv2.projectPoints(
        points, cv2.Rodrigues(world_to_cam[:3, :3])[0], world_to_cam[:3, 3], K, None
    )
    expected_px = np.round(projected[:, 0]).astype(int)
    assert rendering.mask.sum() == 40
    np.testing.assert_array_equal(rendering.image[expected_px[:, 1], expected_px[:, 0]], colours)
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
        rendering = PointSplatRenderer(points[order], colours[order], radius=1.5).render(
            np.eye(4), K, HEIGHT, WIDTH
        )
        is_red = (rendering.image == [255, 0, 0]).all(axis=-1)
        is_blue = (rendering.image == [0, 0, 255]).all(axis=-1)
        # The 1.5 px splats of the front square may spill one pixel over its border.
        grown = cv2.dilate(expected_red.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert is_red[expected_red].all()
        assert not is_red[~grown].any()
        assert (is_red | is_blue).all()
        np.testing.assert_allclose(rendering.depth[expected_red], 2.0, rtol=1e-6)
        np.testing.assert_allclose(rendering.depth[~grown], 4.0, rtol=1e-6)


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """cam_to_world [4 x 4] of a camera at eye looking at target, image y pointing down."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, -1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3] = np.stack([right, down, forward], axis=1)
    cam_to_world[:3, 3] = eye
    return cam_to_world


def test_cube_shows_its_three_front_faces_with_known_colours_and_depths():
    # Dense samples on the six faces of [-1, 1]^3, one colour per face.
    steps = np.linspace(-1.0, 1.0, 61)
    a, b = (g.ravel() for g in np.meshgrid(steps, steps))
    normals = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
    face_colours = np.array(
        [[255, 0, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [0, 0, 255], [255, 255, 0]]
    )
    points, colours = [], []
    for normal, colour in zip(normals, face_colours):
        axis = int(np.flatnonzero(normal)[0])
        others = [i for i in range(3) if i != axis]
        face = np.zeros((a.size, 3))
        face[:, axis] = normal[axis]
        face[:, others[0]], face[:, others[1]] = a, b
        points.append(face)
        colours.append(np.tile(colour, (a.size, 1)))
    eye = np.array([3.0, 2.5, -4.0])
    cam_to_world = look_at(eye, np.zeros(3))
    renderer = PointSplatRenderer(np.concatenate(points), np.concatenate(colours), radius=1.5)
    rendering = renderer.render(cam_to_world, K, HEIGHT, WIDTH)

    world_to_cam = np.linalg.inv(cam_to_world)
    for normal, colour in zip(normals, face_colours):
        centre_cam = world_to_cam[:3, :3] @ normal + world_to_cam[:3, 3]
        u, v = np.round((K @ centre_cam)[:2] / centre_cam[2]).astype(int)
        facing_camera = normal @ (eye - normal) > 0  # +x, +y and -z
        if facing_camera:
            np.testing.assert_array_equal(rendering.image[v, u], colour)
            # The nearest sample inside the pixel wins: its depth lies between those where
            # the rays through the pixel's corners meet the face plane n.x = 1.
            corners = np.array([[u + du, v + dv, 1.0] for du in (-0.5, 0.5) for dv in (-0.5, 0.5)])
            rays = corners @ np.linalg.inv(K).T @ cam_to_world[:3, :3].T
            corner_depths = (1.0 - normal @ eye) / (rays @ normal)
            assert corner_depths.min() - 1e-3 <= rendering.depth[v, u] <= corner_depths.max()
        else:  # hidden behind the front faces
            assert not (rendering.image[v, u] == colour).all()
            assert rendering.depth[v, u] < centre_cam[2] - 0.5


@pytest.mark.parametrize("radius,area", [(0, 1), (0.9, 1), (1, 5), (1.5, 9), (2, 13), (3, 29)])
def test_splat_footprint_is_a_digital_disc(radius, area):
    assert len(splat_offsets(radius)) == area
    point = backproject(np.full((HEIGHT, WIDTH), 3.0), K, np.eye(4))[20, 30]
    rendering = PointSplatRenderer(point[None], np.array([[9, 8, 7]]), radius=radius).render(
        np.eye(4), K, HEIGHT, WIDTH
    )
    assert rendering.mask.sum() == area
    ys, xs = np.nonzero(rendering.mask)
    assert ((xs - 30) ** 2 + (ys - 20) ** 2 <= radius**2).all()
    assert (rendering.image[rendering.mask] == [9, 8, 7]).all()


def test_points_behind_the_camera_outside_the_view_or_invalid_are_not_drawn():
    on_axis = np.array([[0.0, 0.0, 2.0]])
    # Mirror images behind the camera would project inside the image if not culled.
    behind = np.array([[0.1, 0.1, -2.0], [0.0, 0.0, -1e-3], [0.0, 0.0, 0.0]])
    outside = np.array([[50.0, 0.0, 2.0], [0.0, -80.0, 2.0], [1e30, 1e30, 1.0]])
    invalid = np.array([[np.nan, 0.0, 2.0], [np.inf, 0.0, 1.0]])
    points = np.concatenate([on_axis, behind, outside, invalid])
    colours = np.full((len(points), 3), 200, dtype=np.uint8)
    rendering = PointSplatRenderer(points, colours, radius=2).render(np.eye(4), K, HEIGHT, WIDTH)
    ys, xs = np.nonzero(rendering.mask)
    assert len(xs) == 13
    assert ((xs - 31.5) ** 2 + (ys - 23.5) ** 2 <= 9).all()  # only the on-axis splat


def test_splats_of_points_just_outside_the_image_reach_in():
    # A point whose nearest pixel is (-1, 10) covers pixel (0, 10) with a radius-1 splat.
    point = np.linalg.inv(K) @ np.array([-1.2, 10.0, 1.0]) * 2.0
    rendering = PointSplatRenderer(point[None], np.array([[1, 2, 3]]), radius=1).render(
        np.eye(4), K, HEIGHT, WIDTH
    )
    assert list(zip(*np.nonzero(rendering.mask))) == [(10, 0)]


def test_empty_cloud_renders_background():
    renderer = PointSplatRenderer(np.zeros((0, 3)), np.zeros((0, 3)), background=(10, 20, 30))
    rendering = renderer.render(np.eye(4), K, HEIGHT, WIDTH)
    assert not rendering.mask.any()
    assert (rendering.image == [10, 20, 30]).all()
    assert (rendering.depth == 0).all()


@pytest.mark.parametrize("radius", [0, 1, 1.5, 2])
def test_rerendering_a_point_map_from_its_own_camera_reproduces_it_where_confident(radius):
    rng = np.random.default_rng(5)
    cam_to_world = pose((0.2, 0.1, -0.1), (1.0, 0.5, -2.0))
    xs, ys = pixel_grid()[..., 0], pixel_grid()[..., 1]
    depth = 3.0 + 0.5 * np.sin(xs / 7.0) * np.cos(ys / 5.0)  # a bumpy surface
    points = backproject(depth, K, cam_to_world)
    image = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    confidence = rng.uniform(0.0, 5.0, size=(HEIGHT, WIDTH))
    confident = confidence > 2.0
    renderer = PointSplatRenderer(points[confident], image[confident], radius=radius)
    rendering = renderer.render(cam_to_world, K, HEIGHT, WIDTH)
    # Each confident pixel keeps its own point, even where neighbours' splats reach it.
    np.testing.assert_array_equal(rendering.image[confident], image[confident])
    np.testing.assert_allclose(rendering.depth[confident], depth[confident], rtol=1e-5)
    if radius == 0:
        np.testing.assert_array_equal(rendering.mask, confident)
        assert (rendering.image[~confident] == 0).all()
    else:  # splats fill the pixels of dropped points
        assert rendering.mask.mean() > 0.95


def test_without_depth_bias_nearer_neighbour_splats_win_on_a_slanted_surface():
    xs = pixel_grid()[..., 0]
    depth = 2.0 + 0.05 * xs  # receding to the right: every left neighbour is nearer
    points = backproject(depth, K, np.eye(4))
    image = colour_pattern()
    shifted = PointSplatRenderer(points, image, radius=1, depth_bias=0.0).render(
        np.eye(4), K, HEIGHT, WIDTH
    )
    kept = PointSplatRenderer(points, image, radius=1).render(np.eye(4), K, HEIGHT, WIDTH)
    np.testing.assert_array_equal(kept.image, image)
    np.testing.assert_array_equal(shifted.image[:, 1:], image[:, :-1])  # one pixel to the right


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError, match="colours"):
        PointSplatRenderer(np.zeros((3, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="radius"):
        PointSplatRenderer(np.zeros((3, 3)), np.zeros((3, 3)), radius=-1)
