#!/usr/bin/env python3
"""Oracle bridge on posed view sets: pairs in the 50-65, 65-90 and 90-180 deg bins, the real
views between them (in the set's capture-like order, the shorter way round a ring) as FMS
candidates, then the multi-view pose. Prints, per set and bin, the OpenCV five-point baseline,
the direct path and the oracle bridge (eval.metrics.summarize), and the median seconds per
bridge (wall clock, and CPU time of the process: the wall clock depends on the machine's load).

    python scripts/oracle_report.py [SET ...] [--per-bin 10] [--seed 0] [--mode chain]
        [--pose colmap] [--max-side 640] [--matcher orb] [--json out.json]

SET: Middlebury-layout folders, or posed-pairs folders whose pairs share images (each
connected group of images becomes a view set: eval.oracle.views_from_pairs). Default:
test/data/templering, the Strecha walks in ../shared/data/strecha when present, and the
fixture test/data/posed_pairs_fixture.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from posecrafter_ros.eval.datasets import load_middlebury, load_posed_pairs, make_pair
from posecrafter_ros.eval.metrics import summarize
from posecrafter_ros.eval.oracle import run_oracle, views_from_pairs

ROOT = Path(__file__).resolve().parent.parent
STRECHA = ROOT.parent / "shared" / "data" / "strecha"
BINS = {"50-65": (50.0, 65.0), "65-90": (65.0, 90.0), "90-180": (90.0, 180.0)}
ROWS = ("baseline", "direct", "oracle")


def default_sets() -> list[Path]:
    sets = [ROOT / "test/data/templering"]
    if STRECHA.is_dir():
        sets += sorted(p for p in STRECHA.iterdir() if list(p.glob("*_par.txt")))
    return sets + [ROOT / "test/data/posed_pairs_fixture"]


def view_sets(folder: Path) -> list[tuple[str, list]]:
    """(name, views) of the view sets in a Middlebury or posed-pairs folder."""
    if (folder / "pairs.json").is_file():
        return [
            (f"{folder.name}/{views[0].group}", views)
            for views in views_from_pairs(load_posed_pairs(folder))
        ]
    return [(folder.name, load_middlebury(folder))]


def sample(views, per_bin: int, rng) -> dict[str, list[tuple[int, int]]]:
    chosen = {}
    for name, (lo, hi) in BINS.items():
        members = [
            (i, j)
            for i in range(len(views))
            for j in range(i + 1, len(views))
            if lo <= make_pair(views[i], views[j]).rotation_deg < hi
        ]
        if 0 < per_bin < len(members):
            members = [members[k] for k in sorted(rng.choice(len(members), per_bin, replace=False))]
        chosen[name] = members
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", type=Path)
    parser.add_argument("--per-bin", type=int, default=10, help="pairs sampled per bin (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", default="chain", choices=("chain", "paper"))
    parser.add_argument("--pose", default="colmap", help="pose_model type (colmap, dust3r)")
    parser.add_argument("--matcher", default="", help="pose matcher (e.g. aliked_lightglue)")
    parser.add_argument("--max-side", type=int, default=640)
    parser.add_argument("--top-k", type=int, default=6)
    parser.add_argument(
        "--min-inliers-each",
        type=int,
        default=0,
        help="FMS: inliers a frame needs against each end (paper mode)",
    )
    parser.add_argument(
        "--pose-conf",
        type=json.loads,
        default={},
        help="more pose_model settings as JSON, e.g. '{\"structure_less_fallback\": false}'",
    )
    parser.add_argument("--json", type=Path, help="write every pair's row here")
    args = parser.parse_args(argv)

    pose_conf = {"type": args.pose}
    if args.matcher:
        pose_conf["matcher"] = {"name": args.matcher}
    pose_conf.update(args.pose_conf)
    fms_conf = {"mode": args.mode, "top_k": args.top_k, "min_inliers_each": args.min_inliers_each}
    print(f"oracle report: FMS {fms_conf}, pose {pose_conf}, images <= {args.max_side} px")
    print(
        f"{'set':>16} {'bin':>6} {'row':>7} {'n':>3} {'MRE':>7} {'MTE':>7} {'R@5':>5} "
        f"{'R@15':>5} {'R@30':>5} {'AUC@30':>7} {'s/bridge':>8} {'cpu s':>8}"
    )
    dump = []
    for set_name, views in [s for folder in args.sets or default_sets() for s in view_sets(folder)]:
        chosen = sample(views, args.per_bin, np.random.default_rng(args.seed))
        for bin_name, index_pairs in chosen.items():
            if not index_pairs:
                continue
            rows = run_oracle(
                views, index_pairs, fms_conf=fms_conf, pose_conf=pose_conf, max_side=args.max_side
            )
            seconds = float(np.median([r.seconds for r in rows]))
            cpu_seconds = float(np.median([r.cpu_seconds for r in rows]))
            for row_name in ROWS:
                s = summarize(
                    [r.errors[row_name][0] for r in rows], [r.errors[row_name][1] for r in rows]
                )
                timing = f"{seconds:8.2f} {cpu_seconds:8.2f}" if row_name == "oracle" else ""
                print(
                    f"{set_name[-16:]:>16} {bin_name:>6} {row_name:>7} {s['n']:3d} "
                    f"{s['MRE']:7.2f} {s['MTE']:7.2f} {s['R@5']:5.2f} {s['R@15']:5.2f} "
                    f"{s['R@30']:5.2f} {s['AUC@30']:7.3f} {timing}",
                    flush=True,
                )
            for r in rows:
                dump.append(
                    {
                        "set": set_name,
                        "bin": bin_name,
                        "pair": r.name,
                        "rotation_deg": r.rotation_deg,
                        "errors": r.errors,
                        "selected": r.selected,
                        "seconds": r.seconds,
                        "cpu_seconds": r.cpu_seconds,
                        "message": r.message,
                        "covariance": None if r.covariance is None else r.covariance.tolist(),
                        "num_views": len(r.selected) + 2,
                        "pose_model": args.pose,
                        # What scripts/bridge_covariance.py refits the covariance's weights on.
                        "covariance_terms": None
                        if r.covariance_terms is None
                        else {
                            "ba": r.covariance_terms.ba.tolist(),
                            "links": r.covariance_terms.links,
                            "pair_disagreement": r.covariance_terms.pair_disagreement,
                            "t_unit": r.covariance_terms.t_unit.tolist(),
                        },
                        "rotation_error": None
                        if r.rotation_error is None
                        else r.rotation_error.tolist(),
                        "translation_error": None
                        if r.translation_error is None
                        else r.translation_error.tolist(),
                    }
                )
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
