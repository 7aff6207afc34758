"""The README's main job: start posecrafter_node, send ground-truth pairs, print the answers.

  python -m posecrafter_ros.ros.demo --data test/data/posed_pairs_fixture

Starts the real node (CPU default profile) in a child process on a private DDS domain,
sends each chosen pair of a posed-pairs folder inline over the service, prints the returned
geometry_msgs/PoseWithCovarianceStamped and its rotation / translation-direction error
against the ground truth. Then the mission: an extreme pair of a shipped outdoor walk
(--walk, --walk-pair: views 0 and 10, 108 deg apart), first sent inline (no frames between
them: refused, with the reason), then requested by stamps after the demo has published the
walk on the node's image topic, so the node bridges through the frames it buffered. Stops the
node.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..core.types import status_name
from ..eval.datasets import PosedPair, load_middlebury, load_posed_pairs, make_pair
from ..eval.frames import read_rgb
from ..eval.metrics import rotation_error_deg, translation_angle_deg
from .launcher import NodeProcess, local_ros_env

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


def report(resp, pair: PosedPair, started: float) -> bool:
    """Print a response and its errors against the ground truth; True when answered."""
    print(
        f"  status: {status_name(resp.status.code)} ({time.monotonic() - started:.3f} s round trip)"
    )
    print(f"  message: {resp.message}")
    stages = ", ".join(
        f"{n} {s * 1000:.1f} ms"
        for n, s in zip(resp.diagnostics.stage_names, resp.diagnostics.stage_seconds, strict=False)
    )
    print(f"  path: {resp.diagnostics.path}; stages: {stages}")
    if resp.status.code != 0:
        return False
    print_pose_msg(resp.pose)
    from .conversions import pose_from_msg

    R, t, _ = pose_from_msg(resp.pose)  # camera B in camera A: p_A = R p_B + t
    R_0to1, t_0to1 = R.T, -R.T @ t
    print(f"  rotation error:              {rotation_error_deg(R_0to1, pair.R_0to1):.2f} deg")
    print(
        f"  translation direction error: {translation_angle_deg(t_0to1, pair.t_0to1):.2f} deg"
        f" (scale known: {resp.translation_scale_known})"
    )
    return True


def publish_walk(
    node_namespace: str, views, images, first_stamp: float, client, a_b
) -> tuple[object, float, int]:
    """Publish the walk on the node's image / camera_info topics (stamps 0.1 s apart) until
    the node has buffered both ends, then request the pair by stamps: the response, when its
    request was sent (time.monotonic) and how many times the walk was published."""
    import rclpy
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import CameraInfo, Image

    from .client import camera_info_msg, stamp_msg, stamp_ref
    from .conversions import array_to_image

    camera = rclpy.create_node("demo_camera")
    qos = QoSProfile(depth=len(views))
    image_pub = camera.create_publisher(Image, f"{node_namespace}/image", qos)
    info_pub = camera.create_publisher(CameraInfo, f"{node_namespace}/camera_info", qos)
    stamps = [first_stamp + 0.1 * k for k in range(len(views))]
    try:
        deadline = time.monotonic() + 60.0
        while image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        rounds = 0
        while True:
            rounds += 1
            for view, image, stamp in zip(views, images, stamps):
                info_pub.publish(
                    camera_info_msg(view.K, image.shape[1], image.shape[0], "cam", stamp_msg(stamp))
                )
                image_pub.publish(array_to_image(image, Image, "cam", stamp_msg(stamp)))
                time.sleep(0.05)
            time.sleep(0.5)
            i, j = a_b
            # A bridge takes seconds on 2 free cores; the budget leaves room for a busy machine.
            sent = time.monotonic()
            resp = client.call(
                client.request(stamp_ref(stamps[i]), stamp_ref(stamps[j]), budget_sec=120.0),
                timeout_sec=180.0,
            )
            if resp is None or status_name(resp.status.code) != "KEYFRAME_NOT_FOUND":
                return resp, sent, rounds
            if time.monotonic() > deadline:
                return resp, sent, rounds
    finally:
        camera.destroy_node()


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
    parser.add_argument(
        "--walk",
        type=Path,
        default=REPO / "test/data/strecha_fountain",
        help="posed walk (Middlebury layout, capture order) for the extreme pair",
    )
    parser.add_argument(
        "--walk-pair",
        nargs=2,
        type=int,
        default=[0, 10],
        metavar=("A", "B"),
        help="view indices of the extreme pair in the walk",
    )
    args = parser.parse_args(argv)

    pairs = {p.name: p for p in load_posed_pairs(args.data)}
    unknown = [n for n in args.pairs if n not in pairs]
    if unknown:
        print(f"ERROR: unknown pairs {unknown}; available: {sorted(pairs)}", file=sys.stderr)
        return 2
    os.environ.update(local_ros_env())
    node = NodeProcess(["--params-file", str(args.params), "-p", "buffer.reliable:=true"])
    print(
        f"started posecrafter_node (ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}): {' '.join(node.cmd[1:])}"
    )

    import rclpy

    from .client import PoseCrafterClient, inline_ref, stamp_msg

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
            report(resp, pair, started)
        failures += 0 if walk_mission(args, client, node.namespace) else 1
    finally:
        client.destroy()
        rclpy.shutdown()
        print(f"\nnode stopped (exit code {node.stop()})")
    return 1 if failures else 0


def walk_mission(args, client, node_namespace: str) -> bool:
    """The extreme pair of the walk: refused inline, answered through buffered frames."""
    from .client import inline_ref, stamp_msg

    views = load_middlebury(args.walk)
    images = [read_rgb(v.image_path) for v in views]
    i, j = args.walk_pair
    pair = make_pair(views[i], views[j])
    print(
        f"\n== extreme pair {pair.name} of the walk {args.walk.name} "
        f"({len(views)} views): ground-truth rotation {pair.rotation_deg:.1f} deg"
    )
    print("-- sent inline, nothing buffered between them:")
    started = time.monotonic()
    a = inline_ref(images[i], views[i].K, "cam", stamp_msg(200.0))
    b = inline_ref(images[j], views[j].K, "cam", stamp_msg(201.0))
    refused = client.call(client.request(a, b), timeout_sec=60.0)
    if refused is None:
        print("  no answer within 60 s")
        return False
    report(refused, pair, started)
    print(
        f"-- the demo publishes the walk on {node_namespace}/image (stamps 100.0 + 0.1 s per "
        "view), then asks for the pair by its two stamps:"
    )
    resp, sent, rounds = publish_walk(node_namespace, views, images, 100.0, client, (i, j))
    if resp is None:
        print("  no answer within 180 s")
        return False
    if rounds > 1:  # the node had not buffered both ends yet (DDS discovery of the camera)
        print(f"  (the walk was published {rounds} times before the node held both stamps)")
    answered = report(resp, pair, sent)
    if answered:
        print(
            f"  bridged through buffered frames {list(resp.diagnostics.selected_frames)} of "
            f"{resp.diagnostics.num_candidate_frames} between the stamps"
        )
    return answered


if __name__ == "__main__":
    sys.exit(main())
