#!/usr/bin/env python3
"""Per-stage time and peak memory of the whole pipeline on one pair.

  python scripts/bench_pipeline.py --profile tiny --force-bridge            # CPU, tiny models
  python scripts/bench_pipeline.py --profile gpu --device cuda \
      --set bridge.interpolator.checkpoint=/models/dc512/model.ckpt \
      --set bridge.synthesizer.generator.checkpoint=/models/vc/model.ckpt \
      --set bridge.relay_poser.checkpoint=/models/dust3r.pth --set bridge.pose_model.checkpoint=/models/dust3r.pth

  # the paper-size bridge without any checkpoint: full-size models with random weights
  python scripts/bench_pipeline.py --profile gpu --random-weights --device cuda
  python scripts/bench_pipeline.py --profile gpu --random-weights --device cpu --dtype float32 --steps 1

Prints load time, then for each stage: seconds, and peak memory (CUDA allocator peak on a GPU,
process RSS high-water mark on the CPU). The pair is a posed-pairs entry (ground truth
printed beside the estimate).

--random-weights builds DynamiCrafter, ViewCrafter and DUSt3R at their official sizes (the
presets the manifests pin) with seeded random weights: the compute and memory of the real
models, so the < 60 s / < 16 GB target and the levers (bf16, SDPA, DDIM steps, offload) can be
measured on a GPU without the checkpoints. The bridge's stages then run one by one
(posecrafter_ros.eval.smoke); where random outputs cannot be aligned or matched, a stand-in of
the same size lets the later stages run, so their cost is still measured (poses meaningless).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def parse_set(items: list[str]) -> dict:
    """["a.b=1", ...] -> {"a": {"b": 1}} with YAML-typed values."""
    out: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="profile overrides"
    )
    parser.add_argument("--data", type=Path, default=REPO / "test/data/posed_pairs_fixture")
    parser.add_argument("--pair", default="templeR0001-templeR0013")
    parser.add_argument("--force-bridge", action="store_true")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--random-weights", action="store_true", help="full-size models, no checkpoints"
    )
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps of both models")
    parser.add_argument("--niter", type=int, default=None, help="DUSt3R alignment iterations")
    args = parser.parse_args()

    from posecrafter_ros.core.types import EstimateOptions, Keyframe, RunContext
    from posecrafter_ros.eval.datasets import load_posed_pairs
    from posecrafter_ros.eval.frames import read_rgb
    from posecrafter_ros.eval.metrics import rotation_error_deg
    from posecrafter_ros.eval.smoke import model_overrides
    from posecrafter_ros.pipeline import Pipeline, deep_merge

    overrides = parse_set(args.set)
    for key in ("device", "dtype"):
        if getattr(args, key):
            overrides[key] = getattr(args, key)
    overrides = deep_merge(
        {"bridge": model_overrides(None, args.random_weights, args.steps, args.niter)}, overrides
    )
    cuda = str(overrides.get("device", "")).startswith("cuda")
    if cuda:
        import torch

    def peak_mb() -> float:
        if cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    started = time.monotonic()
    pipeline = Pipeline.from_profile(args.profile, overrides).load()
    print(
        f"profile {pipeline.name}: loaded in {time.monotonic() - started:.2f} s, peak {peak_mb():.0f} MB"
    )
    for stage, state in pipeline.describe().items():
        print(f"  {stage:<14} {state}")
    pair = {p.name: p for p in load_posed_pairs(args.data)}[args.pair]
    a, b = Keyframe(read_rgb(pair.image0), pair.K0), Keyframe(read_rgb(pair.image1), pair.K1)
    if args.random_weights:
        from posecrafter_ros.eval.smoke import Smoke, run_bridge_stages

        device = str(pipeline.conf.get("device", "cpu"))
        for run in range(args.runs):
            print(f"\nrun {run + 1}: the bridge stage by stage (random weights)")
            smoke = Smoke(pipeline, device, real_weights=False, stand_ins=True)
            run_bridge_stages(smoke, a, b, pair)
            total = sum(seconds for _, seconds, _ in smoke.costs)
            peaks = [peak for _, _, peak in smoke.costs if peak is not None]
            peak = f"peak GPU {max(peaks):.2f} GiB" if peaks else f"peak RSS {peak_mb():.0f} MB"
            print(f"  total {total:.1f} s, {peak}")
        return 0

    peaks: dict[str, float] = {}

    def on_progress(stage: str, fraction: float, _overall: float) -> None:
        peaks[stage] = max(peaks.get(stage, 0.0), peak_mb())
        if cuda and fraction >= 1.0:
            torch.cuda.reset_peak_memory_stats()

    for run in range(args.runs):
        result = pipeline.estimate(
            a, b, EstimateOptions(force_bridge=args.force_bridge), RunContext(progress=on_progress)
        )
        print(
            f"\nrun {run + 1}: {result.status.name} via '{result.diagnostics.path}' in {result.diagnostics.total_seconds:.2f} s"
        )
        print(f"  {result.message}")
        for record in result.diagnostics.stages:
            print(
                f"  {record.name:<18} {record.seconds:8.3f} s   peak {peaks.get(record.name, 0.0):8.0f} MB"
            )
        if result.pose is not None:
            R_0to1, _ = result.pose.to_epipolar()
            print(
                f"  rotation error vs ground truth ({pair.rotation_deg:.1f} deg apart): {rotation_error_deg(R_0to1, pair.R_0to1):.2f} deg"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
