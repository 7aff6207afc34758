#!/usr/bin/env python3
"""Memory per buffered frame (core/keyframe_buffer.py) and how many frames a bound holds.

    python scripts/bench_buffer.py [IMAGE_DIR ...] [--max-mb 256] [--rate-hz 10]

Stores every image of each folder (png / jpg) in a KeyframeBuffer per setting (raw pixels;
JPEG quality 90 at full size; JPEG 90 downscaled to 640 px) and prints MB per frame, the
frames the bound holds and the minutes of history at the given camera rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from posecrafter_ros.core.keyframe_buffer import KeyframeBuffer
from posecrafter_ros.core.types import Keyframe
from posecrafter_ros.eval.frames import read_rgb

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"raw": (0, 0), "jpeg90": (0, 90), "jpeg90@640": (640, 90)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--max-mb", type=float, default=256.0)
    parser.add_argument("--rate-hz", type=float, default=10.0)
    args = parser.parse_args(argv)
    folders = args.folders or [ROOT / "test/data/templering", ROOT / "test/data/strecha_fountain"]
    for folder in folders:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg"))
        images = [read_rgb(p) for p in paths]
        h, w = images[0].shape[:2]
        for name, (max_side, quality) in SETTINGS.items():
            buffer = KeyframeBuffer(max_megabytes=1e6, max_side=max_side, jpeg_quality=quality)
            started = time.perf_counter()
            for k, image in enumerate(images):
                buffer.add(Keyframe(image, np.eye(3), "cam", k))
            add_ms = 1000 * (time.perf_counter() - started) / len(images)
            started = time.perf_counter()
            buffer.by_stamp(0)
            get_ms = 1000 * (time.perf_counter() - started)
            per_frame = buffer.megabytes() / len(images)
            frames = int(args.max_mb / per_frame)
            print(
                f"{folder.name:>18} {w}x{h} {name:>11}: {per_frame:.3f} MB/frame, "
                f"{args.max_mb:.0f} MB hold {frames} frames = {frames / args.rate_hz / 60:.1f} "
                f"min at {args.rate_hz:.0f} Hz; add {add_ms:.1f} ms, lookup {get_ms:.1f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
