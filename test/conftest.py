"""Shared fixtures: fixture data, and real posecrafter nodes on a private loopback DDS domain."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "test" / "data"
POSED_PAIRS = DATA / "posed_pairs_fixture"

# Keep DDS on this machine and away from other test sessions (set before rclpy loads): a
# random domain in 1..232 (0 is every unconfigured tool's) and unique node namespaces, so
# concurrent sessions that happen to draw the same domain still do not talk to each other.
os.environ["ROS_DOMAIN_ID"] = str(1 + int.from_bytes(os.urandom(4), "little") % 232)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"
# The test process and the node processes share 2 cores: one intra-op thread each avoids the
# oversubscription that makes small torch models ten times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Ray drivers (tests, nodes) and local instances stay on loopback: with this off, Ray resolves
# 127.0.0.1 to itself instead of to this machine's outward address (see test/ray_cluster.py).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# The test clusters live and die with the tests: no token (Ray >= 2.59 turns token auth on for
# `ray start --head` whenever ~/.ray/auth_token exists, which any local ray.init() writes).
os.environ["RAY_AUTH_MODE"] = "disabled"


def _ros_available() -> bool:
    try:
        import rclpy  # noqa: F401

        from posecrafter_ros.srv import EstimateRelativePose  # noqa: F401
    except ImportError:
        return False
    return True


ROS_AVAILABLE = _ros_available()
from posecrafter_ros.eval.frames import read_rgb  # noqa: E402,F401 (shared by the tests)

requires_ros = pytest.mark.skipif(
    not ROS_AVAILABLE, reason="rclpy / posecrafter_ros interfaces not installed (run make test)"
)


@pytest.fixture(scope="session")
def posed_pairs():
    from posecrafter_ros.eval.datasets import load_posed_pairs

    return {p.name: p for p in load_posed_pairs(POSED_PAIRS)}


@pytest.fixture(scope="session")
def rclpy_context():
    import rclpy

    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture(scope="session")
def start_node(tmp_path_factory, rclpy_context):
    """Factory: start_node(ros_args, namespace) -> (NodeProcess, PoseCrafterClient), ready to call."""
    from posecrafter_ros.ros.client import PoseCrafterClient
    from posecrafter_ros.ros.launcher import NodeProcess

    started = []

    def _start(ros_args: list[str] | None = None, namespace: str = "", timeout: float = 60.0):
        log = tmp_path_factory.mktemp("node") / "node.log"
        args = (
            ros_args
            if ros_args is not None
            else ["--params-file", str(REPO / "config" / "cpu.yaml")]
        )
        node = NodeProcess(args, namespace or f"/t{uuid.uuid4().hex[:12]}", log)
        client = PoseCrafterClient(service=node.service)
        started.append((node, client))
        deadline = time.monotonic() + timeout
        while not client.wait(1.0):
            if node.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node did not come up:\n{node.log()}")
        return node, client

    yield _start
    for node, client in started:
        client.destroy()
        node.stop()


@pytest.fixture(scope="module")
def cluster():
    """A real Ray cluster per test module: a head and a worker node, separate processes on
    loopback (test/ray_cluster.py); checks at teardown that none of its processes is left."""
    from ray_cluster import LocalRayCluster

    cluster = LocalRayCluster(head_cpus=1, worker_cpus=1)
    try:
        cluster.start()
        yield cluster
    finally:
        assert cluster.stop() == [], "Ray processes outlived their process groups"
