#!/usr/bin/env python3
"""Does the bridge covariance hold? Leave-one-scene-out check of the rotation block.

Reads the per-pair rows that scripts/oracle_report.py --json wrote (answered pairs carry the
[6 x 6] covariance and the rotation error vector). For each scene, the scale of the covariance
is fitted on the OTHER scenes (the factor that puts 95% of their rotation errors inside the 95%
chi-square(3) region) and the held-out scene's coverage is reported with that factor: the
fraction of its rotation errors inside the 95% region, raw (factor 1) and calibrated. The factor
fitted on all scenes is the one to ship (`covariance_scale` of the colmap pose model).

    python scripts/bridge_covariance.py REPORT.json [REPORT.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import chi2

CHI2_3_95 = float(chi2.ppf(0.95, 3))


def mahalanobis_sq(row: dict) -> float:
    w = np.asarray(row["rotation_error"], float)
    cov = np.asarray(row["covariance"], float)[3:, 3:]
    return float(w @ np.linalg.solve(cov, w))


def fitted_scale(d2: np.ndarray) -> float:
    """Factor c with 95% of d2 / c inside the chi-square(3) 95% bound."""
    return float(np.quantile(d2, 0.95) / CHI2_3_95)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path)
    args = parser.parse_args(argv)
    by_scene: dict[str, list[float]] = defaultdict(list)
    for path in args.reports:
        for row in json.loads(path.read_text()):
            if row.get("covariance") is not None and row.get("rotation_error") is not None:
                by_scene[row["set"]].append(mahalanobis_sq(row))
    if len(by_scene) < 2:
        print("need answered pairs from at least two scenes", file=sys.stderr)
        return 1
    print(
        f"{'held-out scene':>16} {'n':>4} {'fit on others':>13} {'raw 95%':>8} {'held-out 95%':>12}"
    )
    inside_all, n_all = 0, 0
    for scene, d2 in sorted(by_scene.items()):
        others = np.concatenate([v for s, v in by_scene.items() if s != scene])
        scale = fitted_scale(others)
        d2 = np.asarray(d2)
        raw = float(np.mean(d2 <= CHI2_3_95))
        held_out = float(np.mean(d2 / scale <= CHI2_3_95))
        inside_all += int(np.sum(d2 / scale <= CHI2_3_95))
        n_all += len(d2)
        print(f"{scene[:16]:>16} {len(d2):4d} {scale:13.2f} {raw:8.2f} {held_out:12.2f}")
    pooled = np.concatenate([np.asarray(v) for v in by_scene.values()])
    print(
        f"pooled held-out coverage {inside_all / n_all:.2f} of {n_all} answers; "
        f"factor fitted on all scenes: {fitted_scale(pooled):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
