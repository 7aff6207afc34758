#!/usr/bin/env python3
"""What Ray costs and gives: evaluation throughput, scheduling overhead, remote-bridge round trip.

  python scripts/bench_ray.py                        # a local Ray instance, started and stopped
  python scripts/bench_ray.py --ray-address HEAD:6379  # a running cluster

1. Evaluation throughput (pairs/s) of the same pairs and rows run locally and with the ray
   executor with 1 and 2 workers (worker start-up, which builds the rows, timed apart).
2. Scheduling overhead per pair: synthetic pairs (two 64x64 frames made in memory) and a row
   that does nothing, so a pair costs only its scheduling and the result's way back; ray
   executor seconds per pair minus local seconds per pair.
3. Remote-bridge round trip: the same bridge (`--profile`, default `cpu`: the oracle bridge,
   FMS + multi-view pose over real in-between frames) run in-process by `Pipeline.run_bridge`
   and through a one-actor RayBridgePool; the difference of the medians is the overhead
   (serialising the keyframes, the call, progress polling, the answer).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLE = REPO / "test" / "data" / "eval" / "templering"


class NoopRow:
    """Answers nothing at once: what is left of a pair's time is reading it and scheduling."""

    name = "noop"
    needs_between = False
    skip_reason = None

    def estimate(self, a, b, between=None):
        from posecrafter_ros.eval.rows import RowOutcome

        return RowOutcome(None, None, "noop", "noop")


def noop_rows():
    return [NoopRow()], {}


def tiny_frames():
    import numpy as np

    from posecrafter_ros.core.types import Keyframe

    frame = Keyframe(np.zeros((64, 64), np.uint8), np.diag([50.0, 50.0, 1.0]))
    return frame, frame


def synthetic_items(template_pairs, count: int):
    """`count` EvalItems whose frames are made in memory (no image reads)."""
    from posecrafter_ros.eval.runner import EvalItem

    return [EvalItem(template_pairs[i % len(template_pairs)], tiny_frames) for i in range(count)]


def timed_evaluation(executor) -> tuple[float, float, int]:
    """(start-up seconds, run seconds, pairs) of one executor over all its items."""
    from posecrafter_ros.eval.executors import run_evaluation

    started = time.perf_counter()
    with executor:
        ready = time.perf_counter()
        with _scratch_csv() as path:
            run_evaluation(executor, path, progress=False)
        done = time.perf_counter()
    return ready - started, done - ready, len(executor.items)


class _scratch_csv:
    def __enter__(self) -> Path:
        import tempfile

        self._dir = tempfile.TemporaryDirectory()
        return Path(self._dir.name) / "pairs.csv"

    def __exit__(self, *exc) -> None:
        self._dir.cleanup()


def bench_evaluation(items, make_rows, address: str | None) -> dict[str, float]:
    from posecrafter_ros.eval.executors import LocalExecutor, RayExecutor

    per_pair = {}
    startup, seconds, n = timed_evaluation(LocalExecutor(make_rows, items))
    per_pair["local"] = seconds / n
    print(f"  local       start-up {startup:6.2f} s, {n} pairs in {seconds:6.2f} s: "
          f"{n / seconds:6.2f} pairs/s")  # fmt: skip
    for workers in (1, 2):
        executor = RayExecutor(make_rows, items, workers=workers, address=address)
        startup, seconds, n = timed_evaluation(executor)
        per_pair[f"ray{workers}"] = seconds / n
        print(f"  ray x{workers}      start-up {startup:6.2f} s, {n} pairs in {seconds:6.2f} s: "
              f"{n / seconds:6.2f} pairs/s")  # fmt: skip
    return per_pair


def bench_bridge(profile: str, address: str | None, runs: int) -> None:
    from posecrafter_ros.core.types import Diagnostics, RunContext
    from posecrafter_ros.eval.datasets import make_pair
    from posecrafter_ros.eval.loaders import load_dataset
    from posecrafter_ros.eval.runner import dataset_items
    from posecrafter_ros.pipeline import Pipeline
    from posecrafter_ros.remote_bridge import RayBridgePool

    dataset = load_dataset(REPO / "test" / "data" / "templering")
    # Consecutive views along the ring, 6 apart: a pair the direct path alone does not trust.
    pair = make_pair(dataset.views[20], dataset.views[26], index0=20, index1=26)
    item = dataset_items(dataset, [pair], max_side=320, max_between=16)[0]
    a, b = item.load()
    between = item.load_between()
    print(f"  pair: views 20-26 at 320 px, profile {profile!r}")

    def run(bridge, sequence) -> float:
        started = time.perf_counter()
        result = bridge.run_bridge(a, b, RunContext(), Diagnostics(), sequence)
        elapsed = time.perf_counter() - started
        assert result.status.name in ("SUCCESS", "INSUFFICIENT_OVERLAP"), result.message
        return elapsed

    cases = [  # (what, candidate frames, runs)
        ("no candidate frames (answered at once)", [], runs * 5),
        (f"oracle bridge over {len(between)} frames", between, runs),
    ]
    local = Pipeline.from_profile(profile).load()
    pool = RayBridgePool(profile, {}, pool_size=1, address=address or "")
    try:
        pool.wait_ready(600)
        for what, sequence, n in cases:
            run(local, sequence), run(pool, sequence)  # warm-up (lazy imports, allocations)
            # Alternate the two so a change of load on the machine hits both alike.
            times = [(run(local, sequence), run(pool, sequence)) for _ in range(n)]
            here = statistics.median(t[0] for t in times)
            remote = statistics.median(t[1] for t in times)
            print(f"  {what}: in-process {here * 1e3:.1f} ms, Ray pool {remote * 1e3:.1f} ms "
                  f"(medians of {n}): {1e3 * (remote - here):+.1f} ms per request")  # fmt: skip
    finally:
        pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--ray-address", default=None, help="a running cluster (default: local)")
    parser.add_argument("--pairs-per-bin", type=int, default=3)
    parser.add_argument("--rows", default="baseline,direct")
    parser.add_argument("--profile", default="cpu", help="bridge profile for the round trip")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--noop-pairs", type=int, default=200)
    parser.add_argument(
        "--only", choices=("eval", "overhead", "bridge"), default=None, help="one part only"
    )
    args = parser.parse_args()

    import functools

    from ray import cloudpickle

    from posecrafter_ros.cli.eval import build_rows
    from posecrafter_ros.eval.loaders import load_dataset
    from posecrafter_ros.eval.runner import dataset_items

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # NoopRow for the workers
    dataset = load_dataset(TEMPLE)
    items = dataset_items(dataset, dataset.sample_pairs(args.pairs_per_bin, seed=0), 320)
    rows = args.rows.split(",")
    if args.only in (None, "eval"):
        print(f"1. evaluation throughput, rows {rows}, {len(items)} templeRing pairs at 320 px")
        bench_evaluation(items, functools.partial(build_rows, rows, "sift"), args.ray_address)
    if args.only in (None, "overhead"):
        bench_overhead(items, args)
    if args.only in (None, "bridge"):
        print("3. remote-bridge round trip")
        bench_bridge(args.profile, args.ray_address, args.runs)
    return 0


def bench_overhead(items, args) -> None:
    print(f"2. scheduling overhead: {args.noop_pairs} in-memory pairs, a row that does nothing")
    noop_items = synthetic_items([item.pair for item in items], args.noop_pairs)
    noop = bench_evaluation(noop_items, noop_rows, args.ray_address)
    for workers in (1, 2):
        overhead = noop[f"ray{workers}"] - noop["local"]
        print(f"  ray x{workers}: {overhead * 1e3:+.2f} ms per pair against local")


if __name__ == "__main__":
    sys.exit(main())
