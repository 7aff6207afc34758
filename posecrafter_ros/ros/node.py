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
from rclpy.qos import QoSProfile, qos_profile_sensor_data
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
        120,
        "images kept from the image topic for requests by stamp",
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
    "buffer.reliable": (
        False,
        "subscribe images reliably (bag replay); default best effort, like camera drivers",
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


class PoseCrafterNode(Node):
    def __init__(self, **kwargs):
        super().__init__("posecrafter", **kwargs)
        forward_python_logging(self.get_logger())
        for name, (default, description, allowed) in PARAMETERS.items():
            self.declare_parameter(name, default, parameter_descriptor(description, allowed))
        p = self.param
        if p("torch_num_threads") > 0:
            import torch

            torch.set_num_threads(p("torch_num_threads"))
        self.pipeline = Pipeline.from_profile(p("profile"), self._profile_overrides()).load()
        for stage, state in self.pipeline.describe().items():
            if stage not in self.pipeline.unavailable:  # those were warned about while loading
                self.get_logger().info(f"stage {stage}: {state}")
        self.buffer = KeyframeBuffer(
            p("buffer.max_frames"),
            p("buffer.max_keyframes"),
            int(p("buffer.stamp_tolerance_sec") * 1e9),
        )
        self._slots = threading.BoundedSemaphore(p("max_concurrent_requests"))
        self._infos: dict[str, CameraInfo] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        self._last_latency = 0.0
        self._lock = threading.Lock()

        work = ReentrantCallbackGroup()
        topics = MutuallyExclusiveCallbackGroup()
        self.create_service(
            EstimateRelativePose, "~/estimate_relative_pose", self._on_service, callback_group=work
        )
        self._action = ActionServer(
            self,
            EstimateRelativePoseAction,
            "~/estimate_relative_pose",
            execute_callback=self._on_action,
            goal_callback=lambda _: GoalResponse.ACCEPT,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=work,
        )
        # Best effort matches every publisher; reliable (for replay) only reliable ones but loses nothing.
        image_qos = QoSProfile(depth=20) if p("buffer.reliable") else qos_profile_sensor_data
        self.create_subscription(
            CameraInfo, "camera_info", self._on_camera_info, image_qos, callback_group=topics
        )
        self.create_subscription(Image, "image", self._on_image, image_qos, callback_group=topics)
        self.create_subscription(
            KeyframeMsg, "keyframes", self._on_keyframe, QoSProfile(depth=50), callback_group=topics
        )
        self._result_pub = self.create_publisher(PoseWithCovarianceStamped, "~/result", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._tf_pub = None
        if p("publish_tf"):
            from tf2_msgs.msg import TFMessage

            self._tf_pub = self.create_publisher(TFMessage, "/tf", 100)
        self.create_timer(
            p("diagnostics_period_sec"), self._publish_diagnostics, callback_group=topics
        )
        service = f"{self.get_namespace().rstrip('/')}/{self.get_name()}/estimate_relative_pose"
        self.get_logger().info(f"ready: profile '{self.pipeline.name}', service {service}")

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
            self.buffer.add(conv.keyframe_from_msgs(msg, info, "buffered"))
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
        by_stamp = KeyframeRef.SOURCE_STAMP
        if (
            self.param("buffer.use_as_oracle")
            and request.keyframe_a.source == by_stamp
            and request.keyframe_b.source == by_stamp
        ):
            sequence = self.buffer.between(a.stamp_ns, b.stamp_ns)
        options = EstimateOptions(bool(request.force_bridge), float(request.budget_sec))
        return self.pipeline.estimate(a, b, options, ctx, sequence), a

    def _budget(self, request) -> float:
        budget = float(request.budget_sec)
        if not budget > 0.0:  # also catches NaN
            budget = float(self.param("request_timeout_sec"))
        return budget

    def _serve(self, request, response, ctx: RunContext):
        """Shared body of the service and the action: fills `response`, never raises."""
        started = time.monotonic()
        a = None
        if not self._slots.acquire(blocking=False):
            result = EstimateResult(
                Status.BUSY,
                f"all {self.param('max_concurrent_requests')} request slots are busy; retry later",
            )
        else:
            try:
                result, a = self._compute(request, ctx)
            except Exception as err:  # the pipeline never raises; this guards the ROS glue
                self.get_logger().error(f"request failed: {type(err).__name__}: {err}")
                result = EstimateResult(Status.INTERNAL_ERROR, f"{type(err).__name__}: {err}")
            finally:
                self._slots.release()
        try:
            self._fill(response, result, a)
        except Exception as err:
            response.status.code = EstimateStatus.INTERNAL_ERROR
            response.message = f"could not encode the result: {type(err).__name__}: {err}"
        with self._lock:
            self._counts[result.status.name] += 1
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

    def _on_service(self, request, response):
        try:
            return self._serve(request, response, RunContext(self._budget(request)))
        except Exception as err:  # last line of defence: never kill the executor
            response.status.code = EstimateStatus.INTERNAL_ERROR
            response.message = f"{type(err).__name__}: {err}"
            return response

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
            result.status.code = EstimateStatus.INTERNAL_ERROR
            result.message = f"{type(err).__name__}: {err}"
            try:
                goal_handle.abort()
            except Exception:
                pass
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
            {"last_latency_sec": f"{latency:.4f}", "buffer.frames": str(len(self.buffer))}
        )
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def _start_node() -> PoseCrafterNode:
    """The node, or a ConfigurationError saying which setting is wrong."""
    try:
        return PoseCrafterNode()
    except (InvalidParameterValueException, InvalidParameterTypeException) as err:
        raise ConfigurationError(str(err)) from None
    except (FileNotFoundError, ValueError) as err:  # profile missing, unknown profile keys
        raise ConfigurationError(f"{type(err).__name__}: {err}") from None


def main(args: list[str] | None = None) -> int:
    argv = sys.argv[1:] if args is None else list(args)
    user_args = argv[: argv.index("--ros-args")] if "--ros-args" in argv else argv
    if "--help" in user_args or "-h" in user_args:
        print(parameter_help())
        return 0
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = _start_node()
        except ConfigurationError as err:
            print(f"ERROR: posecrafter_node cannot start: {err}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
