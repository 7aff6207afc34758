"""Bridge stages that misbehave on purpose, for fault-injection tests of the node.

Loaded by the node through the pipeline's `type: "module:factory"` plugin mechanism (the
test puts this directory on the node's PYTHONPATH). `conf["mode"]` picks the behaviour:
  slow  - report progress every `step_sec` for `steps` steps (cancel/timeout/busy tests)
  raise - fail after a few steps with a RuntimeError (a model bug mid-request)
  oom   - fail after a few steps with the error PyTorch raises when the GPU is full
  hold  - hold the request's slot: write a file into `gate_dir` on entry (the test sees that
          the node has taken the slot), then wait until `gate_dir/release` exists
          (busy tests; no timing assumption in either direction)
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

HOLD_LIMIT_SEC = 300.0  # a test that never releases must not leave a node hanging forever


class FaultyInterpolator:
    def __init__(self, conf: dict):
        self.mode = conf.get("mode", "slow")
        self.steps = int(conf.get("steps", 20))
        self.step_sec = float(conf.get("step_sec", 0.1))
        self.gate_dir = Path(conf.get("gate_dir", "."))

    def interpolate(self, a, b, ctx):
        if self.mode == "hold":
            return self._hold()
        for step in range(self.steps):
            time.sleep(self.step_sec)
            ctx.report((step + 1) / self.steps)
            if step == 2 and self.mode == "raise":
                raise RuntimeError("injected failure in the interpolation model")
            if step == 2 and self.mode == "oom":
                raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")
        raise RuntimeError("the faulty interpolator has no frames to give")

    def _hold(self):
        (self.gate_dir / f"entered-{uuid.uuid4().hex}").touch()
        deadline = time.monotonic() + HOLD_LIMIT_SEC
        while not (self.gate_dir / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise RuntimeError("the held request was released")


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
