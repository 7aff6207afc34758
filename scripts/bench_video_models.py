#!/usr/bin/env python3
"""Per-stage time and peak memory of the two video models for one keyframe pair.

Stage 1: DynamiCrafter interpolation (I0, IT) -> T frames. Stage 2: one ViewCrafter clip
conditioned on renders (here: stage-1 frames stand in for point-cloud renders, which does
not change the cost). With checkpoints it loads the official models; without, it runs
tiny random configs (CPU smoke run).

  python scripts/bench_video_models.py                                   # tiny, CPU
  python scripts/bench_video_models.py --device cuda --dtype bfloat16 --attention sdpa \\
      --dc-checkpoint dynamicrafter_512_interp_v1/model.ckpt \\
      --vc-checkpoint ViewCrafter_25_512/model.ckpt --offload
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peak_memory_mb(device: str) -> float:
    """Peak CUDA memory allocated (GPU) or the process's peak resident set size (CPU)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def timed(label: str, device: str, fn):
    import torch

    reset_peak(device)
    start = time.perf_counter()
    result = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"{label:<34} {seconds:8.2f} s   peak {peak_memory_mb(device):9.1f} MB")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dc-checkpoint", default="", help="DynamiCrafter 512 interp checkpoint")
    parser.add_argument("--vc-checkpoint", default="", help="ViewCrafter checkpoint")
    parser.add_argument(
        "--vc-preset", default="viewcrafter_25_512", help="ViewCrafter architecture preset"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--attention", default="einsum", choices=["einsum", "sdpa"])
    parser.add_argument("--offload", action="store_true", help="keep idle sub-models on the CPU")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default 50, tiny: 5)")
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--dc-frames", type=int, default=16)
    parser.add_argument("--vc-frames", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    args = parser.parse_args(argv)

    import torch

    from posecrafter_ros.core.types import Keyframe, RunContext
    from posecrafter_ros.stages.interpolate import DynamiCrafterInterpolator
    from posecrafter_ros.stages.synthesize import ViewCrafterGenerator

    torch.set_num_threads(args.threads)
    common = {
        "device": args.device,
        "dtype": args.dtype,
        "attention": args.attention,
        "offload": args.offload,
        "height": args.height,
        "width": args.width,
    }
    dc_conf = {
        **common,
        "checkpoint": args.dc_checkpoint,
        "tiny": not args.dc_checkpoint,
        "num_frames": args.dc_frames,
    }
    vc_conf = {
        **common,
        "checkpoint": args.vc_checkpoint,
        "tiny": not args.vc_checkpoint,
        "preset": args.vc_preset,
    }
    for conf in (dc_conf, vc_conf):
        conf["ddim_steps"] = args.steps or (5 if conf["tiny"] else 50)
    print(
        f"device {args.device}, dtype {args.dtype}, attention {args.attention}, offload {args.offload}, "
        f"{args.height}x{args.width}; DynamiCrafter {'tiny' if dc_conf['tiny'] else args.dc_checkpoint}, "
        f"ViewCrafter {'tiny' if vc_conf['tiny'] else args.vc_checkpoint}"
    )

    rng = np.random.default_rng(0)
    K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    a = Keyframe(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), K, "cam", 0)
    b = Keyframe(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), K, "cam", 1)

    interpolator = timed(
        "stage 1 load (DynamiCrafter)",
        args.device,
        lambda: DynamiCrafterInterpolator.from_config(dc_conf),
    )
    frames = timed(
        f"stage 1 interpolation ({dc_conf['ddim_steps']} steps)",
        args.device,
        lambda: interpolator.interpolate(a, b, RunContext()),
    )
    if args.offload or args.device.startswith("cuda"):
        interpolator.to("cpu")  # free the device for stage 2, as the pipeline does
    generator = timed(
        "stage 2 load (ViewCrafter)", args.device, lambda: ViewCrafterGenerator.from_config(vc_conf)
    )
    index = np.linspace(0, len(frames) - 1, args.vc_frames).round().astype(int)
    renders = np.stack([frames[i].image for i in index])
    timed(
        f"stage 2 clip ({args.vc_frames} frames, {vc_conf['ddim_steps']} steps)",
        args.device,
        lambda: generator.generate(renders, renders[0], RunContext()),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
