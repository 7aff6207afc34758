"""HVG stage 2 end to end on a ray-cast synthetic scene (a textured room with a box inside)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from posecrafter_ros.core.types import Canceled, RunContext, SceneReconstruction
from posecrafter_ros.stages.synthesize import (
    PointCloudViewSynthesizer,
    RenderOnlyGenerator,
    ViewSynthesisConfig,
    fill_holes_nearest,
)

RELAY_WIDTH, RELAY_HEIGHT = 160, 120
RELAY_K = np.array([[110.0, 0.0, 79.5], [0.0, 110.0, 59.5], [0.0, 0.0, 1.0]])
MODEL_WIDTH, MODEL_HEIGHT = 128, 80
# 160x120 -> cover 128x80: scale 0.8 to 128x96, then 8 rows cropped top and bottom.
MODEL_K = np.array([[88.0, 0.0, 63.5], [0.0, 88.0, 39.5], [0.0, 0.0, 1.0]])

ROOM = (np.array([-3.0, -2.0, -2.0]), np.array([3.0, 2.0, 8.0]))
BOX = (np.array([-0.7, -0.5, 3.0]), np.array([0.5, 0.6, 4.0]))


def pose(yaw_deg: float, centre: tuple[float, float, float]) -> np.ndarray:
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3] = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    cam_to_world[:3, 3] = centre
    return cam_to_world


def texture(points: np.ndarray, on_box: np.ndarray) -> np.ndarray:
    """[... x 3] uint8 smooth colours of world points; the box uses its own pattern."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    room = np.stack(
        [
            np.sin(1.1 * x + 0.5 * z + 0.3),
            np.sin(1.3 * y + 0.4 * x + 1.0),
            np.sin(0.9 * z - 0.8 * y + 2.0),
        ],
        axis=-1,
    )
    box = np.stack([np.cos(2.0 * y + z), np.sin(2.0 * x - y), np.cos(1.5 * x + 2.0 * z)], axis=-1)
    values = np.where(on_box[..., None], box, room)
    return np.round(128 + 110 * values).astype(np.uint8)


def ray_cast(cam_to_world: np.ndarray, K: np.ndarray, width: int, height: int):
    """World points [H x W x 3] and colours [H x W x 3] uint8 seen by a camera in the room."""
    xs, ys = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    rays_cam = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ np.linalg.inv(K).T
    directions = rays_cam @ cam_to_world[:3, :3].T  # unit camera z, so t is the depth
    origin = cam_to_world[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        room_near = (ROOM[0] - origin) / directions
        room_far = (ROOM[1] - origin) / directions
        t_room = np.nanmin(np.maximum(room_near, room_far), axis=-1)
        box_near = (BOX[0] - origin) / directions
        box_far = (BOX[1] - origin) / directions
        t_enter = np.nanmax(np.minimum(box_near, box_far), axis=-1)
        t_leave = np.nanmin(np.maximum(box_near, box_far), axis=-1)
    on_box = (t_enter <= t_leave) & (t_enter > 0)
    t = np.where(on_box, t_enter, t_room)
    points = origin + t[..., None] * directions
    return points, texture(points, on_box)


def reconstruction(poses: list[np.ndarray]) -> SceneReconstruction:
    images, points = [], []
    for cam_to_world in poses:
        view_points, view_image = ray_cast(cam_to_world, RELAY_K, RELAY_WIDTH, RELAY_HEIGHT)
        points.append(view_points.astype(np.float32))
        images.append(view_image)
    return SceneReconstruction(
        images=images,
        K=np.stack([RELAY_K] * len(poses)),
        cam_to_world=np.stack(poses),
        points=np.stack(points),
        confidence=np.full((len(poses), RELAY_HEIGHT, RELAY_WIDTH), 10.0, dtype=np.float32),
    )


def small_conf(**overrides) -> ViewSynthesisConfig:
    # 1 px radius at 80 rows: 1 / 40 in NDC units.
    values = dict(num_frames=5, width=MODEL_WIDTH, height=MODEL_HEIGHT, point_radius=1 / 40)
    values.update(overrides)
    return ViewSynthesisConfig(**values)


class RecordingGenerator:
    """Returns the renders inverted and records every call."""

    def __init__(self):
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def generate(self, renders: np.ndarray, reference: np.ndarray, ctx: RunContext) -> np.ndarray:
        self.calls.append((renders.copy(), reference.copy()))
        return 255 - renders


FOUR_RELAY_POSES = [
    pose(15.0, (-0.6, 0.0, 0.0)),
    pose(8.0, (-0.3, 0.05, 0.1)),
    pose(-8.0, (0.3, -0.05, 0.1)),
    pose(-15.0, (0.6, 0.0, 0.0)),
]


def test_midpoint_camera_render_matches_an_independent_projection_of_the_scene():
    relay = reconstruction([pose(12.0, (-0.4, 0.0, 0.0)), pose(-12.0, (0.4, 0.0, 0.0))])
    synthesizer = PointCloudViewSynthesizer(RenderOnlyGenerator(), small_conf())
    candidates = synthesizer.synthesize(relay, RunContext())
    # The first and last cameras' frames are copies of the inputs A and B: not candidates.
    assert [c.index for c in candidates] == [1, 2, 3]
    middle = candidates[1]
    # By symmetry the midpoint camera sits at the origin looking down +z.
    np.testing.assert_allclose(middle.cam_to_world, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(middle.keyframe.K, MODEL_K, atol=1e-12)
    _, expected = ray_cast(np.eye(4), MODEL_K, MODEL_WIDTH, MODEL_HEIGHT)
    error = np.abs(middle.keyframe.image.astype(int) - expected.astype(int)).max(axis=-1)
    # Measured: median 4, 90th percentile 10 (alpha compositing blends neighbouring points,
    # as ViewCrafter's PyTorch3D renders do); the same view shifted by one pixel gives 7, 13.
    assert np.median(error) <= 5
    assert np.percentile(error, 90) <= 11
    # The box occludes the wall: a wrong z-order would put wall colours on the box.
    box_centre = np.abs(middle.keyframe.image[40, 64].astype(int) - expected[40, 64].astype(int))
    assert box_centre.max() <= 10


def test_stage_on_four_relay_views_lays_out_clips_like_viewcrafter():
    relay = reconstruction(FOUR_RELAY_POSES)
    generator = RecordingGenerator()
    candidates = PointCloudViewSynthesizer(generator, small_conf()).synthesize(relay, RunContext())

    # 3 clips of 5 frames sharing their boundary frames: 13 trajectory cameras, each once,
    # but the first and last (copies of the inputs A and B) are not offered.
    assert [c.index for c in candidates] == list(range(1, 12))
    assert all(c.source == "viewcrafter" for c in candidates)
    assert len(generator.calls) == 3
    for clip, (renders, reference) in enumerate(generator.calls):
        assert renders.shape == (5, MODEL_HEIGHT, MODEL_WIDTH, 3) and renders.dtype == np.uint8
        assert reference.shape == (MODEL_HEIGHT, MODEL_WIDTH, 3)
        # The reference and the clip's first render are relay image `clip` at model resolution:
        # the scene as the relay camera sees it through MODEL_K (resampled, so not bit-equal).
        np.testing.assert_array_equal(reference, renders[0])
        _, seen = ray_cast(relay.cam_to_world[clip], MODEL_K, MODEL_WIDTH, MODEL_HEIGHT)
        assert np.median(np.abs(reference.astype(int) - seen.astype(int)).max(axis=-1)) <= 4
    by_index = {c.index: c for c in candidates}
    for key, frame in ((1, 4), (2, 8)):
        np.testing.assert_array_equal(by_index[frame].cam_to_world, relay.cam_to_world[key])
    # Candidates are the generator's output, frame for frame.
    np.testing.assert_array_equal(by_index[6].keyframe.image, 255 - generator.calls[1][0][2])
    np.testing.assert_array_equal(by_index[4].keyframe.image, 255 - generator.calls[0][0][4])


def test_renders_follow_the_trajectory_cameras():
    relay = reconstruction(FOUR_RELAY_POSES)
    generator = RecordingGenerator()
    candidates = PointCloudViewSynthesizer(generator, small_conf()).synthesize(relay, RunContext())
    for candidate in candidates[0:3] + candidates[8:11]:
        clip, offset = divmod(candidate.index, 4)
        render = generator.calls[clip][0][offset]
        _, expected = ray_cast(candidate.cam_to_world, MODEL_K, MODEL_WIDTH, MODEL_HEIGHT)
        error = np.abs(render.astype(int) - expected.astype(int)).max(axis=-1)
        assert np.median(error) <= 4


def test_one_clip_through_all_relay_views():
    relay = reconstruction(FOUR_RELAY_POSES)
    generator = RecordingGenerator()
    conf = small_conf(num_frames=25, num_clips=1)
    candidates = PointCloudViewSynthesizer(generator, conf).synthesize(relay, RunContext())
    assert [c.index for c in candidates] == list(range(1, 24)) and len(generator.calls) == 1
    np.testing.assert_array_equal(generator.calls[0][1], generator.calls[0][0][0])
    for key, frame in ((1, 8), (2, 16)):
        np.testing.assert_array_equal(candidates[frame - 1].cam_to_world, relay.cam_to_world[key])


def test_unconfident_points_are_not_rendered():
    relay = reconstruction(FOUR_RELAY_POSES[:3])
    relay.confidence[:] = 1.05  # below log(3): unconfident for ViewCrafter's threshold
    generator = RecordingGenerator()
    # bg_trd 1: depth > max + min is never true, so only the confidence mask remains.
    PointCloudViewSynthesizer(generator, small_conf(bg_trd=1.0)).synthesize(relay, RunContext())
    renders = generator.calls[0][0]
    assert (renders[1:4] == 0).all()  # nothing drawn between the relay frames
    assert renders[0].any() and renders[4].any()  # relay frames are the relay images


def flat_relay(depths: list[np.ndarray], confidence: list[np.ndarray]) -> SceneReconstruction:
    """Views sharing one identity camera (K: f = 2, centre (1.5, 1.5)) seeing given depths."""
    K = np.array([[2.0, 0.0, 1.5], [0.0, 2.0, 1.5], [0.0, 0.0, 1.0]])
    height, width = depths[0].shape
    xs, ys = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    rays = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ np.linalg.inv(K).T
    return SceneReconstruction(
        images=[np.full((height, width, 3), 100 + 50 * v, np.uint8) for v in range(len(depths))],
        K=np.stack([K] * len(depths)),
        cam_to_world=np.stack([np.eye(4)] * len(depths)),
        points=np.stack([rays * d[..., None] for d in depths]).astype(np.float32),
        confidence=np.stack(confidence).astype(np.float32),
    )


def test_viewcrafter_masks_threshold_log3_or_the_depth_background_mask():
    """nvs_sparse_view_interp with > 2 views: raw conf > conf_trf(3) = log 3 = 1.0986,
    OR depth > bg_trd * (max + min depth)."""
    from posecrafter_ros.stages.synthesize import viewcrafter_point_masks

    depth = np.array([[1.0, 1.0, 3.0, 3.0]] * 4)
    conf = np.array([[1.05, 1.2, 1.05, 1.2]] * 4)
    relay = flat_relay([depth] * 3, [conf] * 3)
    # bg_trd 0 (official default): depth > 0 keeps everything, whatever the confidence.
    assert viewcrafter_point_masks(relay, clean_tol=None).all()
    # bg_trd 0.5: depth > 0.5 (3 + 1) = 2 keeps the far half; confidence keeps 1.2 > 1.0986.
    masks = viewcrafter_point_masks(relay, bg_trd=0.5, clean_tol=None)
    np.testing.assert_array_equal(masks[0], [[False, True, True, True]] * 4)
    # bg_trd 1: no background mask; the confidence threshold alone.
    masks = viewcrafter_point_masks(relay, bg_trd=1.0, clean_tol=None)
    np.testing.assert_array_equal(masks[1], [[False, True, False, True]] * 4)
    # min_conf_thr 4: log 4 = 1.386 > 1.2, nothing is confident.
    assert not viewcrafter_point_masks(relay, 4.0, bg_trd=1.0, clean_tol=None).any()
    # Two views: no masks at all (every point).
    two = flat_relay([depth] * 2, [conf] * 2)
    assert viewcrafter_point_masks(two, bg_trd=1.0).all()


def test_clean_pointcloud_zeroes_points_in_front_of_a_more_confident_view():
    """DUSt3R's clean_pointcloud(tol=0.001, max_bad_conf=0) on a hand-made case: all views
    share one camera; view 0 sees a point at depth 1 where view 1 sees depth 2."""
    from posecrafter_ros.stages.synthesize import clean_confidence

    far = np.full((4, 4), 2.0)
    near = far.copy()
    near[1, 1] = near[2, 2] = 1.0  # in front of views 1 and 2's surface
    near[0, 0] = 3.0  # behind it
    conf_near = np.full((4, 4), 2.0)
    conf_near[2, 2] = 6.0  # more confident than the views it hides: kept
    conf_far = np.full((4, 4), 5.0)
    relay = flat_relay([near, far, far], [conf_near, conf_far, conf_far])
    cleaned = clean_confidence(relay, tol=0.001)
    expected = conf_near.copy()
    expected[1, 1] = 0.0
    np.testing.assert_array_equal(cleaned[0], expected)
    # Views 1 and 2 coincide (neither is in front of the other beyond tol); at (0, 0) they
    # are in front of view 0's depth 3 but more confident than it, so they are kept.
    np.testing.assert_array_equal(cleaned[1], conf_far)
    np.testing.assert_array_equal(cleaned[2], conf_far)
    # A tolerance of 0.6: 1 < 0.4 * 2 is false, nothing is in front enough.
    np.testing.assert_array_equal(clean_confidence(relay, tol=0.6)[0], conf_near)


def test_render_only_generator_fills_holes_from_the_nearest_valid_pixel():
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    image[:, :2] = 50
    image[:, 4:] = 200
    valid = np.zeros((4, 6), dtype=bool)
    valid[:, :2] = valid[:, 4:] = True
    filled = RenderOnlyGenerator().generate(image[None], image, RunContext(), masks=valid[None])[0]
    assert (filled[:, 2] == 50).all() and (filled[:, 3] == 200).all()
    assert (filled[valid] == image[valid]).all()
    empty = fill_holes_nearest(image, np.zeros((4, 6), dtype=bool))
    np.testing.assert_array_equal(empty, image)


def test_progress_is_reported_per_frame_and_cancel_propagates():
    relay = reconstruction(FOUR_RELAY_POSES[:2])
    reports: list[float] = []
    ctx = RunContext(progress=lambda stage, progress, overall: reports.append(progress))
    PointCloudViewSynthesizer(RenderOnlyGenerator(), small_conf()).synthesize(relay, ctx)
    assert len(reports) == 5 + 1  # one per rendered frame, one per clip
    assert reports == sorted(reports) and reports[-1] == pytest.approx(1.0)

    def cancel_after_two(stage, progress, overall):
        reports.append(progress)
        if len(reports) == 2:
            ctx_cancel.cancel()

    reports.clear()
    ctx_cancel = RunContext(progress=cancel_after_two)
    generator = RecordingGenerator()
    with pytest.raises(Canceled):
        PointCloudViewSynthesizer(generator, small_conf()).synthesize(relay, ctx_cancel)
    assert len(reports) == 2 and not generator.calls


def test_generator_output_of_the_wrong_shape_is_an_error():
    class Truncating:
        def generate(self, renders, reference, ctx):
            return renders[:-1]

    relay = reconstruction(FOUR_RELAY_POSES[:2])
    with pytest.raises(ValueError, match="expected uint8"):
        PointCloudViewSynthesizer(Truncating(), small_conf()).synthesize(relay, RunContext())


def test_inconsistent_relay_reconstruction_is_an_error():
    relay = reconstruction(FOUR_RELAY_POSES[:3])
    relay.cam_to_world = relay.cam_to_world[:2]
    synthesizer = PointCloudViewSynthesizer(RenderOnlyGenerator(), small_conf())
    with pytest.raises(ValueError, match="3 images"):
        synthesizer.synthesize(relay, RunContext())
    with pytest.raises(ValueError, match="at least 2 relay views"):
        synthesizer.synthesize(reconstruction(FOUR_RELAY_POSES[:1]), RunContext())


def test_synthesizer_section_is_split_between_generator_and_render():
    from posecrafter_ros.stages.synthesize import build_render_only_synthesizer

    section = {"render": {"num_frames": 9, "height": 64, "width": 96, "point_radius": 0.02}}
    synthesizer = build_render_only_synthesizer(section)
    assert synthesizer.conf == ViewSynthesisConfig(
        num_frames=9, height=64, width=96, point_radius=0.02
    )
    # A generator setting among the render settings, or beside the two parts, is an error.
    with pytest.raises(ValueError, match=r"synthesizer.render.*valid keys"):
        build_render_only_synthesizer({"render": {"num_frames": 9, "ddim_steps": 50}})
    with pytest.raises(ValueError, match=r"in bridge.synthesizer; valid keys: \['render'\]"):
        build_render_only_synthesizer({"num_frames": 9})


def test_invalid_config_values_are_rejected():
    with pytest.raises(ValueError, match="num_frames"):
        PointCloudViewSynthesizer(RenderOnlyGenerator(), {"num_frames": 1})
    with pytest.raises(ValueError, match="num_clips"):
        PointCloudViewSynthesizer(RenderOnlyGenerator(), {"num_clips": 0})


def test_to_moves_the_generator_when_it_has_weights():
    class Resident(RecordingGenerator):
        device = "cpu"

        def to(self, device):
            self.device = device
            return self

    generator = Resident()
    synthesizer = PointCloudViewSynthesizer(generator, small_conf())
    assert synthesizer.to("cuda") is synthesizer and generator.device == "cuda"
    PointCloudViewSynthesizer(RenderOnlyGenerator(), small_conf()).to("cuda")  # nothing to move
