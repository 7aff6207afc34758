"""posecrafter_node: relative pose between two keyframes, as a service and an action.

Interfaces (names relative to the node, remappable):
  ~/estimate_relative_pose   posecrafter_ros/srv/EstimateRelativePose  (service)
  ~/estimate_relative_pose   posecrafter_ros/action/EstimateRelativePose (action, progress + cancel)
  image, camera_info         sensor_msgs topics filling the keyframe buffer (requests by stamp)
  keyframes                  posecrafter_ros/msg/Keyframe (requests by id)
  ~/result                   geometry_msgs/PoseWithCovarianceStamped of every successful answer
  /diagnostics               diagnostic_msgs/DiagnosticArray (counters, model availability)
  /tf                        optional: A's frame -> B's frame + suffix (`publish_tf`)

Every callback turns every failure into a status; no exception escapes to the executor.
"""

from __future__ import annotations

import collections
import gc
import logging
import sys
import threading
import time
from pathlib import Path

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped, TransformStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, Image

from ..action import EstimateRelativePose as EstimateRelativePoseAction
from ..core.keyframe_buffer import KeyframeBuffer
from ..core.types import (
    EstimateOptions,
    EstimateResult,
    EstimationError,
    Keyframe,
    RunContext,
    Status,
)
from ..msg import EstimateStatus, KeyframeRef
from ..msg import Keyframe as KeyframeMsg
from ..pipeline import Pipeline
from ..srv import EstimateRelativePose
from . import conversions as conv

# parameter -> (default, description, allowed range or None); `posecrafter_node --help`
# prints this table, and a value outside its range is refused at start.
PARAMETERS = {
    "profile": ("cpu", "pipeline profile: a name in posecrafter_ros/profiles or a YAML path", None),
    "device": ("", "torch device for the models ('' = the profile's)", None),
    "dtype": ("", "model dtype: float32, float16 or bfloat16 ('' = the profile's)", None),
    "checkpoints.dynamicrafter": ("", "path to dynamicrafter_512_interp_v1/model.ckpt", None),
    "checkpoints.viewcrafter": ("", "path to the ViewCrafter_25_512 model.ckpt", None),
    "checkpoints.dust3r": (
        "",
        "path to DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth or .safetensors",
        None,
    ),
    "torch_num_threads": (
        0,
        "intra-op threads of the models (0 = torch's default); leave cores to SLAM",
        (0, 1024),
    ),
    "max_concurrent_requests": (2, "requests computed at once; more are answered BUSY", (1, 1024)),
    "request_timeout_sec": (
        60.0,
        "default per-request budget (a request's budget_sec overrides)",
        (0.001, 86400.0),
    ),
    "buffer.max_frames": (
        100000,
        "images kept from the image topic (also bounded by max_mb)",
        (1, 1_000_000),
    ),
    "buffer.max_keyframes": (
        500,
        "keyframes kept from the keyframes topic for requests by id",
        (1, 1_000_000),
    ),
    "buffer.stamp_tolerance_sec": (
        0.005,
        "how far a requested stamp may be from a buffered one",
        (0.0, 60.0),
    ),
    "buffer.use_as_oracle": (
        True,
        "offer buffered frames between two stamps as bridge candidates",
        None,
    ),
    "buffer.max_mb": (
        256.0,
        "memory bound of the buffered images (compressed copies), MB",
        (0.001, 1_000_000.0),
    ),
    "buffer.max_side": (
        0,
        "buffered images are downscaled to this longer side (0: full size)",
        (0, 100_000),
    ),
    "buffer.jpeg_quality": (90, "JPEG quality of the buffered copies (0: raw pixels)", (0, 100)),
    "buffer.reliable": (
        False,
        "subscribe images reliably (bag replay); default best effort, like camera drivers",
        None,
    ),
    "image_is_rectified": (
        False,
        "the image topic is rectified (image_rect): its K is CameraInfo.p, its d is ignored; "
        "false (image_raw): keypoints are undistorted with CameraInfo.d",
        None,
    ),
    "default_frame_id": (
        "camera_optical_frame",
        "frame used when a keyframe's header has none",
        None,
    ),
    "publish_tf": (False, "publish each successful result on /tf", None),
    "tf_child_suffix": (
        "_posecrafter",
        "child frame = B's frame + this suffix (avoids TF conflicts)",
        None,
    ),
    "diagnostics_period_sec": (1.0, "period of the /diagnostics publication", (0.05, 3600.0)),
    "bridge.executor": (
        "local",
        "local: the bridge runs in this node; ray: on a pool of Ray actors (shared GPU pool)",
        None,
    ),
    "bridge.ray_address": (
        "",
        "Ray cluster head HOST:PORT, or auto ('' = a private local Ray instance)",
        None,
    ),
    "bridge.ray_namespace": ("posecrafter", "Ray namespace of the pool's named actors", None),
    "bridge.pool_size": (
        1,
        "bridge actors in the pool (each holds the generative models)",
        (1, 1024),
    ),
    "bridge.gpus_per_worker": (0.0, "GPUs each bridge actor reserves", (0.0, 64.0)),
    "bridge.startup_timeout_sec": (
        600.0,
        "how long start-up waits for the pool's actors to load their models",
        (1.0, 86400.0),
    ),
}
CHECKPOINT_SLOTS = {  # parameter -> the profile sections (paths under `bridge:`) it fills
    "checkpoints.dynamicrafter": (("interpolator",),),
    "checkpoints.viewcrafter": (("synthesizer", "generator"),),
    "checkpoints.dust3r": (("relay_poser",), ("pose_model",)),
}


def parameter_descriptor(description: str, allowed: tuple | None) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=description)
    if allowed is not None:
        low, high = allowed
        if isinstance(low, int):
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=low, to_value=high, step=0.0)
            ]
    return descriptor


def parameter_help() -> str:
    """The `--help` text: every parameter with its default, allowed range and description."""
    lines = [
        "usage: posecrafter_node [--help] [--ros-args --params-file FILE -p NAME:=VALUE ...]",
        "",
        (__doc__ or "").split("\n\n")[0],
        "",
        "parameters (default; allowed range):",
    ]
    for name, (default, description, allowed) in PARAMETERS.items():
        bounds = f"; {allowed[0]} .. {allowed[1]}" if allowed is not None else ""
        lines.append(f"  {name} ({default!r}{bounds})")
        lines.append(f"      {description}")
    lines += ["", "Parameter files: config/cpu.yaml, config/gpu.yaml."]
    return "\n".join(lines)


class ConfigurationError(Exception):
    """A setting the node cannot start with (bad parameter value, unknown profile)."""


class PoseCrafterServer:
    """The service, action, topics and diagnostics of a posecrafter node, over an rclpy Node
    (posecrafter_node) or LifecycleNode (posecrafter_lifecycle_node).

    The node class calls, in order: `declare_parameters_from_table` (construction), `load`
    (the pipeline and its models), `open_interfaces` and `open_subscriptions` (serving); and
    the reverse `close_subscriptions`, `close_interfaces`, `unload`. Requests that arrive
    while `accepting` is False are answered INACTIVE.
    """

    pipeline: Pipeline | None = None
    accepting = True

    def declare_parameters_from_table(self) -> None:
        forward_python_logging(self.get_logger())
        for name, (default, description, allowed) in PARAMETERS.items():
            self.declare_parameter(name, default, parameter_descriptor(description, allowed))
        self._interfaces: list = []
        self._subscriptions_open: list = []
        self._remote_bridge = None

    def load(self) -> None:
        """Build the pipeline (models, checkpoints; or connect to the Ray bridge pool)."""
        p = self.param
        if p("torch_num_threads") > 0:
            import torch

            torch.set_num_threads(p("torch_num_threads"))
        overrides = self._profile_overrides()
        pipeline = Pipeline.from_profile(p("profile"), overrides)
        executor = p("bridge.executor")
        if executor == "ray":
            from ..remote_bridge import RayBridgePool

            address = p("bridge.ray_address")
            try:
                self._remote_bridge = RayBridgePool(
                    p("profile"),
                    overrides,
                    pool_size=p("bridge.pool_size"),
                    address=address,
                    namespace=p("bridge.ray_namespace"),
                    gpus_per_worker=p("bridge.gpus_per_worker"),
                )
            except Exception as err:
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise ValueError(f"bridge.executor ray: cannot use {where}: {err}") from err
            pipeline.remote_bridge = self._remote_bridge
            self._remote_bridge.wait_ready(p("bridge.startup_timeout_sec"))
        elif executor != "local":
            raise ValueError(f"bridge.executor must be 'local' or 'ray', got {executor!r}")
        self.pipeline = pipeline.load()
        for stage, state in self.pipeline.describe().items():
            if stage not in self.pipeline.unavailable:  # those were warned about while loading
                self.get_logger().info(f"stage {stage}: {state}")
        self.buffer = KeyframeBuffer(
            p("buffer.max_frames"),
            p("buffer.max_keyframes"),
            int(p("buffer.stamp_tolerance_sec") * 1e9),
            float(p("buffer.max_mb")),
            int(p("buffer.max_side")),
            int(p("buffer.jpeg_quality")),
        )
        self._slots = threading.BoundedSemaphore(p("max_concurrent_requests"))
        self._infos: dict[str, CameraInfo] = {}
        self._image_is_rectified = bool(p("image_is_rectified"))
        self._counts: collections.Counter[str] = collections.Counter()
        self._last_latency = 0.0
        self._lock = threading.Lock()

    def unload(self) -> None:
        """Free the models (and their GPU memory) and the buffer."""
        self.pipeline = None
        self.buffer = None
        if self._remote_bridge is not None:
            self._remote_bridge.close()
            self._remote_bridge = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def destroy_node(self) -> None:
        if self._remote_bridge is not None:  # disconnect from Ray (the pool's actors stay)
            self._remote_bridge.close()
        super().destroy_node()

    def open_interfaces(self) -> None:
        """The service, the action, the publishers and the diagnostics timer."""
        p = self.param
        work = ReentrantCallbackGroup()
        self._topics_group = MutuallyExclusiveCallbackGroup()
        service = self.create_service(
            EstimateRelativePose, "~/estimate_relative_pose", self._on_service, callback_group=work
        )
        action = ActionServer(
            self,
            EstimateRelativePoseAction,
            "~/estimate_relative_pose",
            execute_callback=self._on_action,
            goal_callback=lambda _: GoalResponse.ACCEPT,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=work,
        )
        self._result_pub = self.create_publisher(PoseWithCovarianceStamped, "~/result", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._tf_pub = None
        if p("publish_tf"):
            from tf2_msgs.msg import TFMessage

            self._tf_pub = self.create_publisher(TFMessage, "/tf", 100)
        timer = self.create_timer(
            p("diagnostics_period_sec"),
            self._publish_diagnostics,
            callback_group=self._topics_group,
        )
        self._interfaces = [service, action, self._result_pub, self._diag_pub, timer]
        if self._tf_pub is not None:
            self._interfaces.append(self._tf_pub)
        name = f"{self.get_namespace().rstrip('/')}/{self.get_name()}/estimate_relative_pose"
        self.get_logger().info(f"ready: profile '{self.pipeline.name}', service {name}")

    def close_interfaces(self) -> None:
        for entity in self._interfaces:
            if isinstance(entity, ActionServer):
                entity.destroy()
            elif isinstance(entity, Timer):
                self.destroy_timer(entity)
            elif isinstance(entity, Publisher):
                self.destroy_publisher(entity)
            else:
                self.destroy_service(entity)
        self._interfaces = []

    def open_subscriptions(self) -> None:
        """The image, camera_info and keyframes topics that fill the keyframe buffer."""
        # Best effort matches every publisher; reliable (for replay) only reliable ones but loses nothing.
        image_qos = (
            QoSProfile(depth=20) if self.param("buffer.reliable") else qos_profile_sensor_data
        )
        group = self._topics_group
        self._subscriptions_open = [
            self.create_subscription(
                CameraInfo, "camera_info", self._on_camera_info, image_qos, callback_group=group
            ),
            self.create_subscription(
                Image, "image", self._on_image, image_qos, callback_group=group
            ),
            self.create_subscription(
                KeyframeMsg,
                "keyframes",
                self._on_keyframe,
                QoSProfile(depth=50),
                callback_group=group,
            ),
        ]

    def close_subscriptions(self) -> None:
        for subscription in self._subscriptions_open:
            self.destroy_subscription(subscription)
        self._subscriptions_open = []

    def param(self, name: str):
        return self.get_parameter(name).value

    def _profile_overrides(self) -> dict:
        overrides: dict = {}
        for key in ("device", "dtype"):
            if self.param(key):
                overrides[key] = self.param(key)
        for name, sections in CHECKPOINT_SLOTS.items():
            if self.param(name):
                for path in sections:
                    section = overrides.setdefault("bridge", {})
                    for key in path:
                        section = section.setdefault(key, {})
                    section["checkpoint"] = str(Path(self.param(name)).expanduser())
        return overrides

    # ------------------------------------------------------------------ topics
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._infos[msg.header.frame_id] = msg

    def _on_image(self, msg: Image) -> None:
        info = self._infos.get(msg.header.frame_id) or (
            next(iter(self._infos.values())) if len(self._infos) == 1 else None
        )
        if info is None:
            self.get_logger().warn(
                "image without camera_info on the same frame yet: not buffered",
                throttle_duration_sec=5.0,
            )
            return
        try:
            self.buffer.add(
                conv.keyframe_from_msgs(msg, info, "buffered", self._image_is_rectified)
            )
        except EstimationError as err:
            self.get_logger().warn(f"image not buffered: {err.message}", throttle_duration_sec=5.0)

    def _on_keyframe(self, msg: KeyframeMsg) -> None:
        try:
            self.buffer.add_named(
                msg.id, conv.keyframe_from_msgs(msg.image, msg.camera_info, f"keyframe {msg.id!r}")
            )
        except EstimationError as err:
            self.get_logger().warn(
                f"keyframe not buffered: {err.message}", throttle_duration_sec=5.0
            )

    # ------------------------------------------------------------------ requests
    def _resolve(self, ref: KeyframeRef, label: str) -> Keyframe:
        if ref.source == KeyframeRef.SOURCE_INLINE:
            return conv.keyframe_from_msgs(ref.image, ref.camera_info, label)
        if ref.source == KeyframeRef.SOURCE_STAMP:
            stamp = conv.stamp_to_ns(ref.stamp)
            kf = self.buffer.by_stamp(stamp)
            if kf is None:
                span = self.buffer.stamp_range()
                have = f"buffer holds {len(self.buffer)} frames" + (
                    f" from {span[0] / 1e9:.3f} to {span[1] / 1e9:.3f}" if span else ""
                )
                raise EstimationError(
                    Status.KEYFRAME_NOT_FOUND,
                    f"{label}: no buffered image at stamp {stamp / 1e9:.9f} ({have})",
                )
            return kf
        if ref.source == KeyframeRef.SOURCE_ID:
            kf = self.buffer.by_id(ref.id)
            if kf is None:
                raise EstimationError(
                    Status.KEYFRAME_NOT_FOUND, f"{label}: no keyframe with id {ref.id!r}"
                )
            return kf
        raise EstimationError(Status.INVALID_REQUEST, f"{label}: unknown source {ref.source}")

    def _compute(self, request, ctx: RunContext) -> tuple[EstimateResult, Keyframe | None]:
        a = b = None
        try:
            a = self._resolve(request.keyframe_a, "keyframe A")
            b = self._resolve(request.keyframe_b, "keyframe B")
        except EstimationError as err:
            return EstimateResult(err.status, err.message), a
        sequence = None
        buffered = (KeyframeRef.SOURCE_STAMP, KeyframeRef.SOURCE_ID)
        if (
            self.param("buffer.use_as_oracle")
            and request.keyframe_a.source in buffered
            and request.keyframe_b.source in buffered
        ):
            # The images and the SLAM keyframes stamped between A and B, in time order.
            sequence = self.buffer.between(a.stamp_ns, b.stamp_ns, with_keyframes=True)
        options = EstimateOptions(bool(request.force_bridge), float(request.budget_sec))
        return self.pipeline.estimate(a, b, options, ctx, sequence), a

    def _budget(self, request) -> float:
        budget = float(request.budget_sec)
        if not budget > 0.0:  # also catches NaN
            budget = float(self.param("request_timeout_sec"))
        return budget

    def _admit_and_compute(
        self, request, ctx: RunContext
    ) -> tuple[EstimateResult, Keyframe | None]:
        """INACTIVE or BUSY, or the pipeline's answer within one of the request slots."""
        if not self.accepting:
            return EstimateResult(
                Status.INACTIVE,
                "the node is inactive (lifecycle state 'inactive'): it serves once activated",
            ), None
        if not self._slots.acquire(blocking=False):
            return EstimateResult(
                Status.BUSY,
                f"all {self.param('max_concurrent_requests')} request slots are busy; retry later",
            ), None
        try:
            return self._compute(request, ctx)
        finally:
            self._slots.release()

    def _serve(self, request, response, ctx: RunContext):
        """Shared body of the service and the action: fills `response`.

        Every outcome of a request is a status: the pipeline returns them and `_compute` turns
        a bad keyframe reference into one. An exception here is a bug in the ROS glue; it is
        counted as INTERNAL_ERROR and left to the callback's one guard.
        """
        started = time.monotonic()
        status = Status.INTERNAL_ERROR
        try:
            result, a = self._admit_and_compute(request, ctx)
            self._fill(response, result, a)
            status = result.status
        finally:
            with self._lock:
                self._counts[status.name] += 1
                self._last_latency = time.monotonic() - started
        return response

    def _fill(self, response, result: EstimateResult, a: Keyframe | None) -> None:
        response.status.code = int(result.status)
        response.message = result.message
        frame_id = a.frame_id if a is not None and a.frame_id else self.param("default_frame_id")
        stamp = (
            Time(sec=a.stamp_ns // 1_000_000_000, nanosec=a.stamp_ns % 1_000_000_000)
            if a is not None
            else self.get_clock().now().to_msg()
        )
        response.pose.header.frame_id = frame_id
        response.pose.header.stamp = stamp
        if result.pose is not None:
            conv.fill_pose(response.pose, result.pose, frame_id, stamp)
            response.translation_scale_known = bool(result.pose.scale_known)
        else:  # identity carrying no information, never a confident zero covariance
            response.pose.pose.covariance = [
                conv.NO_INFORMATION_VARIANCE if i % 7 == 0 else 0.0 for i in range(36)
            ]
        conv.fill_diagnostics(response.diagnostics, result.diagnostics)
        if result.ok and result.pose is not None:
            self._result_pub.publish(response.pose)
            if self._tf_pub is not None:
                self._publish_tf(response.pose)

    def _publish_tf(self, pose_msg: PoseWithCovarianceStamped) -> None:
        from tf2_msgs.msg import TFMessage

        tf = TransformStamped()
        tf.header = pose_msg.header
        tf.child_frame_id = pose_msg.header.frame_id + self.param("tf_child_suffix")
        p = pose_msg.pose.pose
        tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = (
            p.position.x,
            p.position.y,
            p.position.z,
        )
        tf.transform.rotation = p.orientation
        self._tf_pub.publish(TFMessage(transforms=[tf]))

    def _internal_error(self, response, err: Exception):
        """The callbacks' one guard: a bug in the ROS glue answers INTERNAL_ERROR (logged)
        instead of reaching the executor, which would stop serving."""
        self.get_logger().error(f"request failed: {type(err).__name__}: {err}")
        response.status.code = EstimateStatus.INTERNAL_ERROR
        response.message = f"{type(err).__name__}: {err}"
        return response

    def _on_service(self, request, response):
        try:
            return self._serve(request, response, RunContext(self._budget(request)))
        except Exception as err:
            return self._internal_error(response, err)

    def _on_action(self, goal_handle):
        result = EstimateRelativePoseAction.Result()
        try:
            feedback = EstimateRelativePoseAction.Feedback()
            ctx: RunContext

            def progress(stage: str, stage_progress: float, overall: float) -> None:
                if goal_handle.is_cancel_requested:
                    ctx.cancel()
                feedback.stage, feedback.stage_progress, feedback.progress = (
                    stage,
                    stage_progress,
                    overall,
                )
                feedback.elapsed_sec = ctx.elapsed()
                goal_handle.publish_feedback(feedback)

            ctx = RunContext(self._budget(goal_handle.request), progress)
            self._serve(goal_handle.request, result, ctx)
            if result.status.code == EstimateStatus.CANCELED or goal_handle.is_cancel_requested:
                result.status.code = EstimateStatus.CANCELED
                goal_handle.canceled()
            else:
                goal_handle.succeed()
        except Exception as err:
            # The goal could not be carried out: aborted, its result saying why.
            self._internal_error(result, err)
            if goal_handle.is_active:
                goal_handle.abort()
        return result

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        with self._lock:
            counts, latency = dict(self._counts), self._last_latency
        status = DiagnosticStatus(name="posecrafter: pipeline", hardware_id=self.pipeline.name)
        unavailable = self.pipeline.unavailable
        status.level = DiagnosticStatus.WARN if unavailable else DiagnosticStatus.OK
        status.message = (
            "bridge stages unavailable: " + ", ".join(unavailable) if unavailable else "ready"
        )
        values = {f"requests.{k.lower()}": str(v) for k, v in sorted(counts.items())}
        values.update({f"stage.{k}": v for k, v in self.pipeline.describe().items()})
        values.update(
            {
                "last_latency_sec": f"{latency:.4f}",
                "buffer.frames": str(len(self.buffer)),
                "buffer.megabytes": f"{self.buffer.megabytes():.1f}",
            }
        )
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


class PoseCrafterNode(PoseCrafterServer, Node):
    """posecrafter_node: loads its models at start and serves until it is stopped."""

    def __init__(self, **kwargs):
        super().__init__("posecrafter", **kwargs)
        self.declare_parameters_from_table()
        self.load()
        self.open_interfaces()
        self.open_subscriptions()


def _start_node(node_class: type):
    """The node, or a ConfigurationError saying which setting is wrong."""
    try:
        return node_class()
    except (InvalidParameterValueException, InvalidParameterTypeException) as err:
        raise ConfigurationError(str(err)) from None
    except (FileNotFoundError, ValueError) as err:  # profile missing, unknown profile keys
        raise ConfigurationError(f"{type(err).__name__}: {err}") from None


def spin(node_class: type, executable: str, args: list[str] | None = None) -> int:
    """Run a posecrafter node class until Ctrl-C or an external shutdown; the exit code."""
    argv = sys.argv[1:] if args is None else list(args)
    user_args = argv[: argv.index("--ros-args")] if "--ros-args" in argv else argv
    if "--help" in user_args or "-h" in user_args:
        print(parameter_help().replace("posecrafter_node", executable, 1))
        return 0
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = _start_node(node_class)
        except ConfigurationError as err:
            print(f"ERROR: {executable} cannot start: {err}", file=sys.stderr)
            return 2
        executor = MultiThreadedExecutor(
            num_threads=max(4, node.param("max_concurrent_requests") + 3)
        )
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


class _ToRosLog(logging.Handler):
    """Python logging records -> a ROS logger, at the matching severity."""

    def __init__(self, ros_logger):
        super().__init__()
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            log = self.ros_logger.error
        elif record.levelno >= logging.WARNING:
            log = self.ros_logger.warning
        elif record.levelno >= logging.INFO:
            log = self.ros_logger.info
        else:
            log = self.ros_logger.debug
        log(f"{record.name}: {record.getMessage()}")


def forward_python_logging(ros_logger) -> None:
    """Messages of the ROS-free layers (python logging) go to the node's log, once."""
    package_logger = logging.getLogger("posecrafter_ros")
    for handler in [h for h in package_logger.handlers if isinstance(h, _ToRosLog)]:
        package_logger.removeHandler(handler)
    package_logger.addHandler(_ToRosLog(ros_logger))
    package_logger.setLevel(logging.INFO)
    package_logger.propagate = False


def main(args: list[str] | None = None) -> int:
    return spin(PoseCrafterNode, "posecrafter_node", args)


if __name__ == "__main__":
    sys.exit(main())
