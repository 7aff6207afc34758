"""End to end on CPU with tiny random models: Stage 1 interpolation and ViewCrafter clips."""

from __future__ import annotations

import numpy as np
import pytest

from posecrafter_ros.core.imageops import cover_crop
from posecrafter_ros.core.types import Canceled, Keyframe, RunContext
from posecrafter_ros.models.checkpoint import CheckpointError
from posecrafter_ros.stages.interpolate import DYNAMICRAFTER_DEFAULTS, DynamiCrafterInterpolator
from posecrafter_ros.stages.relay_pose import relay_indices
from posecrafter_ros.stages.synthesize import ViewCrafterGenerator

TINY = {"tiny": True, "ddim_steps": 2, "num_frames": 6, "height": 128, "width": 256, "seed": 7}


def keyframe(seed: int, stamp: int) -> Keyframe:
    rng = np.random.default_rng(seed)
    K = np.array([[400.0, 0, 319.5], [0, 410.0, 239.5], [0, 0, 1]])
    return Keyframe(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), K, "cam", stamp)


@pytest.fixture(scope="module")
def interpolator() -> DynamiCrafterInterpolator:
    return DynamiCrafterInterpolator.from_config(TINY)


def test_interpolation_frames_and_intrinsics(interpolator) -> None:
    a, b = keyframe(0, 0), keyframe(1, 1000)
    progress: list[float] = []
    frames = interpolator.interpolate(a, b, RunContext(progress=lambda s, p, o: progress.append(p)))
    assert len(frames) == 6
    assert all(f.image.shape == (128, 256, 3) and f.image.dtype == np.uint8 for f in frames)
    assert progress == [0.5, 1.0]
    # 640x480 -> cover 256x128: scale 0.4 (256x192), crop 32 rows from the top.
    expected = np.array([[160.0, 0, 127.5], [0, 164.0, 63.5], [0, 0, 1]])
    assert np.allclose(frames[0].K, expected) and np.allclose(frames[-1].K, expected)
    assert np.allclose(expected[:2, 2], [127.5, 63.5])  # the principal point stays centred
    assert [f.stamp_ns for f in frames] == [0, 200, 400, 600, 800, 1000]
    again = interpolator.interpolate(a, b, RunContext())
    assert all(np.array_equal(x.image, y.image) for x, y in zip(frames, again, strict=False))
    assert relay_indices(16, 4) == [0, 1, 14, 15]


def test_interpolation_depends_on_the_inputs(interpolator) -> None:
    first = interpolator.interpolate(keyframe(0, 0), keyframe(1, 1), RunContext())
    other = interpolator.interpolate(keyframe(2, 0), keyframe(1, 1), RunContext())
    assert not np.array_equal(first[0].image, other[0].image)


def test_cancel_propagates(interpolator) -> None:
    ctx = RunContext()
    ctx.cancel()
    with pytest.raises(Canceled):
        interpolator.interpolate(keyframe(0, 0), keyframe(1, 1), ctx)


def test_missing_checkpoint_is_a_clear_error() -> None:
    with pytest.raises(CheckpointError, match="checkpoint"):
        DynamiCrafterInterpolator.from_config({"tiny": False, "checkpoint": ""})
    with pytest.raises(CheckpointError, match="not found"):
        ViewCrafterGenerator.from_config({"checkpoint": "/nonexistent/model_sparse.ckpt"})


def test_viewcrafter_generates_clip_at_render_size() -> None:
    generator = ViewCrafterGenerator.from_config(
        {"tiny": True, "ddim_steps": 2, "height": 128, "width": 192}
    )
    rng = np.random.default_rng(3)
    renders = rng.integers(0, 256, (5, 96, 160, 3), dtype=np.uint8)
    reference = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
    steps: list[float] = []
    out = generator.generate(
        renders, reference, RunContext(progress=lambda s, p, o: steps.append(p))
    )
    assert out.shape == renders.shape and out.dtype == np.uint8 and steps == [0.5, 1.0]
    assert np.array_equal(out, generator.generate(renders, reference, RunContext()))
    with pytest.raises(ValueError, match="uint8"):
        generator.generate(renders.astype(np.float32), reference, RunContext())


def test_interpolator_crop_maps_pixels() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    image[240, 320] = 255
    transform = cover_crop((640, 480), (512, 320))
    crop = transform.apply(image)
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    mapped = transform.map_intrinsics(K)
    u, v = mapped[0, 2], mapped[1, 2]
    assert crop.shape == (320, 512, 3)
    # The bright source pixel lands where the mapped principal point says (within a pixel).
    peak = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert abs(peak[0] - v) <= 1 and abs(peak[1] - u) <= 1


def test_gpu_options_run_on_cpu() -> None:
    """bf16 autocast, SDPA attention and sub-model offloading (the GPU settings) run end to end."""
    conf = dict(TINY, dtype="bfloat16", attention="sdpa", offload=True, num_frames=3, ddim_steps=1)
    frames = DynamiCrafterInterpolator.from_config(conf).interpolate(
        keyframe(0, 0), keyframe(1, 1), RunContext()
    )
    assert len(frames) == 3 and frames[1].image.shape == (128, 256, 3)


def official_interp_preprocessing(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """DynamiCrafter's `load_data_prompts` (scripts/evaluation/inference.py), restated:
    transforms.Resize(min(h, w)) on a PIL image (short side to 320, long side truncated, PIL
    bilinear), then transforms.CenterCrop((h, w)) (offsets int(round(d / 2.0)))."""
    from PIL import Image

    rows, cols = image.shape[:2]
    short = min(height, width)
    size = (int(short * cols / rows), short) if cols >= rows else (short, int(short * rows / cols))
    resized = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    top = int(round((resized.shape[0] - height) / 2.0))
    left = int(round((resized.shape[1] - width) / 2.0))
    return resized[top : top + height, left : left + width]


@pytest.mark.parametrize("cols,rows", [(1280, 720), (1000, 560), (1024, 576)])
def test_preprocessing_and_defaults_are_the_official_interpolation_scripts(cols, rows) -> None:
    """Images at least 1.6:1 wide reach the network exactly as the official script loads
    them; sampling defaults are run_application.sh interp's."""
    rng = np.random.default_rng(cols)
    image = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    K = np.array([[900.0, 0, cols / 2], [0, 900.0, rows / 2], [0, 0, 1]])
    interpolator = DynamiCrafterInterpolator.from_config(dict(TINY, height=320, width=512))
    crop, _ = interpolator.prepare(Keyframe(image, K))
    np.testing.assert_array_equal(crop, official_interp_preprocessing(image, 320, 512))

    from posecrafter_ros.models.lvdm.runtime import RuntimeConfig
    from posecrafter_ros.pipeline import Pipeline

    section = dict(Pipeline.from_profile("gpu").bridge_conf["interpolator"])
    section.pop("type")
    runtime = RuntimeConfig.from_dict(section, DYNAMICRAFTER_DEFAULTS)
    official = dict(seed=12306, frame_stride=5, ddim_steps=50, cfg_scale=7.5, eta=1.0)
    official.update(guidance_rescale=0.7, timestep_spacing="uniform_trailing", num_frames=16)
    official.update(height=320, width=512, prompt="")
    assert {key: getattr(runtime, key) for key in official} == official
