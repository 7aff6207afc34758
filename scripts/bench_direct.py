#!/usr/bin/env python3
"""Direct path vs a bare OpenCV script (same ORB matching + five-point RANSAC): accuracy and
time ratio from one run, on the posed-pairs fixture and a sample of templeRing pairs.

    python scripts/bench_direct.py [--ring test/data/templering]
        [--pairs test/data/posed_pairs_fixture] [--ring-per-bin 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from posecrafter_ros.eval.datasets import (
    all_pairs,
    load_middlebury,
    load_posed_pairs,
    sample_pairs_by_bin,
)
from posecrafter_ros.eval.direct_bench import compare_direct_to_opencv
from posecrafter_ros.eval.metrics import summarize

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ring", type=Path, default=ROOT / "test/data/templering")
    parser.add_argument("--pairs", type=Path, default=ROOT / "test/data/posed_pairs_fixture")
    parser.add_argument(
        "--ring-per-bin", type=int, default=10, help="templeRing pairs per rotation bin"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timing: best of this many runs")
    parser.add_argument("--conf", type=json.loads, default={}, help="direct-path conf (JSON)")
    args = parser.parse_args(argv)

    sets = {
        "templeRing": sample_pairs_by_bin(all_pairs(load_middlebury(args.ring)), args.ring_per_bin)
    }
    if args.pairs and (args.pairs / "pairs.json").is_file():
        sets["posed-pairs"] = load_posed_pairs(args.pairs)
    for name, pairs in sets.items():
        rows = compare_direct_to_opencv(pairs, args.conf, args.repeats)
        d = summarize(
            [r.direct_rotation_error for r in rows], [r.direct_translation_error for r in rows]
        )
        b = summarize(
            [r.baseline_rotation_error for r in rows], [r.baseline_translation_error for r in rows]
        )
        t_direct = np.array([r.direct_seconds for r in rows])
        t_base = np.array([r.baseline_seconds for r in rows])
        print(f"== {name}: {len(rows)} pairs")
        print(
            f"{'row':>16} {'MRE':>7} {'MTE':>7} {'R@5':>6} {'R@15':>6} {'AUC@30':>7} {'p50 s':>7}"
        )
        for label, s, t in (("opencv 5-point", b, t_base), ("direct path", d, t_direct)):
            print(
                f"{label:>16} {s['MRE']:7.2f} {s['MTE']:7.2f} {s['R@5']:6.2f} {s['R@15']:6.2f} "
                f"{s['AUC@30']:7.3f} {np.median(t):7.3f}"
            )
        ratio = np.median(t_direct / t_base)
        print(f"time ratio direct / opencv (median over pairs): {ratio:.2f}")
        if name == "posed-pairs":
            for r in rows:
                print(
                    f"  {r.name:38s} {r.rotation_deg:6.1f} deg  "
                    f"direct {r.direct_rotation_error:6.2f} "
                    f"(accepted={r.direct_accepted})  opencv {r.baseline_rotation_error:6.2f}  "
                    f"{r.direct_seconds:.3f}s vs {r.baseline_seconds:.3f}s"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
