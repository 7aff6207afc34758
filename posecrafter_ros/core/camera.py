"""Lens distortion of the ROS camera models: undistort keypoints before geometry, images where a
stage needs pinhole pixels.

Supported `sensor_msgs/CameraInfo.distortion_model` values and their coefficients `d`:
- "plumb_bob": (k1, k2, p1, p2, k3), OpenCV's radial-tangential model;
- "rational_polynomial": (k1, k2, p1, p2, k3, k4, k5, k6), OpenCV's rational model;
- "equidistant": (k1, k2, k3, k4), OpenCV's fisheye (Kannala-Brandt) model.
Undistorted coordinates are expressed with the same K (a pinhole camera with the image's own
intrinsics), so every later step reads them as ordinary pixels.
"""

from __future__ import annotations

import numpy as np

from .types import Keyframe

# model -> accepted numbers of coefficients (OpenCV takes 4, 5, 8, 12 or 14 for the first two).
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (4, 5),
    "rational_polynomial": (8, 12, 14),
    "equidistant": (4,),
}


def check_distortion(model: str, D) -> np.ndarray:
    """The coefficients as float64 [n], or ValueError naming what is wrong."""
    coeffs = np.asarray(D if D is not None else [], dtype=np.float64).ravel()
    if not np.all(np.isfinite(coeffs)):
        raise ValueError("distortion coefficients are not finite")
    if not coeffs.size or not np.any(coeffs):
        return coeffs
    if model not in DISTORTION_MODELS:
        raise ValueError(
            f"unsupported distortion_model '{model}' with non-zero coefficients; supported: "
            f"{sorted(DISTORTION_MODELS)} (or publish a rectified image with zero d)"
        )
    if coeffs.size not in DISTORTION_MODELS[model]:
        raise ValueError(
            f"distortion_model '{model}' takes {' or '.join(map(str, DISTORTION_MODELS[model]))} "
            f"coefficients, got {coeffs.size}"
        )
    return coeffs


def undistort_points(points: np.ndarray, keyframe: Keyframe) -> np.ndarray:
    """[N x 2] distorted pixels of `keyframe` -> [N x 2] pinhole pixels under the same K."""
    if not keyframe.is_distorted or len(points) == 0:
        return points
    import cv2

    K = np.asarray(keyframe.K, np.float64)
    D = check_distortion(keyframe.distortion_model, keyframe.D)
    src = np.ascontiguousarray(points, np.float64).reshape(-1, 1, 2)
    # Iterative inversion; more iterations than OpenCV's default keep strong distortion at the
    # image corners accurate to a small fraction of a pixel.
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
    if keyframe.distortion_model == "equidistant":
        out = cv2.fisheye.undistortPoints(src, K, D, None, None, K, criteria)
    else:
        out = cv2.undistortPoints(src, K, D, None, None, K, criteria)
    return out.reshape(-1, 2)


def undistort_keyframe(keyframe: Keyframe) -> Keyframe:
    """The keyframe's image remapped to a pinhole camera with the same K (for stages that work
    on pixels: video models, FMS candidates, multi-view pose); pinhole keyframes pass through."""
    if not keyframe.is_distorted:
        return keyframe
    import cv2

    K = np.asarray(keyframe.K, np.float64)
    D = check_distortion(keyframe.distortion_model, keyframe.D)
    size = (keyframe.width, keyframe.height)
    if keyframe.distortion_model == "equidistant":
        map_x, map_y = cv2.fisheye.initUndistortRectifyMap(K, D, np.eye(3), K, size, cv2.CV_32FC1)
    else:
        map_x, map_y = cv2.initUndistortRectifyMap(K, D, None, K, size, cv2.CV_32FC1)
    image = cv2.remap(keyframe.image, map_x, map_y, cv2.INTER_LINEAR)
    return Keyframe(image, K.copy(), keyframe.frame_id, keyframe.stamp_ns)
