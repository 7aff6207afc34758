"""Faults through the real node: model failures, OOM, timeouts, cancel, busy, vanishing
clients, node restarts, missing / corrupt / wrong checkpoints. Each ends in a defined status
and the node keeps serving."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, read_rgb, requires_ros

pytestmark = [requires_ros, pytest.mark.ros]

SUCCESS, MODEL_UNAVAILABLE, BUSY, TIMEOUT, CANCELED, INTERNAL_ERROR = 0, 4, 5, 6, 7, 8
TEST_DIR = Path(__file__).resolve().parent


def fault_profile(tmp_path: Path, mode: str, **interpolator) -> Path:
    stub = {"type": "fault_stages:never_reached"}
    profile = {
        "name": f"fault_{mode}",
        "bridge": {
            "enabled": True,
            "oracle": False,
            "interpolator": {"type": "fault_stages:interpolator", "mode": mode, **interpolator},
            "relay_poser": stub,
            "synthesizer": stub,
            "selector": stub,
            "pose_model": stub,
        },
    }
    path = tmp_path / f"fault_{mode}.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


@pytest.fixture()
def fault_node(start_node, tmp_path, monkeypatch):
    """start(mode, extra ros args, **interpolator conf) -> (node, client) with the faulty
    interpolator configured."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TEST_DIR), os.environ.get("PYTHONPATH", "")])
    )

    def start(mode: str, *extra: str, **interpolator):
        args = [
            "--params-file",
            str(REPO / "config/cpu.yaml"),
            "-p",
            f"profile:={fault_profile(tmp_path, mode, **interpolator)}",
            *extra,
        ]
        return start_node(args)

    return start


def pair_request(client, pair, force_bridge=True, budget=0.0):
    from posecrafter_ros.ros.client import inline_ref

    a = inline_ref(read_rgb(pair.image0), pair.K0, "a")
    b = inline_ref(read_rgb(pair.image1), pair.K1, "b")
    return client.request(a, b, force_bridge, budget)


@pytest.mark.parametrize("mode,needle", [("raise", "injected failure"), ("oom", "out of memory")])
def test_model_failure_mid_request_is_internal_error(fault_node, posed_pairs, mode, needle):
    node, client = fault_node(mode)
    pair = posed_pairs["templeR0001-templeR0003"]
    resp = client.call(pair_request(client, pair), timeout_sec=30)
    assert (
        resp.status.code == INTERNAL_ERROR
        and needle in resp.message
        and "interpolate" in resp.message
    )
    ok = client.call(pair_request(client, pair, force_bridge=False), timeout_sec=30)
    assert ok.status.code == SUCCESS and node.alive()


ENDLESS = 10**6  # interpolation steps of 0.1 s: only a cancel or a budget ends the request


def test_budget_stops_the_work_with_timeout(fault_node, posed_pairs):
    _, client = fault_node("slow", steps=ENDLESS)
    # The budget must outlast validation and the direct path (~0.2 s; far more on a loaded
    # machine) so that it runs out inside the endless interpolation.
    resp = client.call(
        pair_request(client, posed_pairs["templeR0001-templeR0003"], budget=10.0),
        timeout_sec=120,
    )
    # Without the budget the stage would run for a day: an answer at all means it was stopped.
    assert resp is not None, "the budget did not stop the work"
    assert resp.status.code == TIMEOUT, resp.message
    assert "interpolate" in resp.message


def test_action_cancel_during_bridge(fault_node, posed_pairs):
    _, client = fault_node("slow", steps=ENDLESS)
    result, feedback = client.call_action(
        pair_request(client, posed_pairs["templeR0001-templeR0003"]),
        timeout_sec=120,
        cancel_after_feedback=6,
    )
    assert result is not None, "the cancel did not stop the work"
    assert result.status.code == CANCELED, result
    assert any(f.stage == "interpolate" for f in feedback)


def wait_until(condition, timeout_sec: float, what: str) -> None:
    deadline = time.monotonic() + timeout_sec
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def test_busy_beyond_concurrency_limit_and_vanishing_client(fault_node, posed_pairs, tmp_path):
    """With 2 slots: one held request leaves room for another; two held requests make the
    next one BUSY. Each holding request has entered the node's stage (a file it writes) before
    the probe, and stays there until the test releases it, so no ordering is left to luck."""
    from posecrafter_ros.ros.client import PoseCrafterClient

    gate = tmp_path / "gate"
    gate.mkdir()
    node, client = fault_node("hold", "-p", "max_concurrent_requests:=2", gate_dir=str(gate))
    pair = posed_pairs["templeR0001-templeR0003"]

    def direct_status() -> int:
        resp = client.call(pair_request(client, pair, force_bridge=False), timeout_sec=60)
        assert resp is not None, "no answer"
        return resp.status.code

    def entered() -> int:
        return len(list(gate.glob("entered-*")))

    leavers = []
    for held in (1, 2):
        leaver = PoseCrafterClient(service=node.service)
        assert leaver.wait(60), "leaver: service did not answer a probe"
        leaver.service.call_async(pair_request(leaver, pair))  # held in the bridge ...
        leavers.append(leaver)
        wait_until(lambda n=held: entered() == n, 60, f"{held} request(s) hold a slot")
        expected = SUCCESS if held < 2 else BUSY
        assert direct_status() == expected, f"{held} of 2 slots taken"
    for leaver in leavers:
        leaver.destroy()  # ... whose clients vanish while the node works on them
    (gate / "release").touch()
    # The released requests end and free their slots; the vanished clients get no answer.
    deadline = time.monotonic() + 60
    while (status := direct_status()) == BUSY:
        assert time.monotonic() < deadline, "the released requests never freed their slots"
        time.sleep(0.05)
    assert status == SUCCESS and entered() == 2 and node.alive()


def test_node_restart_while_a_client_waits(start_node, posed_pairs):
    node, client = start_node()
    pair = posed_pairs["templeR0001-templeR0003"]
    assert (
        client.call(pair_request(client, pair, force_bridge=False), timeout_sec=30).status.code
        == SUCCESS
    )
    assert node.stop() == 0
    assert (
        client.call(pair_request(client, pair, force_bridge=False), timeout_sec=2) is None
    )  # waits, then gives up
    from posecrafter_ros.ros.launcher import NodeProcess

    restarted = NodeProcess(["--params-file", str(REPO / "config/cpu.yaml")], node.namespace)
    try:
        assert client.wait(60)
        assert (
            client.call(pair_request(client, pair, force_bridge=False), timeout_sec=30).status.code
            == SUCCESS
        )
    finally:
        assert restarted.stop() == 0


def _gpu_node_on_cpu(start_node, checkpoint: Path):
    return start_node(
        [
            "--params-file",
            str(REPO / "config/gpu.yaml"),
            "-p",
            "device:=cpu",
            "-p",
            "dtype:=float32",
            "-p",
            f"checkpoints.dynamicrafter:={checkpoint}",
            "-p",
            f"checkpoints.viewcrafter:={checkpoint}",
            "-p",
            f"checkpoints.dust3r:={checkpoint}",
        ]
    )


@pytest.mark.parametrize("kind", ["missing", "corrupt", "wrong_keys"])
def test_bad_checkpoints_leave_the_direct_path_serving(start_node, posed_pairs, tmp_path, kind):
    torch = pytest.importorskip("torch")
    path = tmp_path / f"{kind}.safetensors"
    if kind == "corrupt":
        path.write_bytes(b"\x00garbage" * 100)
    elif kind == "wrong_keys":
        from safetensors.torch import save_file

        save_file({"not.a.model.key": torch.zeros(3)}, str(path))
    node, client = _gpu_node_on_cpu(start_node, path)
    pair = posed_pairs["templeR0001-templeR0003"]
    bridge = client.call(pair_request(client, pair, force_bridge=True), timeout_sec=60)
    assert bridge.status.code == MODEL_UNAVAILABLE, bridge.message
    assert "interpolator" in bridge.message
    expected = {"missing": "not found", "corrupt": "cannot read", "wrong_keys": "not.a.model.key"}[
        kind
    ]
    assert expected in bridge.message, bridge.message
    direct = client.call(pair_request(client, pair, force_bridge=False), timeout_sec=30)
    assert direct.status.code == SUCCESS and node.alive()
    # Each stage that cannot load is reported once, as a warning.
    reports = [line for line in node.log().splitlines() if "stage interpolator" in line]
    assert len(reports) == 1 and reports[0].startswith("[WARN]"), node.log()
