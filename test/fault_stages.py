"""Bridge stages that misbehave on purpose, for fault-injection tests of the node.

Loaded by the node through the pipeline's `type: "module:factory"` plugin mechanism (the
test puts this directory on the node's PYTHONPATH). `conf["mode"]` picks the behaviour:
  slow  - report progress every `step_sec` for `steps` steps (cancel/timeout/busy tests)
  raise - fail after a few steps with a RuntimeError (a model bug mid-request)
  oom   - fail after a few steps with the error PyTorch raises when the GPU is full
"""

from __future__ import annotations

import time


class FaultyInterpolator:
    def __init__(self, conf: dict):
        self.mode = conf.get("mode", "slow")
        self.steps = int(conf.get("steps", 20))
        self.step_sec = float(conf.get("step_sec", 0.1))

    def interpolate(self, a, b, ctx):
        for step in range(self.steps):
            time.sleep(self.step_sec)
            ctx.report((step + 1) / self.steps)
            if step == 2 and self.mode == "raise":
                raise RuntimeError("injected failure in the interpolation model")
            if step == 2 and self.mode == "oom":
                raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")
        raise RuntimeError("the faulty interpolator has no frames to give")


class NeverReached:
    """Fills the other bridge slots; the faulty interpolator fails before they run."""

    def __init__(self, conf: dict):
        self.conf = conf

    def __getattr__(self, name):
        raise AssertionError(f"stage method {name} should not be reached")


def interpolator(conf: dict) -> FaultyInterpolator:
    return FaultyInterpolator(conf)


def never_reached(conf: dict) -> NeverReached:
    return NeverReached(conf)


class PoseFailingOnSequenceFrames:
    """A multi-view pose model that cannot connect real sequence frames (frame ids starting
    with "seq-") but answers from generated ones: makes the oracle bridge fail so that the
    pipeline's fallback to the generative bridge is exercised."""

    def __init__(self, conf: dict):
        self.conf = conf

    def estimate(self, views, ctx):
        import numpy as np

        from posecrafter_ros.core.types import EstimationError, RelativePose, Status

        if any(view.frame_id.startswith("seq-") for view in views):
            raise EstimationError(Status.INSUFFICIENT_OVERLAP, "the real frames do not connect")
        return RelativePose(np.eye(3), np.array([1.0, 0.0, 0.0]), np.eye(6), scale_known=False)


def pose_failing_on_sequence_frames(conf: dict) -> PoseFailingOnSequenceFrames:
    return PoseFailingOnSequenceFrames(conf)
