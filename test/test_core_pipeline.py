"""The pipeline's flow on the CPU profile, and the keyframe buffer (no ROS)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import read_rgb


def keyframes(pair):
    from posecrafter_ros.core.types import Keyframe

    return Keyframe(read_rgb(pair.image0), pair.K0, "a"), Keyframe(
        read_rgb(pair.image1), pair.K1, "b"
    )


@pytest.fixture(scope="module")
def cpu_pipeline():
    from posecrafter_ros.pipeline import Pipeline

    return Pipeline.from_profile("cpu").load()


def test_overlapping_pair_is_answered_directly(cpu_pipeline, posed_pairs):
    from posecrafter_ros.core.types import EstimateOptions, Status
    from posecrafter_ros.eval.metrics import rotation_error_deg, translation_angle_deg

    pair = posed_pairs["templeR0001-templeR0003"]
    result = cpu_pipeline.estimate(*keyframes(pair))
    assert result.status == Status.SUCCESS, result.message
    R_0to1, t_0to1 = result.pose.to_epipolar()
    assert rotation_error_deg(R_0to1, pair.R_0to1) < 2.0
    assert translation_angle_deg(t_0to1, pair.t_0to1) < 5.0  # direction, not just the axis
    assert result.diagnostics.path == "direct"
    assert [s.name for s in result.diagnostics.stages] == ["validate", "direct"]
    forced = cpu_pipeline.estimate(*keyframes(pair), EstimateOptions(force_bridge=True))
    assert forced.status == Status.INSUFFICIENT_OVERLAP
    assert "bridge forced" in forced.message and "not configured" in forced.message


def test_extreme_pair_reports_missing_bridge(cpu_pipeline, posed_pairs):
    from posecrafter_ros.core.types import Status

    result = cpu_pipeline.estimate(*keyframes(posed_pairs["templeR0001-templeR0013"]))
    assert result.status == Status.INSUFFICIENT_OVERLAP
    assert "generative bridge is not configured" in result.message
    assert result.diagnostics.path == "none"


@pytest.mark.parametrize(
    "image,K,needle",
    [
        (np.zeros((10, 10, 3), np.uint8), np.eye(3), "smaller than 32x32"),
        (np.zeros((64, 64, 3), np.float32), np.eye(3), "uint8"),
        (np.zeros((64, 64, 4), np.uint8), np.eye(3), "HxWx3"),
        (np.zeros((64, 64), np.uint8), np.diag([0.0, 1.0, 1.0]), "positive"),
        (
            np.zeros((64, 64), np.uint8),
            np.array([[50, 0, 500], [0, 50, 32], [0, 0, 1.0]]),
            "outside",
        ),
        (np.zeros((64, 64), np.uint8), np.full((3, 3), np.nan), "finite"),
    ],
)
def test_invalid_keyframes_are_rejected(cpu_pipeline, image, K, needle):
    from posecrafter_ros.core.types import Keyframe, Status

    good = Keyframe(np.zeros((64, 64), np.uint8), np.array([[50, 0, 32], [0, 50, 32], [0, 0, 1.0]]))
    result = cpu_pipeline.estimate(Keyframe(image, K), good)
    assert result.status == Status.INVALID_REQUEST
    assert needle in result.message


def test_stage_exception_becomes_internal_error(posed_pairs, monkeypatch):
    from posecrafter_ros import pipeline as pipeline_module
    from posecrafter_ros.core.types import Status

    def explode(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pipeline_module, "estimate_two_view", explode)
    result = (
        pipeline_module.Pipeline.from_profile("cpu")
        .load()
        .estimate(*keyframes(posed_pairs["templeR0001-templeR0003"]))
    )
    assert result.status == Status.INTERNAL_ERROR
    assert "stage 'direct'" in result.message and "out of memory" in result.message


def test_budget_and_cancel_become_statuses(cpu_pipeline, posed_pairs):
    from posecrafter_ros.core.types import RunContext, Status

    kf = keyframes(posed_pairs["templeR0001-templeR0003"])
    canceled = RunContext()
    canceled.cancel()
    assert cpu_pipeline.estimate(*kf, ctx=canceled).status == Status.CANCELED
    expired = RunContext(budget_sec=1e-9)
    assert cpu_pipeline.estimate(*kf, ctx=expired).status == Status.TIMEOUT


def test_unknown_stage_type_is_reported_not_raised():
    from posecrafter_ros.pipeline import Pipeline

    pipe = Pipeline.from_profile(
        "cpu", {"bridge": {"enabled": True, "interpolator": {"type": "sora"}}}
    ).load()
    assert "unknown interpolator type 'sora'" in pipe.unavailable["interpolator"]
    with pytest.raises(FileNotFoundError, match="known:"):
        Pipeline.from_profile("no_such_profile")


def test_relay_indices_follow_the_paper():
    from posecrafter_ros.stages.relay_pose import relay_indices

    assert relay_indices(16, 4) == [0, 1, 14, 15]
    assert relay_indices(16, 2) == [0, 15]
    assert relay_indices(16, 8) == [0, 1, 2, 3, 12, 13, 14, 15]
    assert relay_indices(3, 4) == [0, 2]


def test_keyframe_buffer_lookup_and_bounds():
    from posecrafter_ros.core.keyframe_buffer import KeyframeBuffer
    from posecrafter_ros.core.types import Keyframe

    buf = KeyframeBuffer(max_frames=3, max_keyframes=2, tolerance_ns=10, jpeg_quality=0)
    frames = [
        Keyframe(np.full((2, 2), s // 100, np.uint8), np.eye(3), stamp_ns=s)
        for s in (300, 100, 200, 400)
    ]
    for f in frames:
        buf.add(f)
    assert len(buf) == 3 and buf.stamp_range() == (200, 400)  # the oldest stamp was evicted
    assert buf.by_stamp(100) is None
    assert buf.by_stamp(205).stamp_ns == 200 and buf.by_stamp(395).stamp_ns == 400
    assert np.array_equal(buf.by_stamp(395).image, frames[3].image)  # raw storage is exact
    assert buf.by_stamp(215) is None
    assert [f.stamp_ns for f in buf.between(400, 200)] == [300]
    for name in ("a", "b", "c"):
        buf.add_named(name, frames[0])
    assert buf.by_id("a") is None and buf.by_id("c").stamp_ns == 300
    with pytest.raises(ValueError):
        KeyframeBuffer(max_frames=0)
    with pytest.raises(ValueError):
        KeyframeBuffer(max_megabytes=0)


def test_keyframe_buffer_memory_bound_compression_and_keyframes_between():
    from posecrafter_ros.core.keyframe_buffer import KeyframeBuffer
    from posecrafter_ros.core.types import Keyframe

    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), np.uint8), (0, 0), 3)
    K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    raw_mb = smooth.nbytes / 1e6
    # Room for 4 raw frames of 0.92 MB: raw storage keeps 4, JPEG copies keep all 10.
    raw = KeyframeBuffer(max_megabytes=4 * raw_mb + 0.01, jpeg_quality=0)
    jpeg = KeyframeBuffer(max_megabytes=4 * raw_mb + 0.01, jpeg_quality=90)
    for k in range(10):
        raw.add(Keyframe(smooth, K, "cam", 1000 + k))
        jpeg.add(Keyframe(smooth, K, "cam", 1000 + k))
    assert len(raw) == 4 and raw.stamp_range() == (1006, 1009)
    assert len(jpeg) == 10 and jpeg.megabytes() < 4 * raw_mb
    decoded = jpeg.by_stamp(1003)
    assert decoded.image.shape == smooth.shape
    assert np.abs(decoded.image.astype(int) - smooth).mean() < 3.0
    # Downscaled copies: intrinsics scaled with the image (pixel-centre convention).
    small = KeyframeBuffer(max_side=320)
    small.add(Keyframe(smooth, K, "cam", 5))
    half = small.by_stamp(5)
    assert half.image.shape == (240, 320, 3)
    assert np.allclose(half.K, [[250.0, 0, 159.5], [0, 250.0, 119.5], [0, 0, 1]])
    # SLAM keyframes stamped between A and B join the image frames, in time order.
    jpeg.add_named("kf_mid", Keyframe(smooth, K, "cam", 1004))  # same stamp: counted once
    jpeg.add_named("kf_new", Keyframe(smooth, K, "cam", 1007))
    jpeg.add_named("kf_far", Keyframe(smooth, K, "cam", 2000))
    assert [f.stamp_ns for f in jpeg.between(1002, 1006)] == [1003, 1004, 1005]
    jpeg.add_named("kf_only", Keyframe(smooth, K, "kf", 1500))
    between = jpeg.between(1008, 1600, with_keyframes=True)
    assert [(f.stamp_ns, f.frame_id) for f in between] == [(1009, "cam"), (1500, "kf")]


def test_run_context_subspans_map_progress_into_the_stage():
    from posecrafter_ros.core.types import RunContext

    seen = []
    ctx = RunContext(progress=lambda stage, frac, overall: seen.append((stage, frac, overall)))
    ctx.begin_stage("synthesize", 0.2, 0.6)
    with ctx.subspan(0.5, 1.0):
        ctx.report(0.5)
        with ctx.subspan(0.0, 0.5):
            ctx.report(1.0)
    ctx.report(0.1)
    assert seen[0] == ("synthesize", 0.0, 0.2)
    assert seen[1] == pytest.approx(("synthesize", 0.75, 0.5))
    assert seen[2] == pytest.approx(("synthesize", 0.75, 0.5))
    assert seen[3] == pytest.approx(("synthesize", 0.1, 0.24))


def test_relay_frames_are_the_inputs_at_the_ends_and_video_frames_next_to_them():
    """{I0, I1, I_T-1, I_T}: I0 and I_T are A and B cover-cropped to the video's 512x320
    (not the video model's regenerated end frames); I1 and I_T-1 come from the video."""
    from posecrafter_ros.core.imageops import resize_to_model
    from posecrafter_ros.core.types import Keyframe
    from posecrafter_ros.stages.relay_pose import relay_frames

    rng = np.random.default_rng(0)
    a = Keyframe(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), np.eye(3) * 900, "a", 10)
    a.K[2, 2], a.K[0, 2], a.K[1, 2] = 1.0, 640.0, 360.0
    b = Keyframe(rng.integers(0, 256, (480, 640), dtype=np.uint8), a.K / 2, "b", 20)
    b.K[2, 2] = 1.0
    video = [
        Keyframe(np.full((320, 512, 3), i, np.uint8), np.eye(3), "a", 10 + i) for i in range(16)
    ]
    relay = relay_frames(a, b, video, 4)
    assert len(relay) == 4
    expected_a, K_a, _ = resize_to_model(a.image, a.K)
    np.testing.assert_array_equal(relay[0].image, expected_a)
    np.testing.assert_allclose(relay[0].K, K_a)
    assert relay[0].image.shape == relay[-1].image.shape == (320, 512, 3)
    grey_b = np.repeat(b.image[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(relay[-1].image, resize_to_model(grey_b, b.K)[0])
    assert (relay[-1].frame_id, relay[-1].stamp_ns) == ("b", 20)
    assert relay[1] is video[1] and relay[2] is video[14]


def test_oracle_failure_falls_back_to_the_generative_bridge(posed_pairs):
    """With both sources configured (as the gpu profile), real frames that do not bridge the
    pair hand over to HVG, and the message says so."""
    from posecrafter_ros.core.types import EstimateOptions, Keyframe, Status
    from posecrafter_ros.pipeline import Pipeline

    a, b = keyframes(posed_pairs["templeR0001-templeR0013"])
    sequence = [Keyframe(a.image.copy(), a.K, f"seq-{i}", i) for i in range(3)]
    overrides = {
        "bridge": {
            "oracle": True,
            "pose_model": {"type": "fault_stages:pose_failing_on_sequence_frames"},
        }
    }
    pipeline = Pipeline.from_profile("tiny", overrides).load()
    options = EstimateOptions(force_bridge=True)
    result = pipeline.estimate(a, b, options, sequence=sequence)
    assert result.status == Status.SUCCESS, result.message
    assert "the oracle bridge failed (the real frames do not connect)" in result.message
    assert "fell back to the generative bridge" in result.message
    stages = [s.name for s in result.diagnostics.stages]
    assert stages.index("oracle_candidates") < stages.index("interpolate")
    # Without the generative bridge, the oracle's failure is the answer.
    no_hvg = Pipeline.from_profile("tiny", {"bridge": {**overrides["bridge"], "enabled": False}})
    result = no_hvg.load().estimate(a, b, options, sequence=sequence)
    assert result.status == Status.INSUFFICIENT_OVERLAP
    assert "the real frames do not connect" in result.message


def test_the_generative_bridge_poses_the_inputs_not_the_regenerated_end_frames(posed_pairs):
    """Wiring of relay_frames: the relay poser receives A and B (cover-cropped), and the
    interpolated frames 1 and T-2 between them."""
    from posecrafter_ros.core.imageops import resize_to_model
    from posecrafter_ros.core.types import EstimateOptions, Status
    from posecrafter_ros.pipeline import Pipeline

    a, b = keyframes(posed_pairs["templeR0001-templeR0013"])
    pipeline = Pipeline.from_profile("tiny").load()
    seen = {}
    interpolate = pipeline.stages["interpolator"].interpolate
    reconstruct = pipeline.stages["relay_poser"].reconstruct

    def recording_interpolate(*args):
        seen["video"] = interpolate(*args)
        return seen["video"]

    def recording_reconstruct(frames, ctx):
        seen["relay"] = list(frames)
        return reconstruct(frames, ctx)

    pipeline.stages["interpolator"].interpolate = recording_interpolate
    pipeline.stages["relay_poser"].reconstruct = recording_reconstruct
    result = pipeline.estimate(a, b, EstimateOptions(force_bridge=True))
    assert result.status == Status.SUCCESS, result.message
    video, relay = seen["video"], seen["relay"]
    height, width = video[0].image.shape[:2]
    for end, frame in ((a, relay[0]), (b, relay[-1])):
        np.testing.assert_array_equal(
            frame.image, resize_to_model(end.image, end.K, (width, height))[0]
        )
    assert relay[1] is video[1] and relay[2] is video[-2]


def test_a_typo_in_any_profile_section_names_the_section_and_the_valid_keys():
    from posecrafter_ros.pipeline import Pipeline

    # A stage's section: the stage is unavailable with the reason; the rest keeps serving.
    pipe = Pipeline.from_profile("tiny", {"bridge": {"interpolator": {"ddim_step": 3}}}).load()
    reason = pipe.unavailable["interpolator"]
    assert "['ddim_step']" in reason and "bridge.interpolator" in reason and "ddim_steps" in reason
    assert "synthesizer" in pipe.stages and "pose_model" in pipe.stages
    pipe = Pipeline.from_profile(
        "tiny", {"bridge": {"synthesizer": {"generator": {"ddim_step": 3}}}}
    ).load()
    assert "bridge.synthesizer.generator" in pipe.unavailable["synthesizer"]
    pipe = Pipeline.from_profile(
        "tiny", {"bridge": {"synthesizer": {"render": {"point_radus": 2}}}}
    ).load()
    assert "synthesizer.render" in pipe.unavailable["synthesizer"]
    assert "point_radius" in pipe.unavailable["synthesizer"]
    # The CPU bridge's back half: FMS and the COLMAP pose model.
    pipe = Pipeline.from_profile(
        "cpu", {"bridge": {"selector": {"type": "fms", "topk": 3}, "pose_model": {"pair_windw": 2}}}
    ).load()
    assert "bridge.selector (fms)" in pipe.unavailable["selector"]
    assert "'top_k'" in pipe.unavailable["selector"]
    assert "bridge.pose_model (colmap)" in pipe.unavailable["pose_model"]
    assert "'pair_window'" in pipe.unavailable["pose_model"]
    # The profile's own keys are checked when it is read.
    with pytest.raises(ValueError, match=r"in the profile; valid keys: .*'device'"):
        Pipeline.from_profile("cpu", {"devise": "cuda"})
    with pytest.raises(ValueError, match=r"in bridge; valid keys: .*'num_relay_frames'"):
        Pipeline.from_profile("cpu", {"bridge": {"num_relay_frame": 2}})


def test_a_typo_in_the_direct_sections_is_an_error():
    from posecrafter_ros.core.twoview import resolve_conf

    with pytest.raises(ValueError, match=r"direct.geometry; valid keys"):
        resolve_conf({"geometry": {"no_such_key": 1}})
    with pytest.raises(ValueError, match=r"direct.gate; valid keys"):
        from posecrafter_ros.core.gate import GateConf

        GateConf.from_dict({"no_such_key": 1})


def test_profile_device_and_dtype_reach_the_model_stages():
    from posecrafter_ros.stages import Placement, build_stage

    placement = Placement(device="cpu", dtype="bfloat16")
    section = {"type": "dust3r", "tiny": True, "image_size": 64, "niter": 2}
    assert build_stage("relay_poser", section, placement).config.dtype == "bfloat16"
    synthesizer = build_stage(
        "synthesizer",
        {
            "type": "viewcrafter",
            "generator": {"tiny": True},
            "render": {"height": 64, "width": 128},
        },
        placement,
    )
    assert synthesizer.generator.conf.dtype == "bfloat16"
    # A stage's own section wins over the profile's placement.
    section = {**section, "dtype": "float32"}
    assert build_stage("pose_model", section, placement).config.dtype == "float32"


def test_gpu_profile_has_the_paper_settings():
    """PoseCrafter's settings (paper section 4): 16-frame DynamiCrafter interpolation at
    512x320, 4 relay frames, 25-frame ViewCrafter clips, FMS with ORB 2000 keeping k = 6."""
    from posecrafter_ros.pipeline import load_profile
    from posecrafter_ros.stages.select import FeatureMatchingSelector

    bridge = load_profile("gpu")["bridge"]
    assert bridge["num_relay_frames"] == 4
    interpolator, render = bridge["interpolator"], bridge["synthesizer"]["render"]
    assert interpolator["num_frames"] == 16
    assert (interpolator["height"], interpolator["width"]) == (320, 512)
    assert render["num_frames"] == 25 and (render["height"], render["width"]) == (320, 512)
    for conf in (bridge["selector"], {}):  # the profile's selector and the FMS defaults
        fms = FeatureMatchingSelector.from_config(conf).conf
        assert fms.top_k == 6, conf
        assert (fms.matcher["name"], fms.matcher["num_features"]) == ("orb", 2000), conf


def _fountain_with_focal_twice_too_long():
    from pathlib import Path

    from posecrafter_ros.core.types import Keyframe
    from posecrafter_ros.eval.datasets import load_middlebury
    from posecrafter_ros.eval.frames import view_keyframe

    frames = []
    for view in load_middlebury(Path(__file__).parent / "data" / "fountain")[:2]:
        keyframe = view_keyframe(view)
        K = keyframe.K.copy()
        K[:2, :2] *= 2.0
        frames.append(Keyframe(keyframe.image, K))
    return frames


def test_intrinsics_the_images_contradict_are_an_invalid_request(cpu_pipeline):
    """fountain-P11 2-5 with a focal length twice too long, no bridge to try: not SUCCESS, and
    the message names the cause."""
    from posecrafter_ros.core.types import Status

    result = cpu_pipeline.estimate(*_fountain_with_focal_twice_too_long())
    assert result.status == Status.INVALID_REQUEST, result.message
    assert "intrinsics" in result.message and "focal length" in result.message
    assert result.pose is None


def test_disputed_intrinsics_still_let_the_bridge_try_and_say_so():
    """A wide pair with the right intrinsics can be flagged by the direct path's focal check, so
    a flagged pair still goes to the bridge (here the tiny profile's generative one); its
    answer says that it rests on the intrinsics the direct path's matches disputed."""
    from posecrafter_ros.core.types import Status
    from posecrafter_ros.pipeline import Pipeline

    pipeline = Pipeline.from_profile("tiny").load()
    result = pipeline.estimate(*_fountain_with_focal_twice_too_long())
    assert result.diagnostics.path == "bridge", result.message
    assert result.status == Status.SUCCESS, result.message
    assert "likely wrong" in result.message
    assert "the bridge used the same intrinsics" in result.message
