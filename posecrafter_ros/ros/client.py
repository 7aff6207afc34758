"""A small rclpy client for the node (used by posecrafter-query, the demo, replay and tests).

Portable across Humble, Jazzy and Kilted: call_async + spin_until_future_complete with a
timeout, and the pending request removed when it expires.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Callable

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from ..action import EstimateRelativePose as EstimateRelativePoseAction
from ..msg import KeyframeRef
from ..srv import EstimateRelativePose
from . import conversions as conv

DEFAULT_SERVICE = "/posecrafter/estimate_relative_pose"
PROBE_ID = "__posecrafter_client_probe__"  # a keyframe id no one publishes (see wait())


def stamp_msg(seconds: float | tuple[int, int]) -> Time:
    if isinstance(seconds, tuple):
        return Time(sec=int(seconds[0]), nanosec=int(seconds[1]))
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def camera_info_msg(
    K: np.ndarray, width: int, height: int, frame_id: str = "", stamp: Time | None = None
) -> CameraInfo:
    info = CameraInfo()
    info.header.frame_id = frame_id
    if stamp is not None:
        info.header.stamp = stamp
    info.width, info.height = int(width), int(height)
    info.k = [float(v) for v in np.asarray(K, dtype=np.float64).ravel()]
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:, :3] = np.asarray(K, dtype=np.float64)
    info.p = [float(v) for v in P.ravel()]
    return info


def inline_ref(
    image: np.ndarray,
    K: np.ndarray,
    frame_id: str = "camera_optical_frame",
    stamp: Time | None = None,
) -> KeyframeRef:
    ref = KeyframeRef(source=KeyframeRef.SOURCE_INLINE)
    ref.image = conv.array_to_image(image, Image, frame_id, stamp)
    ref.camera_info = camera_info_msg(K, image.shape[1], image.shape[0], frame_id, stamp)
    return ref


def stamp_ref(seconds: float | tuple[int, int]) -> KeyframeRef:
    return KeyframeRef(source=KeyframeRef.SOURCE_STAMP, stamp=stamp_msg(seconds))


def id_ref(keyframe_id: str) -> KeyframeRef:
    return KeyframeRef(source=KeyframeRef.SOURCE_ID, id=keyframe_id)


class PoseCrafterClient:
    """Service and action client with a node and an executor of its own.

    Pass `node` to reuse one; it is then spun by this client's executor while waiting, so it
    must not be spinning elsewhere at the same time. One client per thread.
    """

    def __init__(self, node: Node | None = None, service: str = DEFAULT_SERVICE):
        self._own_node = node is None
        self.node = node or rclpy.create_node(f"posecrafter_client_{uuid.uuid4().hex[:8]}")
        self.service_name = service
        self.service = self.node.create_client(EstimateRelativePose, service)
        self._action: ActionClient | None = None
        self._action_ready = False
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    @property
    def action(self) -> ActionClient:
        if self._action is None:
            self._action = ActionClient(self.node, EstimateRelativePoseAction, self.service_name)
        return self._action

    def _spin_until(self, future, timeout_sec: float) -> None:
        self.executor.spin_until_future_complete(future, timeout_sec=timeout_sec)

    def wait(self, timeout_sec: float = 10.0) -> bool:
        """True once the service answers a request (within `timeout_sec`).

        Discovery alone is not enough: until the server has matched this client's request
        writer and response reader, a request or its answer can be lost (volatile reliable
        DDS). So after the service appears, a probe (a keyframe id nobody uses; the node answers
        KEYFRAME_NOT_FOUND at once) is sent until one round trip completes.
        """
        deadline = time.monotonic() + timeout_sec
        if not self.service.wait_for_service(timeout_sec=timeout_sec):
            return False
        probe = self.request(id_ref(PROBE_ID), id_ref(PROBE_ID))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self.call(probe, timeout_sec=min(1.0, remaining)) is not None:
                return True

    def request(
        self, a: KeyframeRef, b: KeyframeRef, force_bridge: bool = False, budget_sec: float = 0.0
    ):
        return EstimateRelativePose.Request(
            keyframe_a=a, keyframe_b=b, force_bridge=force_bridge, budget_sec=float(budget_sec)
        )

    def call(self, request, timeout_sec: float = 60.0):
        """The response, or None when no answer came within `timeout_sec`."""
        future = self.service.call_async(request)
        self._spin_until(future, timeout_sec)
        if future.done():
            return future.result()
        self.service.remove_pending_request(future)
        return None

    @staticmethod
    def _goal(request):
        return EstimateRelativePoseAction.Goal(
            keyframe_a=request.keyframe_a,
            keyframe_b=request.keyframe_b,
            force_bridge=request.force_bridge,
            budget_sec=request.budget_sec,
        )

    def wait_action(self, timeout_sec: float = 10.0) -> bool:
        """True once the action server has completed a probe goal (within `timeout_sec`).

        As for the service (see wait()), discovery is not a match: a goal, or the first
        feedback of a goal, sent before the server has matched this client can be lost. A
        probe goal (unknown keyframe ids: the node answers KEYFRAME_NOT_FOUND at once) is sent
        until its result comes back; the server has then matched the endpoints this client
        announced together, the feedback reader among them. Done once per client.
        """
        if self._action_ready:
            return True
        deadline = time.monotonic() + timeout_sec
        if not self.action.wait_for_server(timeout_sec=timeout_sec):
            return False
        probe = self._goal(self.request(id_ref(PROBE_ID), id_ref(PROBE_ID)))
        while (remaining := deadline - time.monotonic()) > 0:
            send = self.action.send_goal_async(probe)
            self._spin_until(send, min(1.0, remaining))
            if not send.done() or not send.result().accepted:
                continue
            result = send.result().get_result_async()
            self._spin_until(result, max(0.0, deadline - time.monotonic()))
            if result.done():
                self._action_ready = True
                return True
        return False

    def call_action(
        self,
        request,
        feedback: Callable | None = None,
        timeout_sec: float = 120.0,
        cancel_after_feedback: int | None = None,
    ):
        """Run the action; returns (result, feedback messages). Optionally cancel after N feedbacks.

        The result is None when the server did not answer a probe goal (see wait_action()),
        refused the goal, or did not finish within `timeout_sec`.
        """
        if not self.wait_action(min(timeout_sec, 30.0)):
            return None, []
        goal = self._goal(request)
        seen = []
        state: dict = {"handle": None, "canceled": False}

        def maybe_cancel() -> None:
            due = cancel_after_feedback is not None and len(seen) >= cancel_after_feedback
            if due and state["handle"] is not None and not state["canceled"]:
                state["canceled"] = True
                state["handle"].cancel_goal_async()

        def on_feedback(msg):
            seen.append(msg.feedback)
            if feedback is not None:
                feedback(msg.feedback)
            maybe_cancel()

        send = self.action.send_goal_async(goal, feedback_callback=on_feedback)
        self._spin_until(send, timeout_sec)
        if not send.done() or not send.result().accepted:
            return None, seen
        state["handle"] = send.result()
        maybe_cancel()  # feedback may have arrived before the goal handle did
        result = state["handle"].get_result_async()
        self._spin_until(result, timeout_sec)
        return (result.result().result if result.done() else None), seen

    def destroy(self) -> None:
        self.executor.remove_node(self.node)
        self.executor.shutdown()
        if self._action is not None:
            self._action.destroy()
        self.node.destroy_client(self.service)
        if self._own_node:
            self.node.destroy_node()
