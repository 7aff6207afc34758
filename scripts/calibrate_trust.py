#!/usr/bin/env python3
"""Fit each matcher's gate and covariance, leaving one scene out, and ship the numbers.

For every matcher: match and measure every corpus pair once (cached in the run folder, never
committed), then for each scene fit on all the other scenes and report on it (acceptance of
pairs under 50 deg, share of SUCCESS answers off by > 5 and > 15 deg, share of rotation and
translation-direction errors inside the 95% region of the returned covariance). Each fit also
chooses its operating point by leaving one of its own training scenes out at a time
(eval.trust.fit_trust_chosen), so no figure printed per held-out scene has seen that scene.
Finally fit on all scenes and, with --write, store the numbers in
posecrafter_ros/core/matching/trust/<name>.json.

    python scripts/calibrate_trust.py [--matchers sift orb xfeat_lighterglue ...] [--write]
        [--strecha ../shared/data/strecha] [--templering ../shared/data/templering_sequence]
        [--posed-pairs ../shared/data/posed_pairs_fixture] [--run-dir runs/trust]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from posecrafter_ros.core.matching import matcher_class
from posecrafter_ros.core.twoview import DEFAULT_MATCHER_CONF, TRUST_DIR
from posecrafter_ros.eval.trust import (
    WRONG_FOCAL_FACTORS,
    IntrinsicsReport,
    TrustReport,
    evaluate,
    fit_trust_chosen,
    fixed_gate_settings,
    intrinsics_report,
    leave_one_scene_out,
    load_corpus,
    measure_corpus,
    pooled_report,
    verdicts_under_50,
)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"  # ../shared/data beside the clone
COLUMNS = ("pairs", "accept<50", "success", ">5deg", ">15deg", "in95%R", "in95%t")


def format_row(label: str, report: TrustReport, note: str = "") -> str:
    row = report.row()
    cells = [f"{row[c]:>8d}" if isinstance(row[c], int) else f"{row[c]:8.3f}" for c in COLUMNS]
    return f"{label:>18s} " + " ".join(cells) + note


def operating_point(trust: dict) -> str:
    point = trust["operating_point"]
    return (
        f"  (max_p_wrong {trust['gate']['max_p_wrong']}, false share "
        f"{point['max_false_share']}, scene weight power {point['scene_weight_power']:g})"
    )


def print_wrong_focal(samples, held_out) -> None:
    """Per held-out scene: the intrinsics checks' false flags on the true focal lengths and,
    for each wrong focal factor, how many pairs under 50 deg they flag, how many are still
    answered and how many of those are off by > 5 deg."""
    factors = (1.0, *WRONG_FOCAL_FACTORS)
    print(
        "intrinsics checks on the pairs under 50 deg with a pose, focal length x factor "
        "(flagged / posed, SUCCESS, SUCCESS off by > 5 deg):"
    )
    print(f"{'held-out scene':>18s} " + " ".join(f"{'x' + format(f, '.3g'):>18s}" for f in factors))
    totals = {f: IntrinsicsReport() for f in factors}
    for scene, (_, fitted) in held_out.items():
        test = [s for s in samples if s.scene == scene]
        cells = []
        for factor in factors:
            report = intrinsics_report(test, fitted, factor)
            totals[factor] += report
            cells.append(format_intrinsics(report))
        print(f"{scene:>18s} " + " ".join(cells))
    print(f"{'all held-out':>18s} " + " ".join(format_intrinsics(totals[f]) for f in factors))


def format_intrinsics(report: IntrinsicsReport) -> str:
    return (
        f"{report.flagged:>4d}/{report.posed:<4d} {report.success:>3d} {report.success_off_5:>3d}  "
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matchers", nargs="+", default=[DEFAULT_MATCHER_CONF["name"]])
    parser.add_argument("--strecha", type=Path, default=SHARED / "strecha")
    parser.add_argument("--templering", type=Path, default=SHARED / "templering_sequence")
    parser.add_argument("--posed-pairs", type=Path, default=SHARED / "posed_pairs_fixture")
    parser.add_argument("--max-rotation", type=float, default=120.0)
    parser.add_argument("--max-pairs-per-scene", type=int, default=250)
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "trust")
    parser.add_argument("--write", action="store_true", help="write the all-scene fit")
    args = parser.parse_args(argv)

    def existing(path: Path) -> Path | None:
        return path if path.exists() else None

    corpus = load_corpus(
        existing(args.strecha),
        existing(args.templering),
        existing(args.posed_pairs),
        args.max_rotation,
        args.max_pairs_per_scene,
    )
    if not corpus:
        print(
            f"ERROR: no posed scene found (--strecha {args.strecha}, --templering "
            f"{args.templering}, --posed-pairs {args.posed_pairs})",
            file=sys.stderr,
        )
        return 1
    print("corpus: " + ", ".join(f"{name} {len(pairs)} pairs" for name, pairs in corpus.items()))
    for name in args.matchers:
        matcher_conf = {"name": name, **matcher_class(name).default_conf}
        tag = f"{name}-side{matcher_conf['max_side']}-rot{args.max_rotation:g}"
        samples = measure_corpus(corpus, {"name": name}, args.run_dir / f"{tag}.pkl")
        print(f"\n== {name} (max_side {matcher_conf['max_side']}), held-out scene rows")
        print(f"{'held-out scene':>18s} " + " ".join(f"{c:>8s}" for c in COLUMNS))
        held_out = leave_one_scene_out(
            samples, fit=fit_trust_chosen, gate_defaults=fixed_gate_settings()
        )
        for scene, (report, fitted) in held_out.items():
            print(format_row(scene, report, operating_point(fitted)))
        pooled = pooled_report(held_out)
        print(format_row("all held-out", pooled))
        print("verdicts on the pairs under 50 deg (gate criterion, measured pose right or wrong):")
        for scene, (_, fitted) in held_out.items():
            test = [s for s in samples if s.scene == scene]
            verdicts = ", ".join(f"{k} {n}" for k, n in verdicts_under_50(test, fitted).items())
            print(f"{scene:>18s}: {verdicts}")
        print_wrong_focal(samples, held_out)
        trust = fit_trust_chosen(samples, gate_defaults=fixed_gate_settings())
        print(f"fitted on all scenes: {json.dumps(trust)}")
        print(format_row("in-sample (info)", evaluate(samples, trust), operating_point(trust)))
        if args.write:
            record = {
                "matcher": matcher_conf,
                **trust,
                "corpus": {scene: len(pairs) for scene, pairs in corpus.items()},
                "held_out": {scene: report.row() for scene, (report, _) in held_out.items()},
                "held_out_all": pooled.row(),
                "command": "python scripts/calibrate_trust.py " + " ".join(argv or sys.argv[1:]),
            }
            TRUST_DIR.mkdir(parents=True, exist_ok=True)
            path = TRUST_DIR / f"{name}.json"
            path.write_text(json.dumps(record, indent=1) + "\n")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
