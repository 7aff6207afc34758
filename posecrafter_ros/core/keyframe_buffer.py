"""Bounded, thread-safe store of recent keyframes, looked up by stamp or by id (ROS-free).

Two loop-closure keyframes can be minutes apart, and the frames recorded between them are the
oracle bridge's candidates: the buffer keeps a long history inside a memory bound in MB by
storing each frame as a compressed copy (JPEG, optionally downscaled, intrinsics scaled with
it). A 640x480 RGB frame is 0.92 MB raw and about 0.05-0.1 MB as JPEG at quality 90.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from .types import Keyframe


@dataclass(frozen=True)
class StoredFrame:
    """A keyframe as the buffer keeps it: encoded pixels (or the raw array) plus metadata."""

    data: bytes | np.ndarray
    K: np.ndarray
    frame_id: str
    stamp_ns: int

    @property
    def nbytes(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else int(self.data.nbytes)

    @classmethod
    def encode(cls, keyframe: Keyframe, max_side: int, jpeg_quality: int) -> "StoredFrame":
        image, K = keyframe.image, np.asarray(keyframe.K, float)
        height, width = image.shape[:2]
        if max_side and max(height, width) > max_side:
            scale = max_side / max(height, width)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            # Pixel-centre convention: x' + 0.5 = s_x (x + 0.5).
            sx, sy = size[0] / width, size[1] / height
            K = np.diag([sx, sy, 1.0]) @ K
            K[0, 2] += 0.5 * sx - 0.5
            K[1, 2] += 0.5 * sy - 0.5
        if not jpeg_quality:
            return cls(np.ascontiguousarray(image), K, keyframe.frame_id, keyframe.stamp_ns)
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return cls(encoded.tobytes(), K, keyframe.frame_id, keyframe.stamp_ns)

    def decode(self) -> Keyframe:
        if isinstance(self.data, np.ndarray):
            image = self.data
        else:
            image = cv2.imdecode(np.frombuffer(self.data, np.uint8), cv2.IMREAD_UNCHANGED)
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return Keyframe(image, self.K.copy(), self.frame_id, self.stamp_ns)


class KeyframeBuffer:
    """Keeps stamped frames within `max_megabytes` (and at most `max_frames`) and the newest
    `max_keyframes` named keyframes.

    Frames arrive in any order; the oldest stamps are evicted first. Lookups by stamp return
    the buffered frame nearest in time within `tolerance_ns`. Frames are stored downscaled to
    `max_side` pixels (0: full size) and JPEG-compressed at `jpeg_quality` (0: raw pixels);
    lookups return decoded copies.
    """

    def __init__(
        self,
        max_frames: int = 100_000,
        max_keyframes: int = 500,
        tolerance_ns: int = 5_000_000,
        max_megabytes: float = 256.0,
        max_side: int = 0,
        jpeg_quality: int = 90,
    ):
        if max_frames < 1 or max_keyframes < 1:
            raise ValueError(f"buffer sizes must be >= 1 (got {max_frames}, {max_keyframes})")
        if not max_megabytes > 0:
            raise ValueError(f"buffer memory bound must be > 0 MB (got {max_megabytes})")
        if not 0 <= jpeg_quality <= 100 or max_side < 0:
            raise ValueError(
                f"jpeg_quality must be in 0..100 and max_side >= 0 (got {jpeg_quality}, {max_side})"
            )
        self.max_frames = max_frames
        self.max_keyframes = max_keyframes
        self.tolerance_ns = tolerance_ns
        self.max_bytes = int(max_megabytes * 1e6)
        self.max_side = max_side
        self.jpeg_quality = jpeg_quality
        self._lock = threading.Lock()
        self._stamps: list[int] = []  # sorted
        self._frames: dict[int, StoredFrame] = {}
        self._bytes = 0
        self._named: OrderedDict[str, StoredFrame] = OrderedDict()

    def _store(self, keyframe: Keyframe) -> StoredFrame:
        return StoredFrame.encode(keyframe, self.max_side, self.jpeg_quality)

    def add(self, keyframe: Keyframe) -> None:
        stored = self._store(keyframe)  # encode outside the lock
        stamp = keyframe.stamp_ns
        with self._lock:
            if stamp in self._frames:
                self._bytes -= self._frames[stamp].nbytes
            else:
                bisect.insort(self._stamps, stamp)
            self._frames[stamp] = stored
            self._bytes += stored.nbytes
            while len(self._stamps) > 1 and (
                len(self._stamps) > self.max_frames or self._bytes > self.max_bytes
            ):
                self._bytes -= self._frames.pop(self._stamps.pop(0)).nbytes

    def add_named(self, name: str, keyframe: Keyframe) -> None:
        stored = self._store(keyframe)
        with self._lock:
            self._named.pop(name, None)
            self._named[name] = stored
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
            stored = self._frames[best[1]] if best else None
        return stored.decode() if stored else None

    def by_id(self, name: str) -> Keyframe | None:
        with self._lock:
            stored = self._named.get(name)
        return stored.decode() if stored else None

    def between(self, start_ns: int, end_ns: int, with_keyframes: bool = False) -> list[Keyframe]:
        """Frames with stamps strictly between the two stamps, in time order; with_keyframes:
        the named keyframes stamped in that interval too (a SLAM front end's keyframes)."""
        lo, hi = min(start_ns, end_ns), max(start_ns, end_ns)
        with self._lock:
            i, j = bisect.bisect_right(self._stamps, lo), bisect.bisect_left(self._stamps, hi)
            chosen = [self._frames[s] for s in self._stamps[i:j]]
            if with_keyframes:
                seen = set(self._stamps[i:j])
                chosen += [
                    k
                    for k in self._named.values()
                    if lo < k.stamp_ns < hi and k.stamp_ns not in seen
                ]
        return [stored.decode() for stored in sorted(chosen, key=lambda k: k.stamp_ns)]

    def stamp_range(self) -> tuple[int, int] | None:
        with self._lock:
            return (self._stamps[0], self._stamps[-1]) if self._stamps else None

    def megabytes(self) -> float:
        """Memory held by the buffered frames and keyframes' pixels, MB."""
        with self._lock:
            return (self._bytes + sum(k.nbytes for k in self._named.values())) / 1e6

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)
