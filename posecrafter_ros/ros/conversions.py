"""sensor_msgs / geometry_msgs <-> core types. Every malformed input is an INVALID_REQUEST."""

from __future__ import annotations

import numpy as np

from ..core.rotations import matrix_to_quaternion_wxyz, quaternion_wxyz_to_matrix
from ..core.types import Diagnostics, EstimationError, Keyframe, RelativePose, Status

# encoding -> (channels, numpy dtype, conversion to RGB / grey uint8)
ENCODINGS = {
    "mono8": (1, np.uint8),
    "8UC1": (1, np.uint8),
    "mono16": (1, np.uint16),
    "16UC1": (1, np.uint16),
    "rgb8": (3, np.uint8),
    "bgr8": (3, np.uint8),
    "8UC3": (3, np.uint8),
    "rgba8": (4, np.uint8),
    "bgra8": (4, np.uint8),
}
MAX_PIXELS = 8192 * 8192
# Variance of every axis when a response carries no pose (status other than SUCCESS).
NO_INFORMATION_VARIANCE = 1e12


def invalid(message: str) -> EstimationError:
    return EstimationError(Status.INVALID_REQUEST, message)


def image_to_array(msg, label: str = "image") -> np.ndarray:
    """sensor_msgs/Image -> [H x W] or [H x W x 3] uint8 RGB (no copy where possible)."""
    enc = msg.encoding
    if enc not in ENCODINGS:
        raise invalid(f"{label}: unsupported encoding {enc!r} (supported: {', '.join(ENCODINGS)})")
    channels, dtype = ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise invalid(f"{label}: empty image ({w}x{h})")
    if h * w > MAX_PIXELS:
        raise invalid(f"{label}: {w}x{h} exceeds the {MAX_PIXELS} pixel limit")
    row_bytes = w * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise invalid(f"{label}: step {step} is smaller than width*channels*bytes = {row_bytes}")
    data = memoryview(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data
    size = len(data) if not isinstance(data, np.ndarray) else data.nbytes
    if size != step * h:
        raise invalid(f"{label}: data has {size} bytes, expected step*height = {step * h}")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(h, step)[:, :row_bytes]
    big_endian = bool(msg.is_bigendian)
    arr = (
        raw.view(np.dtype(dtype).newbyteorder(">" if big_endian else "<"))
        if dtype != np.uint8
        else raw
    )
    arr = arr.reshape(h, w, channels) if channels > 1 else arr.reshape(h, w)
    if dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0).round().astype(np.uint8)
    if channels == 1:
        return np.ascontiguousarray(arr)
    if enc in ("bgr8", "8UC3"):
        return np.ascontiguousarray(arr[:, :, ::-1])
    if enc == "bgra8":
        return np.ascontiguousarray(arr[:, :, 2::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(arr[:, :, :3])
    return np.ascontiguousarray(arr)


def array_to_image(arr: np.ndarray, msg_type, frame_id: str = "", stamp=None):
    """[H x W] grey or [H x W x 3] RGB uint8 -> sensor_msgs/Image (mono8 / rgb8)."""
    msg = msg_type()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = "mono8" if arr.ndim == 2 else "rgb8"
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * (1 if arr.ndim == 2 else 3))
    msg.data = np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    return msg


def camera_info_to_K(info, width: int, height: int, label: str = "camera_info") -> np.ndarray:
    """CameraInfo.k -> [3 x 3], checked against the image size it describes."""
    K = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(K)):
        raise invalid(f"{label}: K contains NaN or inf")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise invalid(f"{label}: focal lengths must be positive (fx={K[0, 0]}, fy={K[1, 1]})")
    if K[2, 2] != 1.0 or K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0:
        raise invalid(f"{label}: K is not an upper-triangular pinhole matrix with K[2,2] = 1")
    if (info.width, info.height) != (0, 0) and (info.width, info.height) != (width, height):
        raise invalid(
            f"{label}: size {info.width}x{info.height} does not match the image {width}x{height}"
        )
    binning = max(int(info.binning_x), 1), max(int(info.binning_y), 1)
    if binning != (1, 1):
        K = K.copy()
        K[0] /= binning[0]
        K[1] /= binning[1]
    return K


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def keyframe_from_msgs(image, info, label: str) -> Keyframe:
    arr = image_to_array(image, f"{label} image")
    K = camera_info_to_K(info, arr.shape[1], arr.shape[0], f"{label} camera_info")
    return Keyframe(arr, K, image.header.frame_id, stamp_to_ns(image.header.stamp))


def rotation_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix, w >= 0 (the ROS order of core.rotations')."""
    w, x, y, z = matrix_to_quaternion_wxyz(R)
    return float(x), float(y), float(z), float(w)


def quaternion_to_rotation(x: float, y: float, z: float, w: float) -> np.ndarray:
    """[3 x 3] rotation of a ROS (x, y, z, w) quaternion; normalised first."""
    return quaternion_wxyz_to_matrix([w, x, y, z])


def fill_pose(msg, pose: RelativePose, frame_id: str, stamp) -> None:
    """Write a RelativePose into a geometry_msgs/PoseWithCovarianceStamped."""
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    p = msg.pose.pose
    p.position.x, p.position.y, p.position.z = (float(v) for v in pose.t)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = rotation_to_quaternion(
        pose.R
    )
    cov = np.asarray(pose.covariance, dtype=np.float64).reshape(6, 6)
    msg.pose.covariance = [float(v) for v in cov.ravel()]


def pose_from_msg(msg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, t, covariance 6x6) of a PoseWithCovarianceStamped."""
    p = msg.pose.pose
    R = quaternion_to_rotation(p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w)
    t = np.array([p.position.x, p.position.y, p.position.z])
    return R, t, np.asarray(msg.pose.covariance, dtype=np.float64).reshape(6, 6)


def fill_diagnostics(msg, diag: Diagnostics) -> None:
    msg.path = diag.path
    msg.direct_matches = int(diag.direct_matches)
    msg.direct_inliers = int(diag.direct_inliers)
    msg.direct_confidence = float(diag.direct_confidence)
    msg.num_relay_frames = int(diag.num_relay_frames)
    msg.num_candidate_frames = int(diag.num_candidate_frames)
    msg.selected_frames = [int(i) for i in diag.selected_frames]
    msg.selected_scores = [int(s) for s in diag.selected_scores]
    msg.stage_names = [s.name for s in diag.stages]
    msg.stage_seconds = [float(s.seconds) for s in diag.stages]
    msg.total_seconds = float(diag.total_seconds)
