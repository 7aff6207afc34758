#!/usr/bin/env python3
"""Direct path through the real service vs. a bare OpenCV script, on one 640x480 pair.

  python scripts/bench_service.py [--pair templeR0001-templeR0003] [--requests 30]
      [--matcher xfeat_lighterglue]

Starts posecrafter_node (CPU profile), sends the pair inline N times and prints the round-trip
p50/p90, the node's own direct-stage time, and the same figures for a bare OpenCV script
doing ORB (the same settings) + ratio-test matching + five-point RANSAC + recoverPose
in-process (the evaluation's baseline row with eval/direct_bench.py:BASELINE_CONF). DESIGN
section 7 targets: service p50 well under 0.2 s, and within 1.3x of the bare script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "test/data/posed_pairs_fixture")
    parser.add_argument("--pair", default="templeR0001-templeR0003")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--params", type=Path, default=REPO / "config/cpu.yaml")
    parser.add_argument(
        "--matcher", default="", help="direct-path matcher (a cpu profile copy using it)"
    )
    args = parser.parse_args()

    from posecrafter_ros.eval.datasets import load_posed_pairs
    from posecrafter_ros.eval.direct_bench import BASELINE_CONF
    from posecrafter_ros.eval.frames import pair_keyframes
    from posecrafter_ros.eval.rows import BaselineRow
    from posecrafter_ros.ros.launcher import NodeProcess, local_ros_env

    pair = {p.name: p for p in load_posed_pairs(args.data)}[args.pair]
    a, b = pair_keyframes(pair)
    baseline_row = BaselineRow(BASELINE_CONF)
    bare = []
    for _ in range(args.requests):
        started = time.perf_counter()
        baseline_row.estimate(a, b)
        bare.append(time.perf_counter() - started)

    os.environ.update(local_ros_env())
    import rclpy

    from posecrafter_ros.ros.client import PoseCrafterClient, inline_ref

    ros_args = ["--params-file", str(args.params)]
    if args.matcher:
        import tempfile

        import yaml

        profile = yaml.safe_load((REPO / "posecrafter_ros/profiles/cpu.yaml").read_text())
        profile["direct"] = {"matcher": {"name": args.matcher}}
        profile_path = Path(tempfile.mkdtemp()) / f"cpu_{args.matcher}.yaml"
        profile_path.write_text(yaml.safe_dump(profile))
        ros_args += ["-p", f"profile:={profile_path}"]
    node = NodeProcess(ros_args)
    rclpy.init()
    client = PoseCrafterClient(service=node.service)
    round_trip, direct_stage, statuses = [], [], []
    try:
        if not client.wait(60):
            print("node did not come up", file=sys.stderr)
            return 2
        request = client.request(inline_ref(a.image, a.K), inline_ref(b.image, b.K))
        client.call(request, timeout_sec=30)  # warm-up (first call builds the matcher)
        for _ in range(args.requests):
            started = time.perf_counter()
            resp = client.call(request, timeout_sec=30)
            round_trip.append(time.perf_counter() - started)
            statuses.append(resp.status.code)
            stages = dict(zip(resp.diagnostics.stage_names, resp.diagnostics.stage_seconds))
            direct_stage.append(stages.get("direct", float("nan")))
    finally:
        client.destroy()
        rclpy.shutdown()
        node.stop()
    h, w = a.image.shape[:2]
    print(
        f"matcher {args.matcher or 'profile default'}, pair {pair.name} ({w}x{h}, "
        f"{pair.rotation_deg:.1f} deg), {args.requests} requests, statuses {set(statuses)}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"service round trip   p50 {statistics.median(round_trip) * 1000:7.1f} ms   p90 {percentile(round_trip, 0.9) * 1000:7.1f} ms"
    )
    print(f"node direct stage    p50 {statistics.median(direct_stage) * 1000:7.1f} ms")
    print(
        f"bare OpenCV script   p50 {statistics.median(bare) * 1000:7.1f} ms   (ORB {BASELINE_CONF['num_features']} + ratio test + five-point RANSAC)"
    )
    print(
        f"ratio service / bare OpenCV: {statistics.median(round_trip) / statistics.median(bare):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
