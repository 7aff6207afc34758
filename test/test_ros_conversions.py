"""Image / CameraInfo / pose conversions (message types, no DDS)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_ros

pytestmark = requires_ros


@pytest.fixture()
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)


def make_image(arr: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False):
    from sensor_msgs.msg import Image

    msg = Image(
        height=arr.shape[0], width=arr.shape[1], encoding=encoding, is_bigendian=int(big_endian)
    )
    rows = arr.reshape(arr.shape[0], -1)
    if arr.dtype == np.uint16:
        rows = rows.astype(">u2" if big_endian else "<u2")
    raw = rows.view(np.uint8).reshape(arr.shape[0], -1)
    raw = np.concatenate([raw, np.zeros((arr.shape[0], pad), np.uint8)], axis=1)
    msg.step = raw.shape[1]
    msg.data = raw.tobytes()
    return msg


@pytest.mark.parametrize(
    "encoding,convert",
    [
        ("rgb8", lambda a: a),
        ("bgr8", lambda a: a[:, :, ::-1]),
        ("rgba8", lambda a: np.dstack([a, np.full(a.shape[:2], 7, np.uint8)])),
        ("bgra8", lambda a: np.dstack([a[:, :, ::-1], np.full(a.shape[:2], 7, np.uint8)])),
    ],
)
def test_colour_encodings_decode_to_rgb(rgb, encoding, convert):
    from posecrafter_ros.ros.conversions import image_to_array

    for pad in (0, 3):
        out = image_to_array(make_image(np.ascontiguousarray(convert(rgb)), encoding, pad))
        np.testing.assert_array_equal(out, rgb)


def test_mono_encodings(rgb):
    from posecrafter_ros.ros.conversions import image_to_array

    grey = rgb[:, :, 0]
    np.testing.assert_array_equal(image_to_array(make_image(grey, "mono8", pad=1)), grey)
    wide = grey.astype(np.uint16) * 257
    for big in (False, True):
        np.testing.assert_array_equal(
            image_to_array(make_image(wide, "mono16", big_endian=big)), grey
        )


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda m: setattr(m, "encoding", "nv12"), "unsupported encoding"),
        (lambda m: setattr(m, "step", 2), "step"),
        (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "bytes"),
        (lambda m: (setattr(m, "height", 0), setattr(m, "data", b"")), "empty"),
        (lambda m: (setattr(m, "width", 100000), setattr(m, "height", 100000)), "limit"),
    ],
)
def test_malformed_images_raise_invalid_request(rgb, mutate, needle):
    from posecrafter_ros.core.types import EstimationError, Status
    from posecrafter_ros.ros.conversions import image_to_array

    msg = make_image(rgb, "rgb8")
    mutate(msg)
    with pytest.raises(EstimationError) as info:
        image_to_array(msg)
    assert info.value.status == Status.INVALID_REQUEST
    assert needle in info.value.message


def test_camera_info_checks():
    from sensor_msgs.msg import CameraInfo

    from posecrafter_ros.core.types import EstimationError
    from posecrafter_ros.ros.conversions import camera_info_to_K

    good = CameraInfo(
        width=640, height=480, k=[500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    )
    np.testing.assert_allclose(camera_info_to_K(good, 640, 480)[0], [500, 0, 320])
    binned = CameraInfo(width=640, height=480, k=list(good.k), binning_x=2, binning_y=2)
    np.testing.assert_allclose(camera_info_to_K(binned, 640, 480)[:2, 2], [160, 120])
    unsized = CameraInfo(k=list(good.k))  # width/height 0: size unknown, accepted
    camera_info_to_K(unsized, 100, 100)
    for k, w, h, needle in [
        ([0.0] * 9, 640, 480, "focal"),
        ([float("nan")] + list(good.k[1:]), 640, 480, "NaN"),
        ([500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 0.0], 640, 480, "pinhole"),
        (list(good.k), 320, 240, "does not match"),
    ]:
        with pytest.raises(EstimationError, match=needle):
            camera_info_to_K(CameraInfo(width=640, height=480, k=k), w, h)


def test_pose_roundtrip_and_quaternion_convention():
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from scipy.spatial.transform import Rotation

    from posecrafter_ros.core.types import RelativePose
    from posecrafter_ros.ros.conversions import fill_pose, pose_from_msg, rotation_to_quaternion

    rng = np.random.default_rng(3)
    for rotvec in [np.zeros(3), [np.pi, 0, 0], [0, np.pi - 1e-9, 0], *rng.normal(size=(20, 3))]:
        R = Rotation.from_rotvec(rotvec).as_matrix()
        q = rotation_to_quaternion(R)
        assert q[3] >= 0
        np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), R, atol=1e-9)
    cov = np.diag([1e6, 1e6, 1e6, 1e-4, 2e-4, 3e-4])
    cov[3, 4] = cov[4, 3] = 5e-5
    pose = RelativePose(
        Rotation.from_rotvec([0.1, -0.4, 0.2]).as_matrix(), np.array([0.6, 0.0, 0.8]), cov
    )
    msg = PoseWithCovarianceStamped()
    fill_pose(msg, pose, "cam_a", msg.header.stamp)
    R, t, cov_back = pose_from_msg(msg)
    np.testing.assert_allclose(R, pose.R, atol=1e-12)
    np.testing.assert_allclose(t, pose.t)
    np.testing.assert_allclose(cov_back, cov)  # row-major layout preserved
    assert msg.pose.covariance[3 * 6 + 4] == 5e-5


def test_camera_info_distortion_reaches_the_keyframe():
    from sensor_msgs.msg import CameraInfo, Image

    from posecrafter_ros.core.types import EstimationError
    from posecrafter_ros.ros.conversions import keyframe_from_msgs

    image = Image(height=4, width=6, encoding="mono8", step=6, data=bytes(24))
    k = [50.0, 0.0, 3.0, 0.0, 50.0, 2.0, 0.0, 0.0, 1.0]
    d = [-0.2, 0.05, 0.001, 0.0, 0.0]
    kf = keyframe_from_msgs(image, CameraInfo(k=k, d=d, distortion_model="plumb_bob"), "A")
    assert kf.is_distorted and kf.distortion_model == "plumb_bob"
    np.testing.assert_allclose(kf.D, d)
    pinhole = keyframe_from_msgs(image, CameraInfo(k=k, d=[0.0] * 5), "A")
    assert not pinhole.is_distorted
    with pytest.raises(EstimationError, match="takes 4 coefficients"):
        keyframe_from_msgs(image, CameraInfo(k=k, d=d, distortion_model="equidistant"), "A")
    with pytest.raises(EstimationError, match="unsupported distortion_model"):
        keyframe_from_msgs(image, CameraInfo(k=k, d=[0.1], distortion_model="fov"), "A")


def test_rectified_image_topic_uses_the_projection_and_ignores_d():
    from sensor_msgs.msg import CameraInfo, Image

    from posecrafter_ros.ros.conversions import keyframe_from_msgs

    image = Image(height=4, width=6, encoding="mono8", step=6, data=bytes(24))
    info = CameraInfo(
        k=[50.0, 0.0, 3.0, 0.0, 50.0, 2.0, 0.0, 0.0, 1.0],
        d=[-0.2, 0.05, 0.0, 0.0, 0.0],
        distortion_model="plumb_bob",
        p=[45.0, 0.0, 2.5, 0.0, 0.0, 45.0, 1.5, 0.0, 0.0, 0.0, 1.0, 0.0],
    )
    kf = keyframe_from_msgs(image, info, "buffered", rectified=True)
    assert not kf.is_distorted
    np.testing.assert_allclose(kf.K, [[45.0, 0, 2.5], [0, 45.0, 1.5], [0, 0, 1]])
