"""The README's main job: start posecrafter_node, send ground-truth pairs, print the answers.

  python -m posecrafter_ros.cli.demo --data test/data/posed_pairs_fixture

Starts the real node (CPU default profile) in a child process on a private DDS domain,
sends each chosen pair of a posed-pairs folder inline over the service, prints the returned
geometry_msgs/PoseWithCovarianceStamped and its rotation / translation-direction error
against the ground truth, and stops the node.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..core.types import status_name
from ..eval.datasets import load_posed_pairs
from ..eval.frames import read_rgb
from ..eval.metrics import rotation_error_deg, translation_angle_deg
from ..ros.launcher import NodeProcess, local_ros_env

REPO = Path(__file__).resolve().parents[2]


def print_pose_msg(msg) -> None:
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    cov = np.asarray(msg.pose.covariance).reshape(6, 6)
    print("  geometry_msgs/PoseWithCovarianceStamped:")
    print(
        f"    header: {{frame_id: {msg.header.frame_id}, stamp: {msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}}}"
    )
    print(f"    pose.position:    [{p.x:+.5f}, {p.y:+.5f}, {p.z:+.5f}]")
    print(f"    pose.orientation: [x {q.x:+.5f}, y {q.y:+.5f}, z {q.z:+.5f}, w {q.w:+.5f}]")
    print("    pose.covariance (6x6, x y z rx ry rz):")
    for row in cov:
        print("      [" + ", ".join(f"{v:+.2e}" for v in row) + "]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="posecrafter-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO / "test/data/posed_pairs_fixture",
        help="posed-pairs folder",
    )
    parser.add_argument(
        "--pairs",
        nargs="*",
        default=["templeR0001-templeR0005", "templeR0001-templeR0013"],
        help="pair names (image0-image1 stems) to send",
    )
    parser.add_argument(
        "--params", type=Path, default=REPO / "config/cpu.yaml", help="node parameters file"
    )
    args = parser.parse_args(argv)

    pairs = {p.name: p for p in load_posed_pairs(args.data)}
    unknown = [n for n in args.pairs if n not in pairs]
    if unknown:
        print(f"ERROR: unknown pairs {unknown}; available: {sorted(pairs)}", file=sys.stderr)
        return 2
    os.environ.update(local_ros_env())
    node = NodeProcess(["--params-file", str(args.params)])
    print(
        f"started posecrafter_node (ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}): {' '.join(node.cmd[1:])}"
    )

    import rclpy

    from ..ros.client import PoseCrafterClient, inline_ref, stamp_msg

    rclpy.init()
    client = PoseCrafterClient()
    failures = 0
    try:
        if not client.wait(30.0):
            print("ERROR: the node did not offer its service within 30 s", file=sys.stderr)
            return 1
        for i, name in enumerate(args.pairs):
            pair = pairs[name]
            print(f"\n== pair {name}: ground-truth rotation {pair.rotation_deg:.1f} deg")
            a = inline_ref(
                read_rgb(pair.image0), pair.K0, "cam_a_optical_frame", stamp_msg(float(i))
            )
            b = inline_ref(
                read_rgb(pair.image1), pair.K1, "cam_b_optical_frame", stamp_msg(float(i) + 0.5)
            )
            started = time.monotonic()
            resp = client.call(client.request(a, b), timeout_sec=60.0)
            if resp is None:
                print("  no answer within 60 s")
                failures += 1
                continue
            print(
                f"  status: {status_name(resp.status.code)} ({time.monotonic() - started:.3f} s round trip)"
            )
            print(f"  message: {resp.message}")
            stages = ", ".join(
                f"{n} {s * 1000:.1f} ms"
                for n, s in zip(
                    resp.diagnostics.stage_names, resp.diagnostics.stage_seconds, strict=False
                )
            )
            print(f"  path: {resp.diagnostics.path}; stages: {stages}")
            from ..ros.conversions import NO_INFORMATION_VARIANCE, pose_from_msg

            if resp.status.code != 0:
                cov_diag = np.diag(np.asarray(resp.pose.pose.covariance).reshape(6, 6))
                if np.all(cov_diag >= NO_INFORMATION_VARIANCE):
                    continue  # no pose at all
                print("  LOW-CONFIDENCE direct estimate (rejected by the gate; not an answer):")
            print_pose_msg(resp.pose)

            R, t, _ = pose_from_msg(resp.pose)  # camera B in camera A: p_A = R p_B + t
            R_0to1, t_0to1 = R.T, -R.T @ t
            print(
                f"  rotation error:              {rotation_error_deg(R_0to1, pair.R_0to1):.2f} deg"
            )
            print(
                f"  translation direction error: {translation_angle_deg(t_0to1, pair.t_0to1):.2f} deg"
                f" (scale known: {resp.translation_scale_known})"
            )
    finally:
        client.destroy()
        rclpy.shutdown()
        print(f"\nnode stopped (exit code {node.stop()})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
