#!/usr/bin/env python3
"""What running DUSt3R in bfloat16 instead of float32 changes, on the parity fixtures.

The official inference runs DUSt3R in float32, and so does the gpu profile; bfloat16 halves the
encoder/decoder memory (the heads stay float32). This prints, for each model fixture, the
largest error of our network's outputs against the official float32 outputs in both dtypes
(relative to the largest reference value). Poses are not compared: the fixtures' random
networks make global alignment chaotic (1e-6 input changes move its result), so the effect
of bfloat16 on poses needs the real weights (scripts/gpu_smoke.py --dust3r-dtype bfloat16).

    python scripts/dust3r_dtype_effect.py [--golden test/data/golden]
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def output_errors(folder: Path, dtype) -> dict[str, float]:
    """{output: max |ours - official| / max |official|} over the fixture's pairs."""
    from posecrafter_ros.models.dust3r.parity import fixture_predictions

    predictions, outputs = fixture_predictions(folder, dtype)
    errors = {}
    for key, attr in (("pred1_pts3d", "pts_i"), ("pred1_conf", "conf_i")):
        worst = max(
            float((getattr(p, attr).double() - outputs[f"pair{n}_{key}"].double()).abs().max())
            for n, p in enumerate(predictions)
        )
        scale = max(float(outputs[f"pair{n}_{key}"].abs().max()) for n in range(len(predictions)))
        errors[key] = worst / scale
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--golden", type=Path, default=ROOT / "test/data/golden")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(2)  # the fixtures were produced with 2 intra-op threads
    for name in ("dust3r_linear", "dust3r_dpt"):
        for dtype in (torch.float32, torch.bfloat16):
            errors = output_errors(args.golden / name, dtype)
            figures = ", ".join(f"{key} {value:.2e}" for key, value in errors.items())
            print(f"{name} {str(dtype).split('.')[-1]:>8}: max relative error {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
