#!/usr/bin/env python3
"""Fit the bridge covariance and check it out of sample: leave one scene out.

Reads the per-pair rows that scripts/oracle_report.py --json wrote; the model and the protocol
are eval/bridge_covariance.py's. The held-out scene's coverage is reported: the fraction of its
rotation errors inside the 95% region (target 0.90-0.99). The pair fitted on all scenes the same
way is the one to ship in the pose model's defaults.

    python scripts/bridge_covariance.py REPORT.json [REPORT.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from posecrafter_ros.eval.bridge_covariance import (
    Answer,
    coverage,
    fit,
    leave_one_scene_out,
    translation_coverage,
)
from posecrafter_ros.stages.pose import ColmapPoseConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument(
        "--disagreement-weight",
        type=float,
        default=ColmapPoseConfig().pair_disagreement_weight,
        help="pair_disagreement_weight (0: the BA covariance and the per-link floor only)",
    )
    args = parser.parse_args(argv)
    by_scene: dict[str, list[Answer]] = defaultdict(list)
    refused: dict[str, int] = defaultdict(int)
    for path in args.reports:
        for row in json.loads(path.read_text()):
            if "covariance_model" in row:
                print(
                    f"{path}: written before the covariance terms were recorded; rerun "
                    "scripts/oracle_report.py",
                    file=sys.stderr,
                )
                return 1
            if row.get("pose_model") != "colmap":
                continue  # another pose model's covariance
            if row.get("covariance_terms") is not None and row.get("rotation_error") is not None:
                by_scene[row["set"]].append(Answer(row, args.disagreement_weight))
            else:
                refused[row["set"]] += 1
    if len(by_scene) < 2:
        print("need answered pairs from at least two scenes", file=sys.stderr)
        return 1
    print(
        f"{'held-out scene':>16} {'answers':>7} {'refused':>7} {'fit: scale':>10} "
        f"{'sigma/link':>10} {'s=1 95%':>8} {'held-out 95%':>12} {'median sigma':>12} "
        f"{'t held-out 95%':>14}"
    )
    inside_all, t_inside_all, n_all = 0, 0, 0
    held = leave_one_scene_out(by_scene)
    for scene, answers in sorted(by_scene.items()):
        scale, sigma, held_out = held[scene]
        raw = coverage(answers, 1.0, 0.0)  # the BA's covariance as it is (+ the weighted d)
        # How sharp the held-out model is: rotation sigma per axis, degrees.
        sharpness = np.degrees(
            np.median([np.sqrt(np.trace(a.covariance(scale, sigma)) / 3) for a in answers])
        )
        t_held_out = translation_coverage(answers, scale, sigma)
        inside_all += round(held_out * len(answers))
        t_inside_all += round(t_held_out * len(answers))
        n_all += len(answers)
        print(
            f"{scene[:16]:>16} {len(answers):7d} {refused[scene]:7d} {scale:10.3g} "
            f"{sigma:10.2f} {raw:8.2f} {held_out:12.2f} {sharpness:8.2f} deg "
            f"{t_held_out:14.2f}"
        )
    scale, sigma = fit(list(by_scene.values()))
    print(
        f"pooled held-out coverage {inside_all / n_all:.2f} of {n_all} answers (translation "
        f"direction {t_inside_all / n_all:.2f}); fitted on all scenes: covariance_scale "
        f"{scale:.3g}, rotation_sigma_per_link_deg {sigma:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
