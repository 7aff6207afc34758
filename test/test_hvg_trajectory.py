"""Dense camera trajectories: exact keys, constant-speed geodesic rotations, half-turn rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from posecrafter_ros.core.trajectory import (
    interpolate_trajectory,
    relative_rotation_vector,
    slerp_rotations,
)


def angle_between(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Geodesic angle (radians) between two rotations."""
    cos = (np.trace(R_a.T @ R_b) - 1.0) / 2.0
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def random_poses(num: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (num, 1, 1))
    poses[:, :3, :3] = Rotation.random(num, random_state=seed).as_matrix()
    poses[:, :3, 3] = rng.normal(size=(num, 3))
    return poses


def intrinsics(focal: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("num_keys,num_frames", [(2, 25), (4, 25), (4, 7), (3, 10)])
def test_trajectory_hits_first_last_and_aligned_keys_exactly(num_keys, num_frames):
    keys = random_poses(num_keys, seed=num_keys * 100 + num_frames)
    K = np.stack([intrinsics(300 + 10 * i, 250 + i, 160 - i) for i in range(num_keys)])
    trajectory = interpolate_trajectory(keys, K, num_frames)
    assert trajectory.cam_to_world.shape == (num_frames, 4, 4)
    assert trajectory.K.shape == (num_frames, 3, 3)
    np.testing.assert_array_equal(trajectory.cam_to_world[0], keys[0])
    np.testing.assert_array_equal(trajectory.cam_to_world[-1], keys[-1])
    np.testing.assert_array_equal(trajectory.K[-1], K[-1])
    on_key = trajectory.key_frame_indices()
    expected = {
        key: frame
        for frame in range(num_frames)
        for key in range(num_keys)
        if frame * (num_keys - 1) == key * (num_frames - 1)
    }
    assert on_key == expected
    for key, frame in on_key.items():
        np.testing.assert_array_equal(trajectory.cam_to_world[frame], keys[key])
    # Every output is a proper rigid transform.
    rotations = trajectory.cam_to_world[:, :3, :3]
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1),
        np.broadcast_to(np.eye(3), rotations.shape),
        atol=1e-12,
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)


def test_viewcrafter_layout_four_relay_cameras_25_frames():
    keys = random_poses(4, seed=7)
    trajectory = interpolate_trajectory(keys, intrinsics(400, 256, 160), 25)
    assert trajectory.key_frame_indices() == {0: 0, 1: 8, 2: 16, 3: 24}


@pytest.mark.parametrize("seed", range(5))
def test_constant_angular_and_linear_speed_within_each_segment(seed):
    keys = random_poses(3, seed=seed)
    trajectory = interpolate_trajectory(keys, intrinsics(400, 256, 160), 17)  # 8 steps per segment
    for segment in range(2):
        frames = trajectory.cam_to_world[8 * segment : 8 * segment + 9]
        steps = [angle_between(a[:3, :3], b[:3, :3]) for a, b in zip(frames[:-1], frames[1:])]
        total = angle_between(keys[segment, :3, :3], keys[segment + 1, :3, :3])
        np.testing.assert_allclose(steps, total / 8, rtol=1e-6, atol=1e-9)
        centres = frames[:, :3, 3]
        expected = np.linspace(keys[segment, :3, 3], keys[segment + 1, :3, 3], 9)
        np.testing.assert_allclose(centres, expected, atol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_slerp_lies_on_the_shortest_geodesic(seed):
    rotations = Rotation.random(2, random_state=seed).as_matrix()
    R_from, R_to = rotations
    total = angle_between(R_from, R_to)
    fractions = np.linspace(0.0, 1.0, 11)
    path = slerp_rotations(R_from, R_to, fractions)
    for fraction, R_t in zip(fractions, path):
        from_start, to_end = angle_between(R_from, R_t), angle_between(R_t, R_to)
        assert from_start + to_end == pytest.approx(total, abs=1e-6)
        assert from_start == pytest.approx(fraction * total, abs=1e-6)
    np.testing.assert_allclose(path[-1], R_to, atol=1e-12)
    # Independent reference: scipy's Slerp on the same endpoints.
    from scipy.spatial.transform import Slerp

    reference = Slerp([0.0, 1.0], Rotation.from_matrix(rotations))(fractions).as_matrix()
    np.testing.assert_allclose(path, reference, atol=1e-9)


def test_quaternion_sign_of_the_inputs_does_not_matter():
    # q and -q are the same rotation: the path must be the short one either way.
    q_from = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_quat()
    q_to = Rotation.from_euler("xyz", [40, -20, 100], degrees=True).as_quat()
    R_from = Rotation.from_quat(q_from).as_matrix()
    for sign in (1.0, -1.0):
        R_to = Rotation.from_quat(sign * q_to).as_matrix()
        mid = slerp_rotations(R_from, R_to, np.array([0.5]))[0]
        total = angle_between(R_from, R_to)
        assert total < np.pi
        assert angle_between(R_from, mid) == pytest.approx(total / 2, abs=1e-9)


@pytest.mark.parametrize("axis", [[0, -1, 0], [0, 1, 0], [1, -2, 0.5], [-3, 1, -1]])
def test_half_turn_rule_picks_the_axis_with_positive_largest_component(axis):
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    R_from = Rotation.from_euler("xyz", [5, -10, 20], degrees=True).as_matrix()
    R_to = R_from @ Rotation.from_rotvec(np.pi * axis).as_matrix()
    canonical = axis * np.sign(axis[np.argmax(np.abs(axis))])
    np.testing.assert_allclose(relative_rotation_vector(R_from, R_to), np.pi * canonical, atol=1e-7)
    mid = slerp_rotations(R_from, R_to, np.array([0.5]))[0]
    expected_mid = R_from @ Rotation.from_rotvec(0.5 * np.pi * canonical).as_matrix()
    np.testing.assert_allclose(mid, expected_mid, atol=1e-7)
    assert angle_between(R_from, mid) == pytest.approx(np.pi / 2, abs=1e-7)


def test_just_below_a_half_turn_the_unique_shortest_path_wins():
    axis = np.array([0.0, -1.0, 0.0])  # the half-turn rule would flip this axis
    angle = np.pi - 1e-3
    R_to = Rotation.from_rotvec(angle * axis).as_matrix()
    rotvec = relative_rotation_vector(np.eye(3), R_to)
    np.testing.assert_allclose(rotvec, angle * axis, atol=1e-9)


def test_intrinsics_are_interpolated_linearly():
    keys = random_poses(2, seed=3)
    K = np.stack([intrinsics(300, 200, 100), intrinsics(500, 300, 180)])
    trajectory = interpolate_trajectory(keys, K, 5)
    np.testing.assert_allclose(trajectory.K[2], intrinsics(400, 250, 140))
    np.testing.assert_allclose(trajectory.K[1], 0.75 * K[0] + 0.25 * K[1])


def test_invalid_inputs_are_rejected():
    keys = random_poses(2, seed=0)
    with pytest.raises(ValueError, match="at least 2 key cameras"):
        interpolate_trajectory(keys[:1], intrinsics(1, 0, 0), 5)
    with pytest.raises(ValueError, match="num_frames"):
        interpolate_trajectory(keys, intrinsics(1, 0, 0), 1)
    with pytest.raises(ValueError, match="K must be"):
        interpolate_trajectory(keys, np.eye(3)[None].repeat(3, axis=0), 5)
