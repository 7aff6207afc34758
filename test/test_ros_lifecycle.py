"""posecrafter_lifecycle_node over DDS: driven through its transitions with the standard
lifecycle services, it serves only while active, says so while inactive, frees and reloads
its pipeline, and a configure that cannot load fails back to unconfigured."""

from __future__ import annotations

import time

import pytest
from conftest import REPO, read_rgb, requires_ros

pytestmark = [requires_ros, pytest.mark.ros]

SUCCESS, INACTIVE = 0, 9


@pytest.fixture
def lifecycle_node(tmp_path, rclpy_context):
    """Factory: a posecrafter_lifecycle_node process and a LifecycleClient for it."""
    from lifecycle_client import LifecycleClient

    from posecrafter_ros.ros.launcher import NodeProcess

    started = []

    def start(extra_args: list[str], namespace: str):
        node = NodeProcess(
            ["--params-file", str(REPO / "config/cpu.yaml"), *extra_args],
            namespace,
            tmp_path / f"{namespace.strip('/')}.log",
            executable="posecrafter_lifecycle_node",
        )
        lifecycle = LifecycleClient(f"{namespace}/posecrafter")
        started.append((node, lifecycle))
        return node, lifecycle

    yield start
    for node, lifecycle in started:
        lifecycle.destroy()
        node.stop()


def _request(client, pair):
    from posecrafter_ros.ros.client import inline_ref

    a = inline_ref(read_rgb(pair.image0), pair.K0, "cam_a")
    b = inline_ref(read_rgb(pair.image1), pair.K1, "cam_b")
    return client.request(a, b)


def _wait_service_gone(client, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while client.service.service_is_ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_transitions_over_dds_and_an_answer_when_active(lifecycle_node, posed_pairs):
    from posecrafter_ros.ros.client import PoseCrafterClient

    node, lifecycle = lifecycle_node([], "/managed")
    pair = posed_pairs["templeR0001-templeR0005"]
    assert lifecycle.state() == "unconfigured"
    client = PoseCrafterClient(service=node.service)
    try:
        assert lifecycle.change("configure")
        assert lifecycle.state() == "inactive"
        assert "stage direct: ready" in node.log()  # configure loaded the pipeline
        assert not client.service.service_is_ready()  # not serving before the first activate

        assert lifecycle.change("activate")
        assert lifecycle.state() == "active"
        assert client.wait(30)
        resp = client.call(_request(client, pair), timeout_sec=60)
        assert resp.status.code == SUCCESS and resp.diagnostics.path == "direct", resp.message

        assert lifecycle.change("deactivate")
        assert lifecycle.state() == "inactive"
        refused = client.call(_request(client, pair), timeout_sec=60)
        assert refused.status.code == INACTIVE
        assert "inactive" in refused.message and refused.diagnostics.path == "none"
        result, _ = client.call_action(_request(client, pair), timeout_sec=60)
        assert result.status.code == INACTIVE

        assert lifecycle.change("activate")
        again = client.call(_request(client, pair), timeout_sec=60)
        assert again.status.code == SUCCESS, again.message

        assert lifecycle.change("deactivate") and lifecycle.change("cleanup")
        assert lifecycle.state() == "unconfigured"
        assert _wait_service_gone(client), "the service outlived cleanup"

        assert lifecycle.change("configure") and lifecycle.change("activate")  # reload
        assert client.wait(30)
        reloaded = client.call(_request(client, pair), timeout_sec=60)
        assert reloaded.status.code == SUCCESS, reloaded.message

        assert lifecycle.change("deactivate") and lifecycle.change("cleanup")
        assert lifecycle.change("shutdown")
        assert lifecycle.state() == "finalized"
    finally:
        client.destroy()
    assert node.alive()
    assert node.stop() == 0, node.log()


def test_a_configure_that_cannot_load_fails_back_to_unconfigured(lifecycle_node):
    node, lifecycle = lifecycle_node(["-p", "profile:=no_such_profile"], "/broken")
    assert lifecycle.state() == "unconfigured"
    assert not lifecycle.change("configure")
    assert lifecycle.state() == "unconfigured"
    assert "configure failed" in node.log() and "no_such_profile" in node.log()
    assert node.alive()
