"""Live-service replay: feed a running posecrafter node and query it by stamp (rclpy).

For each pair the row publishes sensor_msgs/CameraInfo + Image for keyframe A, optionally
the frames between A and B (they become the node's oracle candidates), and keyframe B on the
node's `image` / `camera_info` topics, then calls
posecrafter_ros/srv/EstimateRelativePose with both keyframes as KeyframeRef.SOURCE_STAMP,
so the answer goes through the node's keyframe buffer exactly as a SLAM front end's request
would. The response pose is B in A (p_A = R p_B + t); the row reports its inverse,
(R_0to1, t_0to1), like every other row.

Topic and service names are arguments: a node started in namespace /ns serves
/ns/posecrafter/estimate_relative_pose and listens on /ns/image and /ns/camera_info, which is
what `default_topics` derives from the service name.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ..core.rotations import quaternion_wxyz_to_matrix
from ..core.types import Keyframe, invert_rigid
from ..eval.rows import RowOutcome

DEFAULT_SERVICE = "/posecrafter/estimate_relative_pose"
KEYFRAME_NOT_FOUND = 2  # EstimateStatus.KEYFRAME_NOT_FOUND


def default_topics(service: str) -> tuple[str, str]:
    """(image, camera_info) topics of the node that serves `service` (same namespace)."""
    parts = service.rstrip("/").split("/")
    namespace = "/".join(parts[:-2]) if len(parts) >= 3 else ""
    return f"{namespace}/image", f"{namespace}/camera_info"


class ServiceRow:
    """The row `pipeline:service`: a live node queried through its keyframe buffer."""

    name = "pipeline:service"

    def __init__(
        self,
        service: str = DEFAULT_SERVICE,
        image_topic: str | None = None,
        camera_info_topic: str | None = None,
        publish_between: bool = False,
        timeout_sec: float = 120.0,
        wait_sec: float = 30.0,
        settle_sec: float = 0.3,
        publish_interval_sec: float = 0.05,
        retries: int = 5,
    ):
        self.service = service
        default_image, default_info = default_topics(service)
        self.image_topic = image_topic or default_image
        self.camera_info_topic = camera_info_topic or default_info
        self.needs_between = publish_between
        self.timeout_sec, self.settle_sec, self.retries = timeout_sec, settle_sec, retries
        self.publish_interval_sec = publish_interval_sec
        self.skip_reason: str | None = None
        self._owns_context = False
        self.node = None
        try:
            import rclpy
            from rclpy.qos import QoSProfile, ReliabilityPolicy
            from sensor_msgs.msg import CameraInfo, Image

            from ..srv import EstimateRelativePose
        except ImportError as err:
            self.skip_reason = f"rclpy or the posecrafter_ros interfaces are not importable ({err})"
            return
        self._rclpy = rclpy
        self._Image, self._CameraInfo, self._Srv = Image, CameraInfo, EstimateRelativePose
        if not rclpy.ok():
            rclpy.init()
            self._owns_context = True
        self.node = rclpy.create_node("posecrafter_replay")
        # Reliable publishers reach the node's best-effort (sensor-data) subscriptions too.
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._image_pub = self.node.create_publisher(Image, self.image_topic, qos)
        self._info_pub = self.node.create_publisher(CameraInfo, self.camera_info_topic, qos)
        self._client = self.node.create_client(EstimateRelativePose, service)
        if not self._client.wait_for_service(timeout_sec=wait_sec):
            self.skip_reason = f"service {service} did not appear within {wait_sec:.0f} s"
        elif not self._round_trip(wait_sec):
            self.skip_reason = f"service {service} did not answer within {wait_sec:.0f} s"
        if self.skip_reason:
            self.close()
            return
        self._wait_for_subscribers(wait_sec)

    def _round_trip(self, wait_sec: float) -> bool:
        """One answered probe (an unknown keyframe id): until the server has matched this
        client, a request can be lost, and a lost first pair would count as a failure."""
        from ..msg import KeyframeRef
        from ..ros.client import PROBE_ID

        probe = self._Srv.Request()
        probe.keyframe_a = KeyframeRef(source=KeyframeRef.SOURCE_ID, id=PROBE_ID)
        probe.keyframe_b = KeyframeRef(source=KeyframeRef.SOURCE_ID, id=PROBE_ID)
        deadline = time.monotonic() + wait_sec
        while time.monotonic() < deadline:
            future = self._client.call_async(probe)
            self._rclpy.spin_until_future_complete(self.node, future, timeout_sec=1.0)
            if future.done():
                return True
            self._client.remove_pending_request(future)
        return False

    def _wait_for_subscribers(self, wait_sec: float) -> None:
        deadline = time.monotonic() + wait_sec
        while time.monotonic() < deadline and (
            self._image_pub.get_subscription_count() == 0
            or self._info_pub.get_subscription_count() == 0
        ):
            self._rclpy.spin_once(self.node, timeout_sec=0.05)

    def _time(self, stamp_ns: int):
        from builtin_interfaces.msg import Time

        return Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)

    def _publish(self, kf: Keyframe) -> None:
        height, width = kf.image.shape[:2]
        stamp, frame_id = self._time(kf.stamp_ns), kf.frame_id or "camera_optical_frame"
        info = self._CameraInfo()
        info.header.stamp, info.header.frame_id = stamp, frame_id
        info.width, info.height = width, height
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = [float(v) for v in np.asarray(kf.K, float).ravel()]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [float(v) for v in np.hstack([np.asarray(kf.K, float), np.zeros((3, 1))]).ravel()]
        image = self._Image()
        image.header.stamp, image.header.frame_id = stamp, frame_id
        image.height, image.width = height, width
        grey = kf.image.ndim == 2
        image.encoding, image.step = ("mono8", width) if grey else ("rgb8", width * 3)
        image.data = np.ascontiguousarray(kf.image).tobytes()  # bytes: far faster than an ndarray
        self._info_pub.publish(info)
        self._image_pub.publish(image)

    def _request(self, a: Keyframe, b: Keyframe):
        from ..msg import KeyframeRef

        request = self._Srv.Request()
        request.keyframe_a = KeyframeRef(
            source=KeyframeRef.SOURCE_STAMP, stamp=self._time(a.stamp_ns)
        )
        request.keyframe_b = KeyframeRef(
            source=KeyframeRef.SOURCE_STAMP, stamp=self._time(b.stamp_ns)
        )
        future = self._client.call_async(request)
        self._rclpy.spin_until_future_complete(self.node, future, timeout_sec=self.timeout_sec)
        if not future.done():
            self._client.remove_pending_request(future)
            return None
        return future.result()

    def estimate(
        self, a: Keyframe, b: Keyframe, between: Sequence[Keyframe] | None = None
    ) -> RowOutcome:
        response = None
        for _ in range(self.retries):
            for kf in [a, *(between or []), b]:
                self._publish(kf)
                # Paced: the node subscribes best-effort (sensor data), and a burst of large
                # images overruns the loopback socket buffer, losing whole messages.
                time.sleep(self.publish_interval_sec)
            time.sleep(self.settle_sec)  # let the node's subscription callbacks buffer them
            response = self._request(a, b)
            if response is None or response.status.code != KEYFRAME_NOT_FOUND:
                break
        if response is None:
            return RowOutcome(
                None, None, f"no answer from {self.service} within {self.timeout_sec:.0f} s"
            )
        path = response.diagnostics.path
        if response.status.code != 0:
            return RowOutcome(
                None, None, f"status {response.status.code}: {response.message}", path
            )
        pose = response.pose.pose.pose
        q = pose.orientation
        R_b_in_a = quaternion_wxyz_to_matrix([q.w, q.x, q.y, q.z])
        t_b_in_a = np.array([pose.position.x, pose.position.y, pose.position.z])
        node_seconds = response.diagnostics.total_seconds
        message = f"{response.message} (node: {node_seconds:.3f} s)"
        return RowOutcome(
            *invert_rigid(R_b_in_a, t_b_in_a), message, path, {"node_seconds": node_seconds}
        )

    def close(self) -> None:
        if self.node is not None:
            self.node.destroy_node()
            self.node = None
        if self._owns_context and self._rclpy.ok():
            self._rclpy.shutdown()
            self._owns_context = False
