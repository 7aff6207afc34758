#!/usr/bin/env python3
"""Soak test: N sequential requests to a live node; prints its resident memory over time.

  python scripts/soak.py --requests 300 [--params config/cpu.yaml] [--warmup 50]

Alternates an overlapping pair (direct answer), an extreme pair (INSUFFICIENT_OVERLAP) and a
malformed request, so every path that a long-running node takes is exercised. Prints RSS
after warm-up and at the end, and the growth in percent; exits 1 if growth exceeds --max-growth.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--params", type=Path, default=REPO / "config/cpu.yaml")
    parser.add_argument("--data", type=Path, default=REPO / "test/data/posed_pairs_fixture")
    parser.add_argument("--max-growth", type=float, default=5.0, help="percent")
    args = parser.parse_args()

    import psutil

    from posecrafter_ros.eval.datasets import load_posed_pairs
    from posecrafter_ros.eval.frames import read_rgb
    from posecrafter_ros.ros.launcher import NodeProcess, local_ros_env

    os.environ.update(local_ros_env())
    import rclpy

    from posecrafter_ros.ros.client import PoseCrafterClient, inline_ref

    pairs = {p.name: p for p in load_posed_pairs(args.data)}
    requests = []
    for name in ("templeR0001-templeR0003", "templeR0001-templeR0013"):
        pair = pairs[name]
        requests.append(
            (
                inline_ref(read_rgb(pair.image0), pair.K0, "a"),
                inline_ref(read_rgb(pair.image1), pair.K1, "b"),
            )
        )
    bad_a = inline_ref(
        read_rgb(pairs["templeR0001-templeR0003"].image0), pairs["templeR0001-templeR0003"].K0
    )
    bad_a.image.step += 1
    requests.append((bad_a, requests[0][1]))

    node = NodeProcess(["--params-file", str(args.params)])
    rclpy.init()
    client = PoseCrafterClient(service=node.service)
    rss_mb, latencies, codes = [], [], {}
    try:
        if not client.wait(60):
            print("node did not come up", file=sys.stderr)
            return 2
        proc = psutil.Process(node.pid)
        for i in range(args.requests):
            a, b = requests[i % len(requests)]
            started = time.monotonic()
            resp = client.call(client.request(a, b), timeout_sec=60)
            latencies.append(time.monotonic() - started)
            code = resp.status.code if resp is not None else -1
            codes[code] = codes.get(code, 0) + 1
            rss_mb.append(proc.memory_info().rss / 2**20)
    finally:
        client.destroy()
        rclpy.shutdown()
        node.stop()
    base = rss_mb[min(args.warmup, len(rss_mb) - 1)]
    final = rss_mb[-1]
    growth = 100.0 * (final - base) / base
    print(f"requests: {args.requests}, status counts: {dict(sorted(codes.items()))}")
    print(
        f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    print(
        f"node RSS: start {rss_mb[0]:.1f} MB, after warm-up ({args.warmup}) {base:.1f} MB, "
        f"end {final:.1f} MB, peak {max(rss_mb):.1f} MB"
    )
    print(f"RSS growth after warm-up: {growth:+.2f}% (limit {args.max_growth}%)")
    return 0 if growth < args.max_growth and -1 not in codes else 1


if __name__ == "__main__":
    sys.exit(main())
