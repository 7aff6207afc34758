#!/usr/bin/env python3
"""FMS throughput: candidate frames scored per second at 512x320 (ORB 2000 + RANSAC).

I0 and IT are two ring views; the candidates are the other views resized to 512x320 (each is
extracted and matched against I0 and IT). I0/IT features are computed once per select call.

    python scripts/bench_fms.py [--ring test/data/templering] [--candidates 45] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from posecrafter_ros.core.types import CandidateFrame, Keyframe, RunContext
from posecrafter_ros.eval.datasets import load_middlebury
from posecrafter_ros.eval.frames import read_rgb
from posecrafter_ros.stages.select import FeatureMatchingSelector

ROOT = Path(__file__).resolve().parent.parent
SIZE = (512, 320)


def resized_keyframe(path: Path, K: np.ndarray) -> Keyframe:
    image = read_rgb(path)
    sx, sy = SIZE[0] / image.shape[1], SIZE[1] / image.shape[0]
    K = np.diag([sx, sy, 1.0]) @ K
    return Keyframe(cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA), K)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ring", type=Path, default=ROOT / "test/data/templering")
    parser.add_argument("--candidates", type=int, default=45)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    views = load_middlebury(args.ring)
    frames = [resized_keyframe(v.image_path, v.K) for v in views]
    a, b = frames[0], frames[len(frames) // 8]
    pool = [f for f in frames if f is not a and f is not b]
    candidates = [CandidateFrame(pool[i % len(pool)], i, "oracle") for i in range(args.candidates)]
    selector = FeatureMatchingSelector()
    selector.select(a, b, candidates[:2], RunContext())  # warm-up (allocations, caches)
    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        selection = selector.select(a, b, candidates, RunContext())
        rates.append(len(candidates) / (time.perf_counter() - started))
    print(
        f"FMS at {SIZE[0]}x{SIZE[1]}, ORB {selector.conf.matcher.get('num_features')} + RANSAC, "
        f"{len(candidates)} candidates: {np.median(rates):.1f} candidates/s "
        f"(median of {args.repeats}; "
        f"all: {', '.join(f'{r:.1f}' for r in rates)}); kept {len(selection.indices)} "
        f"(scores {selection.scores})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
