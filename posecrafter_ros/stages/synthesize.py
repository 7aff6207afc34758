"""HVG stage 2: relay reconstruction -> camera trajectory -> point-cloud renders -> video model.

The relay cameras (DUSt3R poses of {I0, I1, I_{T-1}, I_T}) are joined by a dense trajectory
(slerp + linear, `trajectory.py`); the confident relay points are splatted into every
trajectory camera at the model resolution (`render.py`); each clip of renders goes to a
video generator (ViewCrafter, or `RenderOnlyGenerator` as a model-free baseline), and the
generated frames become candidates for the Feature Matching Selector.

Clip layout (as ViewCrafter's sparse-view interpolation): C clips of L frames each share
their boundary frames, so the trajectory has C (L - 1) + 1 cameras. By default there is one
clip per consecutive pair of relay cameras (C = N - 1), so clip c runs from relay camera c to
c + 1. Renders at a relay camera are replaced by the relay image itself, and each clip's
reference image is the relay image nearest its first camera (the relay image it starts at
in the default layout).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Mapping, Protocol

import numpy as np

from ..core.config import check_keys
from ..core.imageops import cover_crop
from ..core.render import PointSplatRenderer
from ..core.trajectory import CameraTrajectory, interpolate_trajectory
from ..core.types import CandidateFrame, Keyframe, RunContext, SceneReconstruction
from ..models.lvdm.runtime import RuntimeConfig, build_model, condition_sample_decode, placed

if TYPE_CHECKING:
    from ..models.lvdm.latent_diffusion import LatentVideoDiffusion

# Share of the stage's progress spent on rendering; the rest is spread over the clips.
RENDER_PROGRESS_SHARE = 0.1


class VideoGenerator(Protocol):
    """A video model conditioned on point-cloud renders (ViewCrafter).

    Generators that also want the render validity masks set a class attribute
    `wants_masks = True` and accept `masks: [T x H x W] bool` as a keyword argument.
    """

    def generate(self, renders: np.ndarray, reference: np.ndarray, ctx: RunContext) -> np.ndarray:
        """renders: [T x H x W x 3] uint8; reference: [H x W x 3] uint8 -> [T x H x W x 3] uint8."""
        ...


@dataclass
class ViewSynthesisConfig:
    """Settings of PointCloudViewSynthesizer.

    num_frames: frames per generated clip (ViewCrafter_25: 25).
    num_clips: clips along the whole trajectory; None: one per consecutive relay pair.
    width, height: model resolution; relay images and intrinsics are resized to cover it
        and centre-cropped.
    min_confidence: relay points with confidence <= this are not rendered (ViewCrafter's
        default threshold on DUSt3R confidences is 3).
    splat_radius: point splat radius in pixels at the model resolution.
    splat_depth_bias: relative depth margin per squared pixel of splat offset by which a
        neighbour's splat must be nearer to cover a pixel's own point (PointSplatRenderer).
    min_depth: points closer than this (scene units) along the optical axis are not drawn.
    replace_key_renders: renders at relay cameras are replaced by the relay images.
    """

    num_frames: int = 25
    num_clips: int | None = None
    width: int = 512
    height: int = 320
    min_confidence: float = 3.0
    splat_radius: float = 1.5
    splat_depth_bias: float = 0.1
    min_depth: float = 1e-6
    replace_key_renders: bool = True

    @classmethod
    def from_dict(cls, conf: dict[str, Any], section: str = "synthesizer.render"):
        """Raises ValueError naming `section` and the valid keys for an unknown key."""
        check_keys(section, conf, (f.name for f in fields(cls)))
        return cls(**conf)


@dataclass
class RelayAtModelResolution:
    """Relay views resized to the model resolution.

    images: [N x h x w x 3] uint8; K: [N x 3 x 3]; cam_to_world: [N x 4 x 4].
    """

    images: np.ndarray
    K: np.ndarray
    cam_to_world: np.ndarray


def relay_point_cloud(
    relay: SceneReconstruction, min_confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Confident, finite relay points [P x 3] float32 with their colours [P x 3] uint8."""
    points, colors = [], []
    for view, image in enumerate(relay.images):
        view_points = relay.points[view]
        if view_points.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"relay view {view}: point map is {view_points.shape[:2]} but the image is "
                f"{image.shape[:2]}; they must have one point per pixel"
            )
        keep = (relay.confidence[view] > min_confidence) & np.isfinite(view_points).all(axis=-1)
        points.append(view_points[keep].astype(np.float32))
        colors.append(image[keep][:, :3].astype(np.uint8))
    return np.concatenate(points), np.concatenate(colors)


def relay_at_model_resolution(
    relay: SceneReconstruction, width: int, height: int
) -> RelayAtModelResolution:
    """Resize-to-cover + centre crop of every relay image, with its intrinsics mapped."""
    images, intrinsics = [], []
    for view, image in enumerate(relay.images):
        crop = cover_crop((image.shape[1], image.shape[0]), (width, height))
        images.append(crop.apply(image[..., :3]))
        intrinsics.append(crop.map_intrinsics(relay.K[view]))
    return RelayAtModelResolution(
        images=np.stack(images),
        K=np.stack(intrinsics),
        cam_to_world=np.asarray(relay.cam_to_world, dtype=np.float64),
    )


def fill_holes_nearest(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy of image [H x W x C] whose invalid pixels take the nearest valid pixel's value.

    valid: [H x W] bool. An image without any valid pixel is returned unchanged.
    """
    if valid.all() or not valid.any():
        return image.copy()
    from scipy.ndimage import distance_transform_edt

    _, (rows, cols) = distance_transform_edt(~valid, return_indices=True)
    return image[rows, cols]


class RenderOnlyGenerator:
    """A model-free stand-in for ViewCrafter: the renders, holes filled by nearest pixels.

    Lets the stage run without a video model and serves as a cheap baseline.
    """

    wants_masks = True

    def generate(
        self,
        renders: np.ndarray,
        reference: np.ndarray,
        ctx: RunContext,
        masks: np.ndarray | None = None,
    ) -> np.ndarray:
        """renders: [T x H x W x 3] uint8, masks: [T x H x W] bool -> [T x H x W x 3] uint8."""
        if masks is None:
            return renders.copy()
        frames = []
        for render, mask in zip(renders, masks):
            ctx.check()
            frames.append(fill_holes_nearest(render, mask))
        return np.stack(frames)


class PointCloudViewSynthesizer:
    """ViewSynthesizer: renders the relay point cloud along the trajectory, then generates.

    generator: a VideoGenerator. conf: ViewSynthesisConfig, or the `render` part of the
    profile's synthesizer section as a dict (unknown keys are an error).
    """

    def __init__(self, generator: VideoGenerator, conf: ViewSynthesisConfig | dict | None = None):
        if isinstance(conf, dict):
            conf = ViewSynthesisConfig.from_dict(conf)
        self.conf = conf or ViewSynthesisConfig()
        if self.conf.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.conf.num_frames}")
        if self.conf.num_clips is not None and self.conf.num_clips < 1:
            raise ValueError(f"num_clips must be >= 1 or None, got {self.conf.num_clips}")
        self.generator = generator

    def to(self, device: str) -> PointCloudViewSynthesizer:
        """Moves the generator's model (the stage's only resident weights) to `device`."""
        if hasattr(self.generator, "to"):
            self.generator.to(device)
        return self

    def trajectory(self, relay: RelayAtModelResolution) -> CameraTrajectory:
        """Cameras of all clips, boundary frames shared: C (L - 1) + 1 of them."""
        num_keys = relay.cam_to_world.shape[0]
        num_clips = self.conf.num_clips or num_keys - 1
        num_frames = num_clips * (self.conf.num_frames - 1) + 1
        return interpolate_trajectory(relay.cam_to_world, relay.K, num_frames)

    def synthesize(self, relay: SceneReconstruction, ctx: RunContext) -> list[CandidateFrame]:
        """Generated frames along the trajectory through the relay cameras, in order.

        Each trajectory camera appears once (shared clip boundaries are kept from the
        earlier clip); index is the camera's position along the trajectory.
        """
        conf = self.conf
        num_keys = len(relay.images)
        if num_keys < 2:
            raise ValueError(f"view synthesis needs at least 2 relay views, got {num_keys}")
        counts = {
            "K": len(relay.K),
            "cam_to_world": len(relay.cam_to_world),
            "points": len(relay.points),
            "confidence": len(relay.confidence),
        }
        if any(count != num_keys for count in counts.values()):
            raise ValueError(f"relay reconstruction has {num_keys} images but {counts}")
        model_relay = relay_at_model_resolution(relay, conf.width, conf.height)
        trajectory = self.trajectory(model_relay)
        points, colors = relay_point_cloud(relay, conf.min_confidence)
        renderer = PointSplatRenderer(
            points,
            colors,
            radius=conf.splat_radius,
            depth_bias=conf.splat_depth_bias,
            min_depth=conf.min_depth,
        )

        num_cameras = len(trajectory)
        renders = np.empty((num_cameras, conf.height, conf.width, 3), dtype=np.uint8)
        masks = np.empty((num_cameras, conf.height, conf.width), dtype=bool)
        for frame in range(num_cameras):
            rendering = renderer.render(
                trajectory.cam_to_world[frame], trajectory.K[frame], conf.height, conf.width
            )
            renders[frame], masks[frame] = rendering.image, rendering.mask
            ctx.report(RENDER_PROGRESS_SHARE * (frame + 1) / num_cameras)
        if conf.replace_key_renders:
            for key, frame in trajectory.key_frame_indices().items():
                renders[frame] = model_relay.images[key]
                masks[frame] = True

        step = conf.num_frames - 1
        num_clips = (num_cameras - 1) // step
        candidates: list[CandidateFrame] = []
        for clip in range(num_clips):
            first = clip * step
            clip_frames = slice(first, first + conf.num_frames)
            nearest_key = int(np.round(trajectory.key_parameter[first]))
            share = (1.0 - RENDER_PROGRESS_SHARE) / num_clips
            with ctx.subspan(
                RENDER_PROGRESS_SHARE + clip * share, RENDER_PROGRESS_SHARE + (clip + 1) * share
            ):
                generated = self._generate(
                    renders[clip_frames], model_relay.images[nearest_key], masks[clip_frames], ctx
                )
            for offset in range(1 if clip > 0 else 0, conf.num_frames):
                frame = first + offset
                keyframe = Keyframe(image=generated[offset], K=trajectory.K[frame].copy())
                candidates.append(
                    CandidateFrame(
                        keyframe=keyframe,
                        index=frame,
                        source="viewcrafter",
                        cam_to_world=trajectory.cam_to_world[frame].copy(),
                    )
                )
            ctx.report(
                RENDER_PROGRESS_SHARE + (1.0 - RENDER_PROGRESS_SHARE) * (clip + 1) / num_clips
            )
        return candidates

    def _generate(
        self, renders: np.ndarray, reference: np.ndarray, masks: np.ndarray, ctx: RunContext
    ) -> np.ndarray:
        """One clip through the generator, its output checked: [L x h x w x 3] uint8."""
        if getattr(self.generator, "wants_masks", False):
            generated = self.generator.generate(renders, reference, ctx, masks=masks)
        else:
            generated = self.generator.generate(renders, reference, ctx)
        generated = np.asarray(generated)
        if generated.shape != renders.shape or generated.dtype != np.uint8:
            raise ValueError(
                f"the video generator returned {generated.dtype} {generated.shape}; "
                f"expected uint8 {renders.shape} (one frame per render)"
            )
        return generated


# ViewCrafter, the video generator of the paper.
# ViewCrafter: point-cloud renders -> sharp video frames (HVG stage 2).
#
# Conditioning as the official `ViewCrafter.run_diffusion` + `image_guided_synthesis`:
# - the first render is replaced by the reference image (the render of the reference camera);
#   in ViewCrafter's sparse-view mode the last one too (`last_reference`);
# - every frame, in [-1, 1], is VAE-encoded (posterior sampled, one draw per frame) and the
#   latents of ALL frames are the concatenated condition (`c_concat = z`);
# - the image cross-attention condition is frame `condition_index[0] = 0` only (the reference);
# - prompt "Rotating view of a scene", frame_stride 10, CFG 7.5 with guidance rescale 0.7,
#   DDIM with uniform-trailing spacing and eta 1; the unconditional branch keeps c_concat.
VIEWCRAFTER_DEFAULTS: dict[str, Any] = {
    "preset": "viewcrafter_25_512",
    "frame_stride": 10,
    "num_frames": 25,
    "prompt": "Rotating view of a scene",
}


class ViewCrafterGenerator:
    """Implements the synthesizer's VideoGenerator: generate(renders, reference, ctx)."""

    def __init__(
        self, model: "LatentVideoDiffusion", conf: RuntimeConfig | Mapping[str, Any] | None = None
    ):
        if not isinstance(conf, RuntimeConfig):
            conf = RuntimeConfig.from_dict(
                conf or {}, VIEWCRAFTER_DEFAULTS, "bridge.synthesizer.generator"
            )
        if model.config.variant != "viewcrafter":
            raise ValueError(
                "ViewCrafterGenerator needs a ViewCrafter (variant 'viewcrafter') model"
            )
        self.model = model
        self.conf = conf

    @classmethod
    def from_config(cls, conf: Mapping[str, Any]) -> "ViewCrafterGenerator":
        """Build from a profile dict (see models/lvdm/runtime.py for the keys); loads the checkpoint."""
        runtime = RuntimeConfig.from_dict(
            conf, VIEWCRAFTER_DEFAULTS, "bridge.synthesizer.generator"
        )
        return cls(build_model(runtime, "viewcrafter", VIEWCRAFTER_DEFAULTS["preset"]), runtime)

    def to(self, device: str) -> "ViewCrafterGenerator":
        self.conf.device = str(device)
        if not self.conf.offload:
            self.model.to(device)
        return self

    def generate(
        self,
        renders: np.ndarray,
        reference: np.ndarray,
        ctx: RunContext,
        last_reference: np.ndarray | None = None,
    ) -> np.ndarray:
        """renders: [T x H x W x 3] uint8 (point-cloud renders along the trajectory; frame 0 at
        the reference camera); reference: [H x W x 3] uint8 -> [T x H x W x 3] uint8 frames.

        Renders are resized (bilinear, no crop: they keep their camera) to the model size
        (conf height x width) and the generated frames resized back to H x W.
        """
        import torch

        from ..models.lvdm.diffusion import TorchNoise
        from ..models.lvdm.video import images_to_tensor, resize, tensor_to_images

        renders = np.asarray(renders)
        if (
            renders.ndim != 4
            or renders.shape[-1] != 3
            or renders.dtype != np.uint8
            or renders.shape[0] < 2
        ):
            raise ValueError(
                f"renders must be [T x H x W x 3] uint8 with T >= 2, got {renders.dtype} {renders.shape}"
            )
        t, h, w, _ = renders.shape
        model_h, model_w = self.conf.model_size
        frames = np.stack([resize(f, model_h, model_w) for f in renders])
        frames[0] = resize(np.asarray(reference), model_h, model_w)
        if last_reference is not None:
            frames[-1] = resize(np.asarray(last_reference), model_h, model_w)
        conf, model = self.conf, self.model
        device = torch.device(conf.device)
        noise = TorchNoise(conf.seed, device)
        with torch.no_grad():
            videos = (
                images_to_tensor(frames).transpose(0, 1)[None].to(device)
            )  # [1 x 3 x T x H x W]
            with placed(model.first_stage_model, conf.device, conf.offload):
                z = model.encode_frames(videos, noise)
            video = condition_sample_decode(model, conf, videos, z, noise, ctx.report)
        out = tensor_to_images(video)
        if (h, w) != out.shape[1:3]:
            out = np.stack([resize(f, h, w) for f in out])
        return out


# The generator runs at the renders' size and clip length, so those are the render section's.
SHARED_WITH_GENERATOR = ("num_frames", "height", "width")
SYNTHESIZER_PARTS = ("generator", "render")


def _split_section(section: dict[str, Any], parts: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Generator settings go under `generator:`, rendering under `render:`."""
    check_keys("bridge.synthesizer", section, parts)
    return {part: dict(section.get(part) or {}) for part in parts}


def build_viewcrafter_synthesizer(
    section: dict[str, Any], device: str = "cpu", dtype: str = "float32"
) -> PointCloudViewSynthesizer:
    """PointCloudViewSynthesizer + ViewCrafterGenerator from `{generator: {...}, render: {...}}`.

    The generator takes the render section's num_frames, height and width (set them there).
    """
    parts = _split_section(section, SYNTHESIZER_PARTS)
    render = ViewSynthesisConfig.from_dict(parts["render"])
    generator = parts["generator"]
    repeated = sorted(set(generator) & set(SHARED_WITH_GENERATOR))
    if repeated:
        raise ValueError(
            f"bridge.synthesizer.generator sets {repeated}; set them once under "
            "bridge.synthesizer.render (the generator runs at the renders' size)"
        )
    generator = {
        "device": device,
        "dtype": dtype,
        **generator,
        **{key: getattr(render, key) for key in SHARED_WITH_GENERATOR},
    }
    return PointCloudViewSynthesizer(ViewCrafterGenerator.from_config(generator), render)


def build_render_only_synthesizer(section: dict[str, Any]) -> PointCloudViewSynthesizer:
    """PointCloudViewSynthesizer + RenderOnlyGenerator from `{render: {...}}`."""
    parts = _split_section(section, ("render",))
    return PointCloudViewSynthesizer(RenderOnlyGenerator(), parts["render"])
