#!/usr/bin/env python3
"""Seconds per bridge (selection + multi-view pose) and the pose models side by side.

For pairs 50-90 deg apart on posed view sets, the FMS (chain mode) picks the frames once among
the views between A and B; then every pose model answers on the same views. Prints per model
the rotation / translation-direction errors and the seconds, the selection's seconds, and per
bridge (selection + pose) the wall clock and the CPU time of this process (all threads). The
machine's load average is printed before and after: wall clock on shared cores means little
without it, CPU time divided by the cores is what a bridge costs on free ones.

    python scripts/bench_bridge.py [SET ...] [--pairs 4] [--models colmap]
        [--max-side 640] [--threads 2] [--pose-conf JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", type=Path)
    parser.add_argument("--pairs", type=int, default=4, help="pairs per set")
    parser.add_argument("--models", nargs="+", default=["colmap"], help="pose_model types")
    parser.add_argument("--max-side", type=int, default=640)
    parser.add_argument(
        "--threads", type=int, default=2, help="OpenCV threads; view pairs verified at once"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pose-conf",
        type=json.loads,
        default={},
        help="more COLMAP pose_model settings as JSON, e.g. '{\"pair_window\": 2}'",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("GLOG_minloglevel", "2")

    import cv2

    from posecrafter_ros.core.oracle import OracleSource
    from posecrafter_ros.core.types import EstimationError, RunContext
    from posecrafter_ros.eval.datasets import load_middlebury, make_pair, sequence_order
    from posecrafter_ros.eval.frames import view_keyframe
    from posecrafter_ros.eval.metrics import pair_errors
    from posecrafter_ros.stages import Placement, build_stage
    from posecrafter_ros.stages.select import FeatureMatchingSelector, FmsConfig

    cv2.setNumThreads(args.threads)
    sets = args.sets or [ROOT / "test/data/templering", ROOT / "test/data/strecha_fountain"]
    selector = FeatureMatchingSelector(FmsConfig(mode="chain"))
    models = {}
    for name in args.models:
        conf = {"type": name}
        if name == "colmap":
            conf.update({"num_threads": args.threads, **args.pose_conf})
        models[name] = build_stage("pose_model", conf, Placement())
    results = {name: [] for name in models}
    select_seconds, select_cpu = [], []
    print("load average (1, 5, 15 min) before: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    rng = np.random.default_rng(args.seed)
    for folder in sets:
        views = load_middlebury(folder)
        keyframes = [view_keyframe(v, args.max_side) for v in views]
        sequence = sequence_order(views)
        position = {v: k for k, v in enumerate(sequence.order)}
        source = OracleSource([keyframes[i] for i in sequence.order], cyclic=sequence.cyclic)
        members = [
            (i, j)
            for i in range(len(views))
            for j in range(i + 1, len(views))
            if 50 <= make_pair(views[i], views[j]).rotation_deg < 90
        ]
        picked = [members[k] for k in rng.choice(len(members), args.pairs, replace=False)]
        for i, j in picked:
            pair = make_pair(views[i], views[j])
            started, started_cpu = time.perf_counter(), time.process_time()
            candidates = source.candidates_between(position[i], position[j], 24)
            selection = selector.select(keyframes[i], keyframes[j], candidates, RunContext())
            select_seconds.append(time.perf_counter() - started)
            select_cpu.append(time.process_time() - started_cpu)
            chosen = [sequence.order[candidates[k].index] for k in sorted(selection.indices)]
            bridge = [keyframes[i]] + [keyframes[k] for k in chosen] + [keyframes[j]]
            for name, model in models.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                try:
                    pose = model.estimate(bridge, RunContext())
                    errors = pair_errors(pose.to_epipolar(), pair)
                except EstimationError:
                    errors = pair_errors(None, pair)
                seconds = time.perf_counter() - started
                cpu = time.process_time() - started_cpu
                bridge_seconds = select_seconds[-1] + seconds
                bridge_cpu = select_cpu[-1] + cpu
                results[name].append((errors[0], errors[1], seconds, bridge_seconds, bridge_cpu))
                print(
                    f"{folder.name[:14]:>14} {pair.name:>34} {pair.rotation_deg:5.1f} deg "
                    f"{len(bridge)} views {name:>9}: rot {errors[0]:6.2f} trans {errors[1]:6.2f} "
                    f"deg, pose {seconds:5.2f} s, bridge {bridge_seconds:5.2f} s "
                    f"(cpu {bridge_cpu:5.2f} s)",
                    flush=True,
                )
    print(
        f"selection (FMS chain, <= 24 candidates): median {np.median(select_seconds):.2f} s "
        f"(cpu {np.median(select_cpu):.2f} s)"
    )
    for name, rows in results.items():
        r = np.array(rows)
        print(
            f"{name:>9}: {len(r)} bridges, median rot err {np.median(r[:, 0]):.2f} deg, "
            f"mean {r[:, 0].mean():.2f}, R@5 {np.mean(r[:, 0] < 5):.2f}, "
            f"median {np.median(r[:, 2]):.2f} s per pose (max {r[:, 2].max():.2f}); "
            f"per bridge median {np.median(r[:, 3]):.2f} s wall (max {r[:, 3].max():.2f}), "
            f"{np.median(r[:, 4]):.2f} s cpu"
        )
    print("load average (1, 5, 15 min) after: %.2f %.2f %.2f" % os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
