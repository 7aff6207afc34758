"""posecrafter_lifecycle_node: posecrafter_node as a managed (lifecycle) node.

Same parameters, service, action and topics as posecrafter_node (both are PoseCrafterServer);
the standard lifecycle services (~/get_state, ~/change_state, ...) drive it, for example from
Nav2's lifecycle manager (launch/posecrafter_lifecycle.launch.py):

  unconfigured --configure--> inactive      load the pipeline: models, checkpoints (or the Ray pool)
  inactive     --activate---> active        open the service, action and subscriptions; serve
  active       --deactivate-> inactive      requests answered INACTIVE; topics not buffered
  inactive     --cleanup----> unconfigured  close the interfaces, free the models and GPU memory
  any          --shutdown---> finalized
"""

from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn

from .node import PoseCrafterServer, spin


class PoseCrafterLifecycleNode(PoseCrafterServer, LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("posecrafter", **kwargs)
        self.declare_parameters_from_table()
        self.accepting = False

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """SUCCESS -> inactive, models loaded; FAILURE (a profile or a Ray pool that cannot
        load) -> unconfigured, with the reason logged."""
        try:
            self.load()
        except Exception as err:
            self.get_logger().error(f"configure failed: {type(err).__name__}: {err}")
            self.unload()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        if not self._interfaces:  # the first activation since configure
            self.open_interfaces()
        self.open_subscriptions()
        self.accepting = True
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """The service and the action stay and answer INACTIVE; the topics are closed."""
        self.accepting = False
        self.close_subscriptions()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Everything released; SUCCESS leads back to unconfigured (configure may be retried)."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self.accepting = False
        self.close_subscriptions()
        self.close_interfaces()
        self.unload()


def main(args: list[str] | None = None) -> int:
    return spin(PoseCrafterLifecycleNode, "posecrafter_lifecycle_node", args)


if __name__ == "__main__":
    sys.exit(main())
