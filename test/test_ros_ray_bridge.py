"""The node's generative bridge on a real Ray cluster (a head and a worker node, separate
processes on loopback), `bridge.executor: ray` with the tiny profile: the node answers the
direct path itself and sends bridge work to a pool of 2 actors; 4 concurrent clients, a
cancel and a timeout that stop the remote work, and a worker killed mid-request."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import REPO, read_rgb, requires_ros

pytest.importorskip("ray")
pytest.importorskip("torch")
pytestmark = [requires_ros, pytest.mark.ros, pytest.mark.slow]

SUCCESS, BUSY, TIMEOUT, CANCELED, INTERNAL_ERROR = 0, 5, 6, 7, 8
REMOTE_STAGES = {"interpolate", "relay_pose", "synthesize", "select", "multiview_pose"}
HVG_STAGES = ["validate", "direct", "interpolate", "relay_pose", "synthesize", "select"]
HVG_STAGES.append("multiview_pose")


@pytest.fixture(scope="module")
def ray_node(start_node, cluster):
    return start_node(
        [
            "--params-file", str(REPO / "config/cpu.yaml"),
            "-p", "profile:=tiny", "-p", "torch_num_threads:=1",
            "-p", "max_concurrent_requests:=6",
            "-p", "bridge.executor:=ray", "-p", f"bridge.ray_address:={cluster.address}",
            "-p", "bridge.pool_size:=2",
        ],
        timeout=300.0,  # the pool's actors load their models before the node serves
    )  # fmt: skip


def bridge_workers(cluster) -> list:
    """The processes of the pool's actors (Ray titles them after the actor class)."""
    found = []
    for proc in cluster.processes():
        try:
            if " ".join(proc.cmdline()).startswith("ray::BridgeWorker"):
                found.append(proc)
        except Exception:
            continue
    return found


def request_for(client, pair, force_bridge, budget=0.0):
    from posecrafter_ros.ros.client import inline_ref

    a = inline_ref(read_rgb(pair.image0), pair.K0, "cam_a")
    b = inline_ref(read_rgb(pair.image1), pair.K1, "cam_b")
    return client.request(a, b, force_bridge, budget)


def test_direct_path_here_and_bridge_on_the_pool(ray_node, cluster, posed_pairs):
    node, client = ray_node
    easy, hard = posed_pairs["templeR0001-templeR0003"], posed_pairs["templeR0001-templeR0013"]
    direct = client.call(request_for(client, easy, False), timeout_sec=60)
    assert direct.status.code == SUCCESS and direct.diagnostics.path == "direct", direct.message
    assert "Ray worker" not in direct.message

    bridged = client.call(request_for(client, hard, True), timeout_sec=180)
    assert bridged.status.code == SUCCESS, bridged.message
    assert bridged.diagnostics.path == "bridge"
    assert list(bridged.diagnostics.stage_names) == HVG_STAGES  # local + remote stages
    assert 0 < len(bridged.diagnostics.selected_frames) <= 6
    worker_pids = {proc.pid for proc in bridge_workers(cluster)}
    assert len(worker_pids) == 2 and node.pid not in worker_pids
    answered_by = int(bridged.message.split("pid ")[1].split("]")[0])
    assert answered_by in worker_pids


def test_four_concurrent_clients_share_the_pool(ray_node, posed_pairs):
    """4 bridge requests at once on 2 actors: each is SUCCESS or BUSY (at least 2 succeed),
    and a direct request sent at the same time is answered by the node itself."""
    from posecrafter_ros.ros.client import PoseCrafterClient

    node, _ = ray_node
    easy, hard = posed_pairs["templeR0001-templeR0003"], posed_pairs["templeR0001-templeR0013"]
    answers: list = [None] * 4
    bridges_started = threading.Barrier(5)

    def ask(i: int) -> None:
        client = PoseCrafterClient(service=node.service)
        assert client.wait(30)
        request = request_for(client, hard, True)
        bridges_started.wait(60)
        answers[i] = client.call(request, timeout_sec=300)
        client.destroy()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    direct_client = PoseCrafterClient(service=node.service)
    try:
        assert direct_client.wait(30)
        bridges_started.wait(60)
        direct = direct_client.call(request_for(direct_client, easy, False), timeout_sec=60)
    finally:
        direct_client.destroy()
    for thread in threads:
        thread.join(400)
    assert direct.status.code == SUCCESS and direct.diagnostics.path == "direct"
    codes = [a.status.code if a is not None else None for a in answers]
    assert None not in codes, codes
    assert set(codes) <= {SUCCESS, BUSY}, [a.message for a in answers]
    assert codes.count(SUCCESS) >= 2, codes
    for answer in answers:
        if answer.status.code == BUSY:
            assert "bridge workers of the Ray pool are busy" in answer.message
    assert node.alive()


def test_cancel_reaches_the_remote_work(ray_node, posed_pairs):
    node, client = ray_node
    hard = posed_pairs["templeR0001-templeR0013"]
    seen_remote = threading.Event()

    def on_feedback(feedback) -> None:
        if feedback.stage in REMOTE_STAGES:
            seen_remote.set()

    result, feedback = client.call_action(
        request_for(client, hard, True), on_feedback, timeout_sec=300, cancel_after_feedback=8
    )
    assert result.status.code == CANCELED, result.message
    assert any(f.stage in REMOTE_STAGES for f in feedback), [f.stage for f in feedback]
    # The actor's own RunContext stopped between steps, before the bridge was done.
    assert "the remote work ended CANCELED" in result.message, result.message
    assert node.alive()


def test_budget_reaches_the_remote_work(ray_node, posed_pairs):
    node, client = ray_node
    hard = posed_pairs["templeR0001-templeR0013"]
    resp = client.call(request_for(client, hard, True, budget=1.5), timeout_sec=120)
    assert resp.status.code == TIMEOUT, resp.message
    # Either the actor ran out of its share of the budget itself, or the node stopped it.
    assert "Ray worker" in resp.message and "did not stop" not in resp.message, resp.message
    assert node.alive()


def test_a_worker_killed_mid_request_gives_a_status_and_the_node_keeps_serving(
    ray_node, cluster, posed_pairs
):
    from posecrafter_ros.ros.client import PoseCrafterClient

    node, client = ray_node
    easy, hard = posed_pairs["templeR0001-templeR0003"], posed_pairs["templeR0001-templeR0013"]
    remote_running = threading.Event()
    outcome: dict = {}

    def run() -> None:
        own = PoseCrafterClient(service=node.service)
        try:
            assert own.wait(30)

            def on_feedback(feedback) -> None:
                if feedback.stage in REMOTE_STAGES:
                    remote_running.set()

            outcome["result"], _ = own.call_action(
                request_for(own, hard, True), on_feedback, timeout_sec=300
            )
        finally:
            own.destroy()

    thread = threading.Thread(target=run)
    thread.start()
    assert remote_running.wait(120), "the bridge never started on the pool"
    killed = bridge_workers(cluster)
    assert len(killed) == 2
    for proc in killed:  # both actors: whichever holds the request dies
        proc.kill()
    thread.join(300)
    result = outcome["result"]
    assert result.status.code == INTERNAL_ERROR, result.message
    assert "bridge worker died mid-request" in result.message
    assert node.alive()

    direct = client.call(request_for(client, easy, False), timeout_sec=60)
    assert direct.status.code == SUCCESS, direct.message
    # Ray restarts the actors (they reload their models); the bridge then answers again.
    deadline = time.monotonic() + 240
    while True:
        resp = client.call(request_for(client, hard, True), timeout_sec=300)
        if resp.status.code == SUCCESS or time.monotonic() > deadline:
            break
        assert resp.status.code in (BUSY, INTERNAL_ERROR), resp.message
        time.sleep(1.0)
    assert resp.status.code == SUCCESS, resp.message
    assert {p.pid for p in bridge_workers(cluster)}.isdisjoint({p.pid for p in killed})
