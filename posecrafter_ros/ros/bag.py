"""posecrafter-bag: posed image sets as ROS 2 bags, and evaluation by bag replay.

posecrafter-bag make --data DIR --out BAG [--storage sqlite3|mcap] [--rate HZ]
    images + camera_info + ground truth (/tf and /ground_truth/pose), one image per stamp
posecrafter-bag eval BAG --out DIR [--rows baseline,direct,pipeline:cpu,oracle]
    [--service /posecrafter/estimate_relative_pose]
    picks keyframe pairs by ground-truth rotation bins, answers them in-process and/or
    through a live node (by stamp, via its keyframe buffer), writes the evaluation report
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli.eval import (
    HelpFormatter,
    add_common_arguments,
    add_data_arguments,
    build_rows,
    cap_pairs,
    load_data,
    refuse_skipped,
)
from ..core.types import Keyframe
from ..eval.bag import (
    STORAGES,
    BagError,
    BagTopics,
    bag_views,
    dataset_views,
    index_bag,
    read_images,
    write_bag,
)
from ..eval.datasets import DatasetError, sample_view_pairs
from ..eval.report import write_report
from ..eval.runner import EvalItem, evaluate, spaced, summarize_results

logger = logging.getLogger("posecrafter_ros.eval")


def add_topic_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = BagTopics()
    parser.add_argument("--image-topic", default=defaults.image, help="image topic in the bag")
    parser.add_argument(
        "--camera-info-topic", default=defaults.camera_info, help="camera_info topic in the bag"
    )
    parser.add_argument(
        "--pose-topic", default=defaults.pose, help="ground-truth PoseStamped topic"
    )
    parser.add_argument("--tf-topic", default=defaults.tf, help="TF topic (ground truth fallback)")


def topics_of(args) -> BagTopics:
    return BagTopics(args.image_topic, args.camera_info_topic, args.tf_topic, args.pose_topic)


def run_make(args) -> int:
    dataset = load_data(args)
    views = dataset_views(dataset)
    if args.max_frames > 0:
        views = views[: args.max_frames]
    count = write_bag(
        views,
        args.out,
        args.storage,
        args.rate,
        topics_of(args),
        args.camera_frame,
        args.world_frame,
        args.max_side,
        progress=not args.no_progress,
    )
    print(f"wrote {count} images ({dataset.layout} {args.data}) to {args.out} [{args.storage}]")
    return 0


def run_eval(args) -> int:
    topics = topics_of(args)
    logger.info("indexing %s (images, camera_info, ground truth)", args.bag)
    frames = index_bag(args.bag, topics, int(args.gt_tolerance * 1e9))
    views = bag_views(frames, args.bag)
    rows, skipped = build_rows(args.rows, args.baseline_features, args.force_bridge)
    if args.service:
        from .replay import ServiceRow

        live = ServiceRow(
            args.service,
            args.node_image_topic,
            args.node_camera_info_topic,
            publish_between=args.publish_between,
            timeout_sec=args.timeout,
        )
        if live.skip_reason:
            logger.warning("row %s skipped: %s", live.name, live.skip_reason)
            skipped[live.name] = live.skip_reason
        else:
            rows.append(live)
    refuse_skipped(skipped, args.skip_unavailable)
    pairs = cap_pairs(
        sample_view_pairs(views, args.pairs_per_bin, args.seed, args.bins), args.max_pairs
    )
    if not pairs:
        print(f"ERROR: no pair of {args.bag} falls in the bins {args.bins}", file=sys.stderr)
        return 2
    need_between = any(r.needs_between for r in rows)
    between: dict[str, list[int]] = {}
    for pair in pairs:
        lo, hi = sorted((pair.meta["index0"], pair.meta["index1"]))
        inside = [i for i in range(lo + 1, hi) if frames[i].group == frames[lo].group]
        between[pair.name] = spaced(inside, args.oracle_max_frames) if need_between else []
    wanted = {i for p in pairs for i in (p.meta["index0"], p.meta["index1"], *between[p.name])}
    logger.info(
        "%s: %d frames, %d pairs, decoding %d images",
        args.bag,
        len(frames),
        len(pairs),
        len(wanted),
    )
    images = read_images(args.bag, (frames[i].stamp_ns for i in wanted), topics)

    def keyframe(i: int) -> Keyframe:
        f = frames[i]
        return Keyframe(images[f.stamp_ns], f.K, frame_id=f.frame_id, stamp_ns=f.stamp_ns)

    items = [
        EvalItem(
            p,
            lambda p=p: (keyframe(p.meta["index0"]), keyframe(p.meta["index1"])),
            lambda p=p: [keyframe(i) for i in between[p.name]],
        )
        for p in pairs
    ]
    try:
        results = evaluate(items, rows, progress=not args.no_progress)
    finally:
        for row in rows:
            close = getattr(row, "close", None)
            if callable(close):
                close()
    meta = {
        "title": f"bag {args.bag.name}",
        "bag": str(args.bag),
        "frames": len(frames),
        "pairs": len(pairs),
        "pairs_per_bin": args.pairs_per_bin,
        "seed": args.seed,
        "service": args.service or "",
        "baseline_features": args.baseline_features,
        "force_bridge": args.force_bridge,
        "command": "posecrafter-bag " + " ".join(sys.argv[1:] if args.argv is None else args.argv),
    }
    paths = write_report(args.out, summarize_results(results), results, skipped, meta)
    print(paths["table_md"].read_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="posecrafter-bag",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    make = commands.add_parser(
        "make",
        help="write a posed image set as a ROS 2 bag",
        formatter_class=HelpFormatter,
    )
    add_data_arguments(make)
    make.add_argument("--out", type=Path, required=True, help="bag folder to create")
    make.add_argument("--storage", choices=STORAGES, default="sqlite3", help="bag storage format")
    make.add_argument("--rate", type=float, default=10.0, help="images per second of bag time")
    make.add_argument(
        "--max-side", type=int, default=0, help="downscale images (longer side, 0: native)"
    )
    make.add_argument(
        "--max-frames", type=int, default=0, help="write only the first N views (0: all)"
    )
    make.add_argument(
        "--camera-frame", default="camera_optical_frame", help="camera optical frame id"
    )
    make.add_argument("--world-frame", default="world", help="ground-truth parent frame id")
    make.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_topic_arguments(make)

    ev = commands.add_parser(
        "eval",
        help="replay a bag and evaluate rows on ground-truth pairs",
        formatter_class=HelpFormatter,
    )
    ev.add_argument("bag", type=Path, help="bag folder (sqlite3 or mcap)")
    add_common_arguments(ev)
    add_topic_arguments(ev)
    ev.add_argument(
        "--gt-tolerance",
        type=float,
        default=0.005,
        help="max stamp difference between an image and its ground-truth pose (s)",
    )
    ev.add_argument(
        "--service",
        default="",
        help="also query a live node through this service (row pipeline:service)",
    )
    ev.add_argument(
        "--node-image-topic",
        default=None,
        help="the node's image topic (default: <service namespace>/image)",
    )
    ev.add_argument(
        "--node-camera-info-topic",
        default=None,
        help="the node's camera_info topic (default: <service namespace>/camera_info)",
    )
    ev.add_argument(
        "--publish-between",
        action="store_true",
        help="live mode: also publish the frames between A and B (node's oracle bridge)",
    )
    ev.add_argument("--timeout", type=float, default=120.0, help="live mode: seconds per request")

    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_make(args) if args.command == "make" else run_eval(args)
    except (BagError, DatasetError, ValueError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
