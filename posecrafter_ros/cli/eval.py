"""posecrafter-eval: compare rows (baseline, direct, pipeline:<profile>, oracle) on posed pairs.

Example (as in the README):
  posecrafter-eval --data test/data/templering --rows baseline,direct,oracle \\
      --out runs/templering --pairs-per-bin 10 --seed 0
A requested row that cannot run here fails the command unless --skip-unavailable is given.
Writes summary.json, summary.csv, pairs.csv, results.md and error_cdf.png into --out.

Across a Ray cluster (each worker builds its rows and models once; same report files):
  posecrafter-eval --data DATA --rows pipeline:gpu --out runs/gpu \\
      --executor ray --ray-address HEAD:6379 --workers 8 --gpus-per-worker 1 --resume
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..eval.datasets import ROTATION_BINS, DatasetError
from ..eval.executors import EXECUTORS, ExecutorError, build_executor, run_evaluation
from ..eval.loaders import load_dataset
from ..eval.report import FILES, write_report
from ..eval.rows import ROW_NAMES, build_row, check_row_name
from ..eval.runner import dataset_items, summarize_results

logger = logging.getLogger("posecrafter_ros.eval")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's layout and shows every option's default."""


def parse_rows(text: str) -> list[str]:
    rows = [r.strip() for r in text.split(",") if r.strip()]
    if not rows:
        raise argparse.ArgumentTypeError("give at least one row")
    return rows


def parse_bins(text: str) -> list[str]:
    bins = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in bins if b not in ROTATION_BINS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown bins {unknown} (known: {list(ROTATION_BINS)})")
    return bins


def cap_pairs(pairs: list, max_pairs: int) -> list:
    """At most `max_pairs` pairs, taken round-robin over the bins so each bin keeps its share."""
    if max_pairs <= 0 or len(pairs) <= max_pairs:
        return pairs
    from ..eval.datasets import rotation_bin

    by_bin: dict[str, list] = {}
    for pair in pairs:
        by_bin.setdefault(rotation_bin(pair.rotation_deg) or "", []).append(pair)
    chosen: list = []
    depth = 0
    while len(chosen) < max_pairs:
        for members in by_bin.values():
            if depth < len(members) and len(chosen) < max_pairs:
                chosen.append(members[depth])
        depth += 1
    return [p for p in pairs if any(p is c for c in chosen)]


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data and the layout options (shared with posecrafter-bag make)."""
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="data set folder: posed-pairs, Middlebury, Cambridge, ScanNet, DL3DV or NAVI",
    )
    parser.add_argument("--layout", default=None, help="force a layout instead of detecting it")
    parser.add_argument("--split", default=None, help="Cambridge split: train, test or all")
    parser.add_argument(
        "--frame-stride", type=int, default=None, help="ScanNet: keep every n-th frame"
    )
    parser.add_argument(
        "--focal-px",
        type=float,
        default=None,
        help="Cambridge: focal length in pixels of the 1920x1080 frames (else reconstruction.nvm)",
    )


def load_data(args: argparse.Namespace):
    """The PosedDataset named by add_data_arguments' options."""
    options = {"split": args.split, "frame_stride": args.frame_stride, "focal_px": args.focal_px}
    return load_dataset(
        args.data, args.layout, **{k: v for k, v in options.items() if v is not None}
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by posecrafter-eval and posecrafter-bag eval."""
    parser.add_argument(
        "--rows",
        type=parse_rows,
        default="baseline,direct",
        help=f"comma-separated rows: {', '.join(ROW_NAMES)}",
    )
    parser.add_argument("--out", type=Path, required=True, help="report folder (created)")
    parser.add_argument(
        "--pairs-per-bin", type=int, default=10, help="pairs sampled per rotation bin"
    )
    parser.add_argument(
        "--bins",
        type=parse_bins,
        default=",".join(ROTATION_BINS),
        help="comma-separated rotation bins (degrees), a subset of the built-in ones",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the pair sampling")
    parser.add_argument("--max-pairs", type=int, default=0, help="cap on all pairs (0: none)")
    parser.add_argument(
        "--max-side",
        type=int,
        default=0,
        help="downscale images so their longer side is at most this (0: native)",
    )
    parser.add_argument(
        "--baseline-features",
        choices=("sift", "orb"),
        default="sift",
        help="features of the OpenCV five-point baseline",
    )
    parser.add_argument(
        "--oracle-max-frames",
        type=int,
        default=32,
        help="in-between frames offered to the oracle row (evenly spaced)",
    )
    parser.add_argument(
        "--force-bridge",
        action="store_true",
        help="pipeline rows bridge every pair, as the paper reports (default: the direct "
        "path answers the pairs it is confident about)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--skip-unavailable",
        action="store_true",
        help="leave out requested rows that cannot run here (reported as skipped) "
        "instead of failing",
    )


def build_rows(
    names: Sequence[str], baseline_features: str, force_bridge: bool = False
) -> tuple[list, dict[str, str]]:
    """(rows that can run, {row: reason} for those skipped)."""
    rows, skipped = [], {}
    for name in names:
        row = build_row(
            name, baseline_conf={"features": baseline_features}, force_bridge=force_bridge
        )
        if row.skip_reason:
            logger.warning("row %s skipped: %s", row.name, row.skip_reason)
            skipped[row.name] = row.skip_reason
        else:
            rows.append(row)
    return rows, skipped


def refuse_skipped(skipped: dict[str, str], skip_unavailable: bool) -> None:
    """A requested row that cannot run fails the command, unless the user opted in."""
    if skipped and not skip_unavailable:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
        msg = f"requested rows cannot run ({reasons}); pass --skip-unavailable to run the others"
        raise ValueError(msg)


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: this process; ray: actors on a Ray cluster (pip install .[ray])",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="head of a running Ray cluster (HOST:PORT or auto); default: start a local one",
    )
    parser.add_argument("--workers", type=int, default=2, help="Ray actors (each loads the rows)")
    parser.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="GPUs each Ray actor reserves"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the pairs already in --out/pairs.csv (a run that died goes on)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="posecrafter-eval",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    add_data_arguments(parser)
    add_common_arguments(parser)
    add_executor_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        dataset = load_data(args)
        for name in args.rows:  # an unknown row fails here, before any worker starts
            check_row_name(name)
        names, skipped = list(args.rows), {}
        if "oracle" in names and not dataset.is_sequence:
            skipped["oracle"] = (
                f"the {dataset.layout} data is not a sequence: no frames between pairs"
            )
            names.remove("oracle")
        refuse_skipped(skipped, args.skip_unavailable)
    except (DatasetError, ValueError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    pairs = cap_pairs(
        dataset.sample_pairs(args.pairs_per_bin, args.seed, args.bins), args.max_pairs
    )
    logger.info("%s (%s): %d pairs, rows %s", args.data, dataset.layout, len(pairs), names)
    if not pairs:
        print(f"ERROR: no pair of {args.data} falls in the bins {args.bins}", file=sys.stderr)
        return 2
    items = dataset_items(dataset, pairs, args.max_side, args.oracle_max_frames)
    make_rows = functools.partial(build_rows, names, args.baseline_features, args.force_bridge)
    try:
        with build_executor(
            args.executor,
            make_rows,
            items,
            workers=args.workers,
            address=args.ray_address,
            gpus_per_worker=args.gpus_per_worker,
        ) as executor:
            skipped.update(executor.skipped)
            refuse_skipped(executor.skipped, args.skip_unavailable)
            results = run_evaluation(
                executor, args.out / FILES["pairs_csv"], args.resume, not args.no_progress
            )
    except (ExecutorError, ValueError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    meta = {
        "title": f"{args.data.name} ({dataset.layout})",
        "data": str(args.data),
        "layout": dataset.layout,
        "pairs": len(pairs),
        "pairs_per_bin": args.pairs_per_bin,
        "seed": args.seed,
        "max_side": args.max_side,
        "baseline_features": args.baseline_features,
        "force_bridge": args.force_bridge,
        "command": "posecrafter-eval " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    paths = write_report(args.out, summarize_results(results), results, skipped, meta)
    print(paths["table_md"].read_text())
    logger.info("report written to %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
