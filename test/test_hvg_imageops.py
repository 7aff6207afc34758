"""Resize-to-cover + centre crop: sizes, exact intrinsics mapping and its inverse."""

from __future__ import annotations

import numpy as np
import pytest

from posecrafter_ros.core.imageops import MODEL_SIZE, cover_crop, resize_to_model


def project(K: np.ndarray, point: np.ndarray) -> np.ndarray:
    homogeneous = K @ point
    return homogeneous[:2] / homogeneous[2]


def blob_image(width: int, height: int, centre: tuple[float, float], sigma: float) -> np.ndarray:
    """[H x W] uint8 Gaussian blob centred at a sub-pixel position (pixel centres at integers)."""
    xs, ys = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    blob = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return np.round(255 * blob).astype(np.uint8)


def centroid(image: np.ndarray) -> np.ndarray:
    weights = image.astype(float)
    ys, xs = np.nonzero(np.ones_like(image))
    weights = weights[ys, xs]
    return np.array([np.sum(xs * weights), np.sum(ys * weights)]) / weights.sum()


@pytest.mark.parametrize(
    "source,resized,offset",
    [
        ((640, 480), (512, 384), (0, 32)),  # 4:3 -> crop rows
        ((1024, 576), (568, 320), (28, 0)),  # 16:9 -> crop columns (568.9 truncated)
        ((512, 320), (512, 320), (0, 0)),  # already the model size
        ((256, 160), (512, 320), (0, 0)),  # enlarged
        ((300, 400), (512, 682), (0, 181)),  # portrait
        ((1000, 560), (571, 320), (30, 0)),  # offset 29.5 rounds half to even
    ],
)
def test_cover_crop_sizes(source, resized, offset):
    crop = cover_crop(source, MODEL_SIZE)
    assert crop.resized_size == resized
    assert crop.crop_offset == offset
    image = np.zeros((source[1], source[0], 3), dtype=np.uint8)
    assert crop.apply(image).shape == (320, 512, 3)


def test_identity_when_sizes_match():
    crop = cover_crop((512, 320))
    np.testing.assert_allclose(crop.matrix, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("source", [(640, 480), (1024, 576), (333, 251), (256, 160)])
def test_projected_point_maps_with_the_intrinsics(source):
    K = np.array(
        [
            [0.9 * source[0], 0.0, 0.52 * source[0]],
            [0.0, 0.88 * source[0], 0.47 * source[1]],
            [0, 0, 1],
        ]
    )
    crop = cover_crop(source, MODEL_SIZE)
    K_model = crop.map_intrinsics(K)
    rng = np.random.default_rng(source[0])
    for point in rng.normal(size=(10, 3)) + [0.0, 0.0, 4.0]:
        in_source = project(K, point)
        np.testing.assert_allclose(
            project(K_model, point), crop.map_points(in_source[None])[0], atol=1e-9
        )
        np.testing.assert_allclose(
            crop.unmap_points(crop.map_points(in_source[None]))[0], in_source, atol=1e-9
        )
    np.testing.assert_allclose(crop.unmap_intrinsics(K_model), K, atol=1e-9)
    # Fixed by hand for 640x480 -> 512x320: scale 0.8, 32 rows cropped.
    if source == (640, 480):
        expected = np.array(
            [
                [0.8 * K[0, 0], 0, 0.8 * (K[0, 2] + 0.5) - 0.5],
                [0, 0.8 * K[1, 1], 0.8 * (K[1, 2] + 0.5) - 0.5 - 32],
                [0, 0, 1],
            ]
        )
        np.testing.assert_allclose(K_model, expected, atol=1e-9)


@pytest.mark.parametrize(
    "source,centre",
    [((640, 480), (301.3, 222.7)), ((1024, 576), (517.6, 300.2)), ((256, 160), (97.4, 71.8))],
)
def test_resized_image_content_moves_where_the_map_says(source, centre):
    image = blob_image(source[0], source[1], centre, sigma=6.0)
    K = np.array([[500.0, 0.0, source[0] / 2], [0.0, 500.0, source[1] / 2], [0.0, 0.0, 1.0]])
    resized, K_model, crop = resize_to_model(image, K)
    assert resized.shape == (320, 512)
    expected = crop.map_points(np.array([centre]))[0]
    np.testing.assert_allclose(centroid(resized), expected, atol=0.05)
    np.testing.assert_allclose(K_model, crop.map_intrinsics(K))


def test_wrong_image_size_is_rejected():
    crop = cover_crop((640, 480))
    with pytest.raises(ValueError, match="expects"):
        crop.apply(np.zeros((480, 641, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="positive"):
        cover_crop((0, 480))
