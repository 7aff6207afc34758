"""Property-based fuzzing of request validation through the real service (issue: hardening).

Over 1,000 generated malformed requests (encodings, steps, sizes, NaN/inf/zero intrinsics,
empty and huge images, mismatched sizes, unknown stamps/ids, odd budgets) go to a live node:
every one must be answered with a defined status and a message, the node must not crash,
and the next valid request must succeed.
"""

from __future__ import annotations

import math

import pytest
from conftest import read_rgb, requires_ros

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = [requires_ros, pytest.mark.ros, pytest.mark.slow]

ENCODINGS = [
    "rgb8",
    "bgr8",
    "mono8",
    "mono16",
    "rgba8",
    "bgra8",
    "8UC3",
    "16UC1",
    "yuv422",
    "32FC1",
    "",
    "RGB8",
    "bayer_rggb8",
]
ODD_FLOATS = st.sampled_from([0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-30, 1e30])
FLOATS = st.one_of(ODD_FLOATS, st.floats(-2000, 2000, allow_nan=False))


@st.composite
def image_and_info(draw):
    from sensor_msgs.msg import CameraInfo, Image

    w = draw(st.one_of(st.integers(0, 80), st.sampled_from([100000, 2**31 - 1])))
    h = draw(st.one_of(st.integers(0, 80), st.sampled_from([100000, 1])))
    encoding = draw(st.sampled_from(ENCODINGS))
    channels = {"mono8": 1, "mono16": 2, "16UC1": 2, "rgba8": 4, "bgra8": 4}.get(encoding, 3)
    step = draw(st.one_of(st.just(w * channels), st.integers(0, 400)))
    n_bytes = draw(
        st.one_of(st.just(step * h if step * h < 200_000 else 0), st.integers(0, 30_000))
    )
    img = Image(
        width=w, height=h, encoding=encoding, step=step, is_bigendian=draw(st.integers(0, 1))
    )
    img.data = (
        draw(st.binary(min_size=min(n_bytes, 64), max_size=min(n_bytes, 64))) * (n_bytes // 64)
        if n_bytes
        else b""
    )
    img.header.frame_id = draw(st.text(max_size=12))
    k = (
        [draw(FLOATS) for _ in range(9)]
        if draw(st.booleans())
        else [50.0, 0.0, w / 2, 0.0, 50.0, h / 2, 0.0, 0.0, 1.0]
    )
    info = CameraInfo(
        width=draw(st.sampled_from([w, 0, w + 1])),
        height=draw(st.sampled_from([h, 0, max(h - 1, 0)])),
        k=k,
    )
    return img, info


@st.composite
def keyframe_refs(draw):
    from posecrafter_ros.msg import KeyframeRef
    from posecrafter_ros.ros.client import stamp_msg

    source = draw(st.sampled_from([0, 0, 0, 1, 2, 3, 255]))
    ref = KeyframeRef(source=source)
    if source == 0:
        ref.image, ref.camera_info = draw(image_and_info())
    ref.stamp = stamp_msg((draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 999_999_999))))
    ref.id = draw(st.text(max_size=20))
    return ref


@pytest.fixture(scope="module")
def fuzz_target(start_node):
    return start_node()


def test_fuzzed_requests_always_get_a_defined_status(fuzz_target, posed_pairs):
    from posecrafter_ros.ros.client import inline_ref

    node, client = fuzz_target
    seen: dict[int, int] = {}

    @settings(
        max_examples=1000,
        deadline=None,
        derandomize=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(
        a=keyframe_refs(),
        b=keyframe_refs(),
        force=st.booleans(),
        budget=st.one_of(ODD_FLOATS, st.floats(0, 5)),
    )
    def check(a, b, force, budget):
        request = client.request(a, b, force, budget)
        response = client.call(request, timeout_sec=30)
        assert response is not None, "no answer"
        assert 0 <= response.status.code <= 8
        assert response.message
        assert all(math.isfinite(v) for v in response.pose.pose.covariance)
        seen[response.status.code] = seen.get(response.status.code, 0) + 1

    check()
    assert sum(seen.values()) >= 1000
    assert seen.get(1, 0) > 500, seen  # most generated requests are malformed
    assert node.proc.poll() is None, node.log()
    pair = posed_pairs["templeR0001-templeR0003"]
    valid = client.request(
        inline_ref(read_rgb(pair.image0), pair.K0), inline_ref(read_rgb(pair.image1), pair.K1)
    )
    assert client.call(valid, timeout_sec=30).status.code == 0
    print(f"status counts over {sum(seen.values())} fuzzed requests: {dict(sorted(seen.items()))}")
