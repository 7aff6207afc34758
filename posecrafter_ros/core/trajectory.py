"""Dense camera trajectories through a sequence of key cameras (HVG stage 2).

Between two consecutive key cameras the rotation follows the SO(3) geodesic at constant
angular speed (slerp), the camera centre moves on the straight segment at constant speed,
and the intrinsics are blended linearly. Frames are spread uniformly over the key
parameter s in [0, N - 1] (s = i means key camera i), so every segment gets the same number
of frames whatever its length; a key camera is reproduced exactly whenever a frame lands on
it, which happens for all keys when (num_frames - 1) is a multiple of (N - 1)
(e.g. 25 frames through 4 relay cameras: keys at frames 0, 8, 16, 24).

Rule for a half-turn (relative rotation of exactly 180 degrees, where both directions are
geodesics): the rotation axis is the unit eigenvector of the relative rotation with
eigenvalue 1, signed so that its largest-magnitude component is positive. The rule depends
only on the two rotations, never on the sign of a quaternion representation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

# Relative rotations closer than this to pi (radians) are treated as half-turns.
HALF_TURN_TOLERANCE = 1e-7


@dataclass
class CameraTrajectory:
    """Cameras along a path.

    cam_to_world: [T x 4 x 4] float64 camera-to-world poses (OpenCV camera axes).
    K: [T x 3 x 3] float64 intrinsics.
    key_parameter: [T] float64, position s in [0, N - 1] along the key cameras.
    """

    cam_to_world: np.ndarray
    K: np.ndarray
    key_parameter: np.ndarray

    def __len__(self) -> int:
        return int(self.cam_to_world.shape[0])

    def key_frame_indices(self) -> dict[int, int]:
        """{key camera index: trajectory frame index} for frames that sit exactly on a key."""
        on_key = np.flatnonzero(self.key_parameter == np.round(self.key_parameter))
        return {int(self.key_parameter[i]): int(i) for i in on_key}


def relative_rotation_vector(R_from: np.ndarray, R_to: np.ndarray) -> np.ndarray:
    """Shortest rotation vector w with R_to = R_from @ exp([w]x) (body frame of R_from).

    R_from, R_to: [3 x 3] rotation matrices. Returns [3], norm in [0, pi]; at exactly pi the
    axis follows the half-turn rule in the module docstring.
    """
    R_rel = R_from.T @ R_to
    rotvec = Rotation.from_matrix(R_rel).as_rotvec()
    angle = float(np.linalg.norm(rotvec))
    if angle < np.pi - HALF_TURN_TOLERANCE:
        return rotvec
    # A half-turn: R_rel = 2 a a^T - I, so the axis a spans the eigenvalue-1 eigenspace.
    eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (R_rel + R_rel.T))
    axis = eigenvectors[:, int(np.argmax(eigenvalues))]
    axis = axis * np.sign(axis[int(np.argmax(np.abs(axis)))])
    return np.pi * axis / np.linalg.norm(axis)


def slerp_rotations(R_from: np.ndarray, R_to: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Rotations on the geodesic from R_from (fraction 0) to R_to (fraction 1).

    R_from, R_to: [3 x 3]; fractions: [M] in [0, 1]. Returns [M x 3 x 3] at constant
    angular speed; fraction 0 returns R_from exactly.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    rotvec = relative_rotation_vector(R_from, R_to)
    steps = Rotation.from_rotvec(fractions[:, None] * rotvec[None, :]).as_matrix()
    return R_from[None] @ steps


def interpolate_trajectory(
    cam_to_world: np.ndarray, K: np.ndarray, num_frames: int
) -> CameraTrajectory:
    """Dense trajectory through N >= 2 key cameras, in their order.

    cam_to_world: [N x 4 x 4] key camera-to-world poses; K: [N x 3 x 3] or [3 x 3] intrinsics.
    num_frames: T >= 2 output frames; the first equals key 0 and the last key N-1 exactly.
    """
    cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
    if cam_to_world.ndim != 3 or cam_to_world.shape[1:] != (4, 4):
        raise ValueError(f"cam_to_world must be [N x 4 x 4], got {cam_to_world.shape}")
    num_keys = cam_to_world.shape[0]
    if num_keys < 2:
        raise ValueError(f"a trajectory needs at least 2 key cameras, got {num_keys}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape == (3, 3):
        K = np.broadcast_to(K, (num_keys, 3, 3))
    if K.shape != (num_keys, 3, 3):
        raise ValueError(f"K must be [3 x 3] or [{num_keys} x 3 x 3], got {K.shape}")

    # Integer numerator over integer denominator: frames that land on a key are exact integers.
    key_parameter = np.arange(num_frames) * (num_keys - 1) / (num_frames - 1)
    segment = np.minimum(np.floor(key_parameter).astype(int), num_keys - 2)
    fraction = key_parameter - segment

    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    intrinsics = np.empty((num_frames, 3, 3))
    for seg in range(num_keys - 1):
        in_segment = np.flatnonzero(segment == seg)
        if in_segment.size == 0:
            continue
        t = fraction[in_segment]
        start, end = cam_to_world[seg], cam_to_world[seg + 1]
        poses[in_segment, :3, :3] = slerp_rotations(start[:3, :3], end[:3, :3], t)
        poses[in_segment, :3, 3] = (1.0 - t)[:, None] * start[:3, 3] + t[:, None] * end[:3, 3]
        intrinsics[in_segment] = (1.0 - t)[:, None, None] * K[seg] + t[:, None, None] * K[seg + 1]

    # Frames on a key camera copy it, so rounding never moves a relay camera.
    on_key = np.flatnonzero(key_parameter == np.round(key_parameter))
    key_index = np.round(key_parameter[on_key]).astype(int)
    poses[on_key] = cam_to_world[key_index]
    intrinsics[on_key] = K[key_index]
    return CameraTrajectory(cam_to_world=poses, K=intrinsics, key_parameter=key_parameter)
