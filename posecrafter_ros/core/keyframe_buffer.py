"""Bounded, thread-safe store of recent keyframes, looked up by stamp or by id (ROS-free)."""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

from .types import Keyframe


class KeyframeBuffer:
    """Keeps the newest `max_frames` stamped frames and `max_keyframes` named keyframes.

    Frames arrive in any order; lookups by stamp return the buffered frame nearest in time
    within `tolerance_ns`.
    """

    def __init__(
        self, max_frames: int = 120, max_keyframes: int = 500, tolerance_ns: int = 5_000_000
    ):
        if max_frames < 1 or max_keyframes < 1:
            raise ValueError(f"buffer sizes must be >= 1 (got {max_frames}, {max_keyframes})")
        self.max_frames = max_frames
        self.max_keyframes = max_keyframes
        self.tolerance_ns = tolerance_ns
        self._lock = threading.Lock()
        self._stamps: list[int] = []  # sorted
        self._frames: dict[int, Keyframe] = {}
        self._named: OrderedDict[str, Keyframe] = OrderedDict()

    def add(self, keyframe: Keyframe) -> None:
        stamp = keyframe.stamp_ns
        with self._lock:
            if stamp not in self._frames:
                bisect.insort(self._stamps, stamp)
            self._frames[stamp] = keyframe
            while len(self._stamps) > self.max_frames:
                del self._frames[self._stamps.pop(0)]

    def add_named(self, name: str, keyframe: Keyframe) -> None:
        with self._lock:
            self._named.pop(name, None)
            self._named[name] = keyframe
            while len(self._named) > self.max_keyframes:
                self._named.popitem(last=False)

    def by_stamp(self, stamp_ns: int) -> Keyframe | None:
        with self._lock:
            i = bisect.bisect_left(self._stamps, stamp_ns)
            best = None
            for j in (i - 1, i):
                if 0 <= j < len(self._stamps):
                    gap = abs(self._stamps[j] - stamp_ns)
                    if gap <= self.tolerance_ns and (best is None or gap < best[0]):
                        best = (gap, self._stamps[j])
            return self._frames[best[1]] if best else None

    def by_id(self, name: str) -> Keyframe | None:
        with self._lock:
            return self._named.get(name)

    def between(self, start_ns: int, end_ns: int) -> list[Keyframe]:
        """Frames with stamps strictly between the two stamps, in time order."""
        lo, hi = min(start_ns, end_ns), max(start_ns, end_ns)
        with self._lock:
            i, j = bisect.bisect_right(self._stamps, lo), bisect.bisect_left(self._stamps, hi)
            return [self._frames[s] for s in self._stamps[i:j]]

    def stamp_range(self) -> tuple[int, int] | None:
        with self._lock:
            return (self._stamps[0], self._stamps[-1]) if self._stamps else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)
