#!/usr/bin/env python3
"""The first GPU run: the generative bridge end to end on one extreme pair, stage by stage.

  # on a GPU, with the three official checkpoints (nothing is downloaded):
  python scripts/gpu_smoke.py --dynamicrafter /models/dynamicrafter_512_interp_v1/model.ckpt \\
      --viewcrafter /models/ViewCrafter_25_512/model.ckpt \\
      --dust3r /models/DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth
  # on the CPU (CI): the same checks on the tiny profile's random models
  python scripts/gpu_smoke.py --profile tiny

Runs the bridge's stages in the pipeline's order (interpolate -> relay frames -> relay poses ->
renders + ViewCrafter clips -> FMS -> multi-view pose) on a posed pair (default: the shipped
robovision pair 61 degrees apart with 9 ground-truth SIFT matches) and checks each stage's
invariants, one line each: PASS / FAIL with the figure and its threshold. Thresholds marked
[real weights] only mean something with the official checkpoints; on random models (tiny
profile, --random-weights) their figures are printed as INFO. Each stage also prints its
seconds and peak GPU memory. Exit code 1 when any applicable check fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PAIR = "image_camera01-image_camera03"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--profile", default=None, help="gpu (default with CUDA) or tiny")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dynamicrafter", default="", help="dynamicrafter_512_interp_v1 ckpt")
    parser.add_argument("--viewcrafter", default="", help="ViewCrafter_25_512 ckpt")
    parser.add_argument("--dust3r", default="", help="DUSt3R_ViTLarge_BaseDecoder_512_dpt")
    parser.add_argument("--dust3r-dtype", choices=("float32", "bfloat16"), default=None)
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="full-size models with random weights instead of checkpoints (cost only)",
    )
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps of both models")
    parser.add_argument("--data", type=Path, default=REPO / "test/data/posed_pairs_fixture")
    parser.add_argument("--pair", default=DEFAULT_PAIR)
    args = parser.parse_args(argv)

    import torch

    from posecrafter_ros.eval.datasets import load_posed_pairs
    from posecrafter_ros.eval.frames import pair_keyframes
    from posecrafter_ros.eval.smoke import Smoke, model_overrides, run_bridge_stages
    from posecrafter_ros.pipeline import Pipeline

    cuda = torch.cuda.is_available()
    profile = args.profile or ("gpu" if cuda else "tiny")
    device = args.device or ("cuda" if cuda else "cpu")
    bridge = model_overrides(
        {
            "interpolator": args.dynamicrafter,
            "synthesizer": args.viewcrafter,
            "relay_poser": args.dust3r,
            "pose_model": args.dust3r,
        },
        args.random_weights,
        args.steps,
        dust3r_dtype=args.dust3r_dtype,
    )
    # The smoke runs the generative bridge itself; no oracle frames are involved.
    overrides = {"device": device, "bridge": {**bridge, "oracle": False}}
    pairs = {p.name: p for p in load_posed_pairs(args.data)}
    if args.pair not in pairs:
        print(f"ERROR: pair {args.pair!r} not in {args.data} (known: {sorted(pairs)})")
        return 2
    pair = pairs[args.pair]
    a, b = pair_keyframes(pair)

    started = time.monotonic()
    pipeline = Pipeline.from_profile(profile, overrides).load()
    real_weights = not (args.random_weights or uses_tiny_models(pipeline.bridge_conf))
    print(
        f"profile {pipeline.name} on {device}, {'official' if real_weights else 'random'} "
        f"weights, loaded in {time.monotonic() - started:.1f} s; pair {pair.name}"
    )
    missing = {slot: why for slot, why in pipeline.unavailable.items()}
    if missing:
        for slot, why in missing.items():
            print(f"  FAIL load        {slot}: {why}")
        return 1
    smoke = Smoke(pipeline, device, real_weights, stand_ins=args.random_weights)
    run_bridge_stages(smoke, a, b, pair)
    total = sum(seconds for _, seconds, _ in smoke.costs)
    peaks = [peak for _, _, peak in smoke.costs if peak is not None]
    peak_text = f", peak GPU {max(peaks):.2f} GiB" if peaks else ""
    print(f"total {total:.1f} s over {len(smoke.costs)} stages{peak_text}")
    failed = smoke.failed
    informational = len(smoke.checks) - len(smoke.applicable)
    print(
        f"{'FAIL' if failed else 'PASS'}: {len(smoke.applicable) - len(failed)} of "
        f"{len(smoke.applicable)} checks pass"
        + (f" ({informational} real-weights checks shown as INFO)" if informational else "")
    )
    return 1 if failed else 0


def uses_tiny_models(bridge: dict) -> bool:
    """Whether any model stage of the profile's bridge section is a tiny random network."""
    sections = [bridge.get(slot) or {} for slot in ("interpolator", "relay_poser", "pose_model")]
    sections.append((bridge.get("synthesizer") or {}).get("generator") or {})
    return any(section.get("tiny") for section in sections)


if __name__ == "__main__":
    sys.exit(main())
