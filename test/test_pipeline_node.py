"""The whole PoseCrafter path through the real node: the `tiny` profile runs every generative
stage (DynamiCrafter -> DUSt3R relay poses -> trajectory renders -> ViewCrafter -> FMS ->
DUSt3R multi-view pose) with tiny random models on the CPU; the oracle source bridges real
templeRing frames; cancel and concurrency hold on the long path."""

from __future__ import annotations

import statistics
import threading
import time

import numpy as np
import pytest
from conftest import REPO, read_rgb, requires_ros

pytestmark = [requires_ros, pytest.mark.ros, pytest.mark.slow]
torch = pytest.importorskip("torch")

SUCCESS, KEYFRAME_NOT_FOUND, INSUFFICIENT_OVERLAP, BUSY, TIMEOUT, CANCELED = 0, 2, 3, 5, 6, 7
HVG_STAGES = [
    "validate",
    "direct",
    "interpolate",
    "relay_pose",
    "synthesize",
    "select",
    "multiview_pose",
]


@pytest.fixture(scope="module")
def tiny_node(start_node):
    return start_node(
        [
            "--params-file", str(REPO / "config/cpu.yaml"),
            "-p", "profile:=tiny", "-p", "torch_num_threads:=1", "-p", "max_concurrent_requests:=2",
            # Generous default budget: the tiny bridge takes seconds idle, a minute on a busy
            # 2-core machine, and these tests are not about budgets.
            "-p", "request_timeout_sec:=600.0",
        ]
    )  # fmt: skip


def request_for(client, pair, force_bridge, budget=0.0):
    from posecrafter_ros.ros.client import inline_ref

    a = inline_ref(read_rgb(pair.image0), pair.K0, "cam_a")
    b = inline_ref(read_rgb(pair.image1), pair.K1, "cam_b")
    return client.request(a, b, force_bridge, budget)


def test_tiny_profile_runs_the_whole_bridge(tiny_node, posed_pairs):
    _, client = tiny_node
    pair = posed_pairs["templeR0001-templeR0013"]
    resp = client.call(request_for(client, pair, force_bridge=False), timeout_sec=600)
    assert resp.status.code == SUCCESS, resp.message
    d = resp.diagnostics
    assert d.path == "bridge"
    assert list(d.stage_names) == HVG_STAGES
    assert all(s > 0 for s in d.stage_seconds) and d.total_seconds >= sum(d.stage_seconds) * 0.99
    assert d.num_relay_frames == 4
    assert d.num_candidate_frames > 6 and 0 < len(d.selected_frames) <= 6
    assert len(d.selected_scores) == len(d.selected_frames)
    assert list(d.selected_scores) == sorted(d.selected_scores, reverse=True)
    cov = np.asarray(resp.pose.pose.covariance).reshape(6, 6)
    assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)
    q = resp.pose.pose.pose.orientation
    assert abs(q.x**2 + q.y**2 + q.z**2 + q.w**2 - 1) < 1e-9
    assert resp.pose.header.frame_id == "cam_a"


def test_tiny_bridge_action_feedback_and_cancel(tiny_node, posed_pairs):
    _, client = tiny_node
    pair = posed_pairs["templeR0001-templeR0013"]
    result, feedback = client.call_action(request_for(client, pair, True), timeout_sec=600)
    assert result.status.code == SUCCESS, result.message
    stages = []
    for f in feedback:
        if not stages or stages[-1] != f.stage:
            stages.append(f.stage)
    assert stages == HVG_STAGES
    progress = [f.progress for f in feedback]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)

    canceled, seen = client.call_action(
        request_for(client, pair, True), timeout_sec=600, cancel_after_feedback=8
    )
    assert canceled is not None and canceled.status.code == CANCELED, canceled
    assert any(f.stage == "interpolate" for f in seen)


def test_four_clients_mixing_direct_and_bridge(tiny_node, posed_pairs):
    """4 clients x 6 requests at once, half of them bridged: every answer is SUCCESS or BUSY
    (2 slots), nothing deadlocks, and per-request latency is reported."""
    from posecrafter_ros.ros.client import PoseCrafterClient

    node, _ = tiny_node
    easy, hard = posed_pairs["templeR0001-templeR0003"], posed_pairs["templeR0001-templeR0013"]
    records: list[tuple[str, int, float]] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        client = PoseCrafterClient(service=node.service)
        if not client.wait(60):
            with lock:
                records.append(("wait", -1, 0.0))  # fails the test: no answer to a probe
            client.destroy()
            return
        for i in range(6):
            bridge = (i + k) % 2 == 0
            started = time.monotonic()
            resp = client.call(
                request_for(client, hard if bridge else easy, bridge), timeout_sec=600
            )
            with lock:
                records.append(
                    (
                        "bridge" if bridge else "direct",
                        resp.status.code if resp else -1,
                        time.monotonic() - started,
                    )
                )
        client.destroy()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not any(t.is_alive() for t in threads), "deadlock: a client never got its answers"
    assert len(records) == 24
    assert {code for _, code, _ in records} <= {SUCCESS, BUSY}, records
    for path in ("direct", "bridge"):
        lat = [s for p, c, s in records if p == path and c == SUCCESS]
        assert lat, f"no {path} request succeeded"
        print(
            f"{path}: {len(lat)} SUCCESS, p50 {statistics.median(lat):.2f} s, max {max(lat):.2f} s"
        )
    print(f"BUSY: {sum(c == BUSY for _, c, _ in records)} of {len(records)}")
    assert node.alive()


def test_oracle_bridge_through_the_keyframe_buffer(start_node, rclpy_context):
    """A templeRing pair 69 deg apart: the direct path gives up; requested by stamp, the node
    bridges through the frames it buffered between the two stamps (the oracle source)."""
    import rclpy
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import CameraInfo, Image

    from posecrafter_ros.eval.datasets import load_middlebury, make_pair
    from posecrafter_ros.eval.metrics import rotation_error_deg
    from posecrafter_ros.ros.client import camera_info_msg, inline_ref, stamp_msg, stamp_ref
    from posecrafter_ros.ros.conversions import array_to_image, pose_from_msg

    views = load_middlebury(REPO / "test/data/templering")[20:30]  # consecutive along the ring
    pair = make_pair(views[0], views[-1])
    assert 60 <= pair.rotation_deg <= 90
    images = [read_rgb(v.image_path) for v in views]
    node, client = start_node(
        [
            "--params-file", str(REPO / "config/cpu.yaml"), "-p", "buffer.reliable:=true",
            "-p", "request_timeout_sec:=600.0",  # the oracle bridge is slow on a busy machine
        ]
    )  # fmt: skip
    direct = client.call(
        client.request(inline_ref(images[0], views[0].K), inline_ref(images[-1], views[-1].K)),
        timeout_sec=60,
    )
    assert direct.status.code == INSUFFICIENT_OVERLAP, direct.message

    publisher = rclpy.create_node("oracle_camera")
    qos = QoSProfile(depth=len(views))
    image_pub = publisher.create_publisher(Image, f"{node.namespace}/image", qos)
    info_pub = publisher.create_publisher(CameraInfo, f"{node.namespace}/camera_info", qos)
    try:
        deadline = time.monotonic() + 30
        while (
            image_pub.get_subscription_count() == 0 or info_pub.get_subscription_count() == 0
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        while True:  # publish until the node has matched us and buffered both ends
            for k, (view, image) in enumerate(zip(views, images)):
                stamp = stamp_msg(50.0 + 0.1 * k)
                info_pub.publish(
                    camera_info_msg(view.K, image.shape[1], image.shape[0], "cam", stamp)
                )
                image_pub.publish(array_to_image(image, Image, "cam", stamp))
                time.sleep(0.05)
            time.sleep(0.5)
            resp = client.call(client.request(stamp_ref(50.0), stamp_ref(50.9)), timeout_sec=600)
            if resp.status.code != KEYFRAME_NOT_FOUND or time.monotonic() > deadline:
                break
    finally:
        publisher.destroy_node()
    assert resp.status.code == SUCCESS, resp.message
    assert resp.diagnostics.path == "bridge"
    assert resp.diagnostics.num_candidate_frames == len(views) - 2
    R, _, _ = pose_from_msg(resp.pose)
    assert rotation_error_deg(R.T, pair.R_0to1) < 10.0
