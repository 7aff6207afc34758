"""Plain data types shared by every layer (no ROS, no torch)."""

from __future__ import annotations

import enum
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np


class Status(enum.IntEnum):
    """Outcome codes; values equal the constants of msg/EstimateStatus.msg."""

    SUCCESS = 0
    INVALID_REQUEST = 1
    KEYFRAME_NOT_FOUND = 2
    INSUFFICIENT_OVERLAP = 3
    MODEL_UNAVAILABLE = 4
    BUSY = 5
    TIMEOUT = 6
    CANCELED = 7
    INTERNAL_ERROR = 8


def status_name(code: int) -> str:
    """The Status name of a wire code ("SUCCESS", ...), or the number for an unknown code."""
    try:
        return Status(code).name
    except ValueError:
        return str(code)


class EstimationError(Exception):
    """A request that ends with a defined non-success status and a message for the user."""

    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Keyframe:
    """One image with its pinhole intrinsics.

    image: [H x W] uint8 (grey) or [H x W x 3] uint8 RGB.
    K: [3 x 3] float64 intrinsics of `image` (pixels, OpenCV convention).
    """

    image: np.ndarray
    K: np.ndarray
    frame_id: str = ""
    stamp_ns: int = 0

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def gray(self) -> np.ndarray:
        """[H x W] uint8 grey version of the image."""
        if self.image.ndim == 2:
            return self.image
        import cv2

        return cv2.cvtColor(self.image, cv2.COLOR_RGB2GRAY)


@dataclass
class RelativePose:
    """Pose of camera B in camera A's optical frame: p_A = R @ p_B + t.

    covariance: [6 x 6] row-major over (x, y, z, rot x, rot y, rot z) in A's frame; rotation
    is a small-angle perturbation R <- exp([w]x) R in radians. When `scale_known` is False,
    t is a unit vector and the variance along it is inflated (never zero).
    """

    R: np.ndarray
    t: np.ndarray
    covariance: np.ndarray
    scale_known: bool = False

    def to_epipolar(self) -> tuple[np.ndarray, np.ndarray]:
        """(R_0to1, t_0to1) with x_B = R_0to1 x_A + t_0to1 (the epipolar-geometry convention)."""
        return invert_rigid(self.R, self.t)

    @staticmethod
    def from_epipolar(R_0to1: np.ndarray, t_0to1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) of B in A from the epipolar convention x_B = R_0to1 x_A + t_0to1."""
        return invert_rigid(R_0to1, t_0to1)

    @staticmethod
    def from_cam_to_world(
        cam_to_world_a: np.ndarray, cam_to_world_b: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) of B in A from the two cameras' [4 x 4] camera-to-world matrices."""
        relative = np.linalg.inv(cam_to_world_a) @ cam_to_world_b
        return relative[:3, :3], relative[:3, 3]

    def inverse(self) -> "RelativePose":
        """The pose of A in B, its covariance carried through to first order.

        With R <- exp([w]x) R and t <- t + dt, the inverse (R^T, -R^T t) moves by
        w' = -R^T w and dt' = -R^T dt - R^T [t]x w.
        """
        R_inv, t_inv = invert_rigid(self.R, self.t)
        tx = np.array(
            [
                [0.0, -self.t[2], self.t[1]],
                [self.t[2], 0.0, -self.t[0]],
                [-self.t[1], self.t[0], 0.0],
            ]
        )
        jacobian = np.zeros((6, 6))
        jacobian[:3, :3] = -R_inv
        jacobian[:3, 3:] = -R_inv @ tx
        jacobian[3:, 3:] = -R_inv
        return RelativePose(R_inv, t_inv, jacobian @ self.covariance @ jacobian.T, self.scale_known)


def invert_rigid(R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R^T, -R^T t): the inverse of x -> R x + t. Every convention flip goes through here."""
    R = np.asarray(R, dtype=np.float64)
    return R.T, -R.T @ np.asarray(t, dtype=np.float64).reshape(3)


def world_to_camera(cam_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R_w2c, t_w2c) of a [4 x 4] (or [3 x 4]) camera-to-world transform."""
    return invert_rigid(cam_to_world[:3, :3], cam_to_world[:3, 3])


@dataclass
class StageRecord:
    name: str
    seconds: float


@dataclass
class Diagnostics:
    """Mirror of msg/EstimationDiagnostics.msg."""

    path: str = "none"
    direct_matches: int = 0
    direct_inliers: int = 0
    direct_confidence: float = 0.0
    num_relay_frames: int = 0
    num_candidate_frames: int = 0
    selected_frames: list[int] = field(default_factory=list)
    selected_scores: list[int] = field(default_factory=list)
    stages: list[StageRecord] = field(default_factory=list)
    total_seconds: float = 0.0


@dataclass
class EstimateResult:
    status: Status
    message: str
    pose: RelativePose | None = None
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def ok(self) -> bool:
        return self.status == Status.SUCCESS


@dataclass
class EstimateOptions:
    force_bridge: bool = False
    budget_sec: float = 0.0  # 0: no budget beyond the caller's


ProgressCallback = Callable[[str, float, float], None]
"""(stage name, stage progress in [0, 1], overall progress in [0, 1])."""


class Canceled(Exception):
    """Raised inside a stage when its RunContext was canceled."""


class BudgetExceeded(Exception):
    """Raised inside a stage when its RunContext's deadline passed."""


class RunContext:
    """Cancellation, deadline and progress reporting for one request.

    The pipeline opens each stage with `begin_stage(name, start, end)` (its share of the
    overall progress); long stages call `report(fraction)` or `check()` between units of work
    (diffusion steps, frames, iterations) so a cancel or an exhausted budget stops the work
    instead of leaving it running.
    """

    def __init__(self, budget_sec: float = 0.0, progress: ProgressCallback | None = None):
        self.start = time.monotonic()
        self.budget_sec = budget_sec
        self.deadline = self.start + budget_sec if budget_sec > 0 else None
        self._cancel = threading.Event()
        self._progress = progress
        self.stage = ""
        self._span = (0.0, 1.0)
        self._sub = (0.0, 1.0)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def canceled(self) -> bool:
        return self._cancel.is_set()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Canceled(f"canceled during stage '{self.stage}'")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise BudgetExceeded(
                f"budget of {self.budget_sec:.2f} s exhausted during stage '{self.stage}'"
            )

    def begin_stage(self, name: str, start: float, end: float) -> None:
        self.stage = name
        self._span = (start, end)
        self._sub = (0.0, 1.0)
        self.report(0.0)

    @contextmanager
    def subspan(self, start: float, end: float) -> Iterator[None]:
        """Within the block, report(f) means f of the [start, end] part of the current stage
        (e.g. one clip of several, whose model reports its own diffusion steps)."""
        outer = self._sub
        lo, hi = outer
        self._sub = (lo + start * (hi - lo), lo + end * (hi - lo))
        try:
            yield
        finally:
            self._sub = outer

    def report(self, fraction: float) -> None:
        """Progress inside the current stage (or subspan), in [0, 1]; checks cancel and budget."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        sub_lo, sub_hi = self._sub
        stage_fraction = sub_lo + fraction * (sub_hi - sub_lo)
        if self._progress is not None:
            lo, hi = self._span
            self._progress(self.stage, stage_fraction, lo + stage_fraction * (hi - lo))
        self.check()


@dataclass
class SceneReconstruction:
    """Cameras and per-pixel 3D points of N views in one world frame (e.g. from DUSt3R).

    images: N arrays [H x W x 3] uint8 RGB, at the resolution the model worked at.
    K: [N x 3 x 3] intrinsics at that resolution.
    cam_to_world: [N x 4 x 4] camera-to-world poses (OpenCV camera axes).
    points: [N x H x W x 3] float32 world coordinates of every pixel.
    confidence: [N x H x W] float32, higher is more reliable.
    """

    images: list[np.ndarray]
    K: np.ndarray
    cam_to_world: np.ndarray
    points: np.ndarray
    confidence: np.ndarray


@dataclass
class CandidateFrame:
    """A frame offered to the Feature Matching Selector.

    cam_to_world: the trajectory pose it was generated for (None when unknown, e.g. oracle).
    source: "viewcrafter", "interpolation" or "oracle".
    """

    keyframe: Keyframe
    index: int
    source: str
    cam_to_world: np.ndarray | None = None


@dataclass
class Selection:
    """Indices (into the candidate list) the selector kept, best first, with their scores."""

    indices: list[int]
    scores: list[int]
    all_scores: list[int] = field(default_factory=list)
