"""Property-based fuzzing of request validation through the real service (issue: hardening).

Over 1,000 generated malformed requests (encodings, steps, sizes, NaN/inf/zero intrinsics,
empty and huge images, mismatched sizes, unknown stamps/ids, odd budgets) go to a live node:
every one must be answered with the status its malformation calls for (an independent model
of the message rules below, not the node's code), the node must not crash, and the next valid
request must succeed.
"""

from __future__ import annotations

import collections
import math
import types

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


SUPPORTED = {  # encoding -> (channels, bytes per channel): what the node documents it decodes
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "8UC3": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "8UC1": (1, 1),
    "mono16": (1, 2),
    "16UC1": (1, 2),
}
MAX_PIXELS = 8192 * 8192
MIN_SIDE = 32  # the pipeline's smallest usable image
SUCCESS, INVALID_REQUEST, KEYFRAME_NOT_FOUND, INSUFFICIENT_OVERLAP = 0, 1, 2, 3
MODEL_UNAVAILABLE, TIMEOUT = 4, 6


def decodable(ref) -> bool:
    """An inline keyframe the node can turn into an image + pinhole K (sensor_msgs rules)."""
    img, info = ref.image, ref.camera_info
    if img.encoding not in SUPPORTED or img.width <= 0 or img.height <= 0:
        return False
    channels, depth = SUPPORTED[img.encoding]
    if img.width * img.height > MAX_PIXELS or img.step < img.width * channels * depth:
        return False
    if len(img.data) != img.step * img.height:
        return False
    k = list(info.k)
    if not all(math.isfinite(v) for v in k) or k[0] <= 0 or k[4] <= 0:
        return False
    if k[8] != 1.0 or k[3] != 0 or k[6] != 0 or k[7] != 0:
        return False
    return (info.width, info.height) in ((0, 0), (img.width, img.height))


def usable(ref) -> bool:
    """A decoded keyframe the pipeline accepts: big enough, principal point inside."""
    img, k = ref.image, list(ref.camera_info.k)
    return (
        min(img.width, img.height) >= MIN_SIDE
        and 0 <= k[2] <= img.width
        and 0 <= k[5] <= img.height
    )


def expected_statuses(a, b, budget: float) -> set[int]:
    """A is resolved before B and the first failure answers; the buffer of the fuzzed node is
    empty (nothing publishes to it), so every stamp or id is unknown. Once both are decoded the
    pipeline runs under the budget: one of a few milliseconds may run out before validation."""
    for ref in (a, b):
        if ref.source in (1, 2):
            return {KEYFRAME_NOT_FOUND}
        if ref.source != 0 or not decodable(ref):
            return {INVALID_REQUEST}
    if not (usable(a) and usable(b)):
        return {INVALID_REQUEST, TIMEOUT} if 0 < budget < 0.1 else {INVALID_REQUEST}
    # Well-formed noise images: answered, refused for lack of overlap, out of a tiny budget,
    # or (forced bridge) without one; never a validation or internal error.
    return {SUCCESS, INSUFFICIENT_OVERLAP, MODEL_UNAVAILABLE, TIMEOUT}


@st.composite
def wild_image_and_info(draw):
    """Anything goes: sizes, steps, byte counts, encodings and K drawn independently."""
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
    chunk = draw(st.binary(min_size=1, max_size=64))  # exactly n_bytes of repeated noise
    img.data = (chunk * (n_bytes // len(chunk) + 1))[:n_bytes]
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


FLAWS = (
    "encoding",
    "step",
    "truncated",
    "extra_bytes",
    "empty",
    "tiny",
    "k_not_finite",
    "k_focal",
    "k_not_pinhole",
    "k_center_outside",
    "info_size",
)


FLAWS_DRAWN: collections.Counter[str] = collections.Counter()


@st.composite
def flawed_image_and_info(draw):
    """A well-formed keyframe with none, one or two flaws: each flaw alone must make the
    request INVALID_REQUEST, a keyframe without one must pass validation."""
    from sensor_msgs.msg import CameraInfo, Image

    flaws = set(draw(st.sampled_from([*([f] for f in FLAWS), []])))
    if draw(st.integers(0, 3)) == 0:  # sometimes a second flaw
        flaws.add(draw(st.sampled_from(FLAWS)))
    encoding = draw(st.sampled_from(sorted(SUPPORTED)))
    channels, depth = SUPPORTED[encoding]
    w, h = draw(st.integers(MIN_SIDE, 80)), draw(st.integers(MIN_SIDE, 80))
    if "tiny" in flaws:
        w = draw(st.integers(1, MIN_SIDE - 1))
    if "empty" in flaws:
        w = 0
    step = w * channels * depth + draw(st.sampled_from([0, 0, 8]))  # rows may be padded
    if "step" in flaws and w > 0:
        step = w * channels * depth - draw(st.integers(1, w * channels * depth))
    n_bytes = step * h
    if "truncated" in flaws and n_bytes > 0:
        n_bytes -= draw(st.integers(1, n_bytes))
    elif "extra_bytes" in flaws:  # (both together could cancel out)
        n_bytes += draw(st.integers(1, 100))
    if "encoding" in flaws:
        encoding = draw(st.sampled_from(["yuv422", "32FC1", "", "RGB8", "bayer_rggb8"]))
    img = Image(width=w, height=h, encoding=encoding, step=step)
    img.is_bigendian = draw(st.integers(0, 1))
    chunk = draw(st.binary(min_size=1, max_size=64))
    img.data = (chunk * (n_bytes // len(chunk) + 1))[:n_bytes]
    k = [50.0, 0.0, w / 2, 0.0, 50.0, h / 2, 0.0, 0.0, 1.0]
    if "k_not_finite" in flaws:
        k[draw(st.integers(0, 8))] = draw(st.sampled_from([float("nan"), float("inf")]))
    if "k_focal" in flaws:
        k[draw(st.sampled_from([0, 4]))] = draw(st.sampled_from([0.0, -50.0]))
    if "k_not_pinhole" in flaws:
        index, value = draw(st.sampled_from([(8, 0.0), (8, 2.0), (3, 0.5), (6, 0.1), (7, -0.1)]))
        k[index] = value
    if "k_center_outside" in flaws:
        k[2] = draw(st.sampled_from([-5.0, w + 5.0]))
    size = draw(st.sampled_from([(w, h), (0, 0)]))
    if "info_size" in flaws:
        size = draw(st.sampled_from([(w + 1, h), (w, h - 1), (0, h), (2 * w, 2 * h)]))
    info = CameraInfo(width=size[0], height=size[1], k=k)
    return img, info, flaws


@st.composite
def image_and_info(draw):
    if draw(st.booleans()):
        return draw(wild_image_and_info())
    img, info, flaws = draw(flawed_image_and_info())
    ref = types.SimpleNamespace(image=img, camera_info=info)
    # The test's own model must agree with how the keyframe was built.
    assert (decodable(ref) and usable(ref)) == (not flaws), flaws
    FLAWS_DRAWN.update(flaws)
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
    decoded = [0]  # inline keyframes that pass decoding: the malformations past the first check

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
        expected = expected_statuses(a, b, budget)
        assert response.status.code in expected, (response.status.code, expected, response.message)
        assert response.message
        assert all(math.isfinite(v) for v in response.pose.pose.covariance)
        seen[response.status.code] = seen.get(response.status.code, 0) + 1
        decoded[0] += sum(r.source == 0 and decodable(r) for r in (a, b))

    check()
    assert sum(seen.values()) >= 1000
    assert seen.get(1, 0) > 500, seen  # most generated requests are malformed
    assert decoded[0] > 50, decoded  # ... but many only by their size, K or image content
    assert all(FLAWS_DRAWN[flaw] >= 10 for flaw in FLAWS), FLAWS_DRAWN
    assert node.proc.poll() is None, node.log()
    pair = posed_pairs["templeR0001-templeR0003"]
    valid = client.request(
        inline_ref(read_rgb(pair.image0), pair.K0), inline_ref(read_rgb(pair.image1), pair.K1)
    )
    assert client.call(valid, timeout_sec=30).status.code == 0
    print(f"status counts over {sum(seen.values())} fuzzed requests: {dict(sorted(seen.items()))}")
