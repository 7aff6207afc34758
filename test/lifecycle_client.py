"""Drive a managed node's standard lifecycle services (~/get_state, ~/change_state) the way a
lifecycle manager does (`ros2 lifecycle` is not installed here)."""

from __future__ import annotations

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor

TRANSITIONS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
    "cleanup": Transition.TRANSITION_CLEANUP,
    "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
}


class LifecycleClient:
    def __init__(self, node_name: str):
        self.node = rclpy.create_node("lifecycle_test_client")
        self.get_state_client = self.node.create_client(GetState, f"{node_name}/get_state")
        self.change_state_client = self.node.create_client(ChangeState, f"{node_name}/change_state")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def _call(self, client, request, timeout_sec: float):
        assert client.wait_for_service(timeout_sec=30), f"{client.srv_name} not found"
        for _ in range(10):  # a request sent before the server matched us can be lost: resend
            future = client.call_async(request)
            self.executor.spin_until_future_complete(future, timeout_sec=timeout_sec)
            if future.done():
                return future.result()
            client.remove_pending_request(future)
        raise AssertionError(f"{client.srv_name} did not answer")

    def state(self) -> str:
        return self._call(self.get_state_client, GetState.Request(), 5.0).current_state.label

    def change(self, transition: str, timeout_sec: float = 120.0) -> bool:
        """True when the node accepted and completed the transition."""
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        return self._call(self.change_state_client, request, timeout_sec).success

    def destroy(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
