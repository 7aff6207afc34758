"""HVG stage 2: relay reconstruction -> camera trajectory -> point-cloud renders -> video model.

The relay cameras (DUSt3R poses of {I0, I1, I_{T-1}, I_T}) are joined by a dense trajectory
(slerp + linear, `core/trajectory.py`); the relay points are rasterised into every trajectory
camera at the model resolution (`core/render.py`, PyTorch3D point semantics as ViewCrafter); each
clip of renders goes to a video generator (ViewCrafter, or `RenderOnlyGenerator` as a
model-free baseline), and the generated frames become candidates for the Feature Matching
Selector.

The point cloud is the one ViewCrafter's sparse-view interpolation builds
(`nvs_sparse_view_interp` in the official viewcrafter.py, after `run_dust3r(...,
clean_pc=True)`): with two relay views every point is kept; with more,
1. `clean_pointcloud` (DUSt3R's cloud_opt/base_opt.py): a point seen in front of another
   view's depth map where that view is more confident has its confidence set to 0;
2. a point is kept where its raw confidence exceeds `conf_trf(min_conf_thr)`: the official
   code sets `scene.min_conf_thr = conf_trf(3.0)`, i.e. log 3 = 1.10 for the default log
   transform, and compares the raw (1 + exp) confidences with it;
3. OR where its depth exceeds `bg_trd * (max + min)` of its view's depth map without the 40
   rows at the top and bottom (the depth-based background mask). With the official
   `bg_trd = 0` this keeps every point in front of its camera, whatever its confidence.

Clip layout (as ViewCrafter's sparse-view interpolation): C clips of L frames each share
their boundary frames, so the trajectory has C (L - 1) + 1 cameras. By default there is one
clip per consecutive pair of relay cameras (C = N - 1), so clip c runs from relay camera c to
c + 1. Renders at a relay camera are replaced by the relay image itself, and each clip's
reference image is the relay image nearest its first camera (the relay image it starts at
in the default layout).

The first and last relay views are the input keyframes A and B (see stages.relay_pose.relay_frames),
so the generated frames at their cameras are copies of the inputs (their renders are the
inputs, and the first is also the clip's reference image). They are not offered to the
Feature Matching Selector: they would score highest while adding no view between A and B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol

import numpy as np

from ..core.config import check_keys, strict_config
from ..core.imageops import cover_crop
from ..core.render import (
    VIEWCRAFTER_POINTS_PER_PIXEL,
    VIEWCRAFTER_RADIUS_NDC,
    PointRasterRenderer,
)
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
    min_conf_thr: ViewCrafter's `--min_conf_thr` (3.0); with more than two relay views, a
        point is confident when its raw DUSt3R confidence exceeds log(min_conf_thr).
    bg_trd: ViewCrafter's `--bg_trd` (0.0): points deeper than bg_trd * (max + min depth
        of their view, 40 border rows left out) are kept whatever their confidence.
    clean_tol: `clean_pointcloud`'s tolerance (0.001); None: no cleaning.
    point_radius: PyTorch3D point radius in NDC units (ViewCrafter: 0.01, i.e. 1.6 pixels
        at 512x320).
    points_per_pixel: points alpha-composited per pixel (ViewCrafter: 10).
    min_depth: points closer than this (scene units) along the optical axis are not drawn.
    device: where the point cloud is rasterised (the profile's device; follows `to`).
    replace_key_renders: renders at relay cameras are replaced by the relay images.
    """

    num_frames: int = 25
    num_clips: int | None = None
    width: int = 512
    height: int = 320
    min_conf_thr: float = 3.0
    bg_trd: float = 0.0
    clean_tol: float | None = 0.001
    point_radius: float = VIEWCRAFTER_RADIUS_NDC
    points_per_pixel: int = VIEWCRAFTER_POINTS_PER_PIXEL
    min_depth: float = 1e-6
    replace_key_renders: bool = True
    device: str = "cpu"

    @classmethod
    def from_dict(cls, conf: Mapping[str, Any] | None, section: str = "bridge.synthesizer.render"):
        """Raises ValueError naming `section` and the valid keys for an unknown key."""
        return strict_config(cls, section, conf)


@dataclass
class TrajectoryRenders:
    """Renders along the whole trajectory: relay (at model resolution), trajectory cameras,
    renders [T x H x W x 3] uint8 and their coverage masks [T x H x W] bool."""

    relay: RelayAtModelResolution
    trajectory: CameraTrajectory
    renders: np.ndarray
    masks: np.ndarray


@dataclass
class RelayAtModelResolution:
    """Relay views resized to the model resolution.

    images: [N x h x w x 3] uint8; K: [N x 3 x 3]; cam_to_world: [N x 4 x 4].
    """

    images: np.ndarray
    K: np.ndarray
    cam_to_world: np.ndarray


def view_depths(relay: SceneReconstruction) -> np.ndarray:
    """[N x H x W] depth of every relay point in its own camera (camera-frame z)."""
    world_to_cam = np.linalg.inv(np.asarray(relay.cam_to_world, dtype=np.float64))
    points = np.asarray(relay.points, dtype=np.float64)
    return (
        np.einsum("nj,nhwj->nhw", world_to_cam[:, 2, :3], points)
        + world_to_cam[:, 2, 3, None, None]
    )


def clean_confidence(relay: SceneReconstruction, tol: float = 0.001) -> np.ndarray:
    """[N x H x W] confidences after DUSt3R's `clean_pointcloud(tol, max_bad_conf=0)`.

    Each point of view i is projected into every other view j; where it lands in front of
    j's depth map (closer than (1 - tol) times j's depth at the rounded pixel) and is less
    confident than j's point there, its confidence is set to 0. As the official loop, views
    are visited in order and compare against the confidences cleaned so far.
    """
    if not 0 <= tol < 1:
        raise ValueError(f"tol must be in [0, 1), got {tol}")
    confidence = np.array(relay.confidence, dtype=np.float32)
    depths = view_depths(relay)
    world_to_cam = np.linalg.inv(np.asarray(relay.cam_to_world, dtype=np.float64))
    num_views = len(confidence)
    for i in range(num_views):
        points = np.asarray(relay.points[i], dtype=np.float64)
        for j in range(num_views):
            if i == j:
                continue
            height, width = depths[j].shape
            cam = points @ world_to_cam[j, :3, :3].T + world_to_cam[j, :3, 3]
            proj_depth = cam[..., 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                pixels = cam @ np.asarray(relay.K[j], dtype=np.float64).T
                u = np.round(pixels[..., 0] / pixels[..., 2])
                v = np.round(pixels[..., 1] / pixels[..., 2])
            visible = (proj_depth > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
            uj, vj = u[visible].astype(np.int64), v[visible].astype(np.int64)
            bad = (proj_depth[visible] < (1 - tol) * depths[j][vj, uj]) & (
                confidence[i][visible] < confidence[j][vj, uj]
            )
            rows, cols = np.nonzero(visible)
            confidence[i][rows[bad], cols[bad]] = np.minimum(confidence[i][rows[bad], cols[bad]], 0)
    return confidence


# Rows left out at the top and bottom of each depth map by ViewCrafter's background mask.
BACKGROUND_MASK_BORDER = 40


def viewcrafter_point_masks(
    relay: SceneReconstruction,
    min_conf_thr: float = 3.0,
    bg_trd: float = 0.0,
    clean_tol: float | None = 0.001,
) -> np.ndarray:
    """[N x H x W] bool: the relay points ViewCrafter's sparse-view interpolation renders.

    Two views: every point. More: (cleaned confidence > log(min_conf_thr)) OR (depth >
    bg_trd (max + min) of the view's depth map without 40 border rows; the whole map when it
    has no more than 80 rows, where the official slice would be empty).
    """
    num_views = len(relay.images)
    depths = view_depths(relay)
    if num_views <= 2:
        return np.ones(depths.shape, dtype=bool)
    confidence = relay.confidence if clean_tol is None else clean_confidence(relay, clean_tol)
    confident = np.asarray(confidence) > np.log(min_conf_thr)  # conf_trf = log
    masks = []
    for view_conf, depth in zip(confident, depths):
        border = BACKGROUND_MASK_BORDER
        inner = depth[border:-border] if depth.shape[0] > 2 * border else depth
        threshold = bg_trd * (np.nanmax(inner) + np.nanmin(inner))
        masks.append(view_conf | (depth > threshold))
    return np.stack(masks)


def relay_point_cloud(
    relay: SceneReconstruction,
    min_conf_thr: float = 3.0,
    bg_trd: float = 0.0,
    clean_tol: float | None = 0.001,
) -> tuple[np.ndarray, np.ndarray]:
    """The relay points ViewCrafter renders, finite, [P x 3] float32, with colours [P x 3] uint8."""
    points, colors = [], []
    for view, image in enumerate(relay.images):
        if relay.points[view].shape[:2] != image.shape[:2]:
            raise ValueError(
                f"relay view {view}: point map is {relay.points[view].shape[:2]} but the image "
                f"is {image.shape[:2]}; they must have one point per pixel"
            )
    masks = viewcrafter_point_masks(relay, min_conf_thr, bg_trd, clean_tol)
    for view, image in enumerate(relay.images):
        view_points = relay.points[view]
        keep = masks[view] & np.isfinite(view_points).all(axis=-1)
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
        """Moves the generator's model (the stage's only resident weights) to `device`;
        the point cloud is rasterised there too."""
        self.conf.device = str(device)
        if hasattr(self.generator, "to"):
            self.generator.to(device)
        return self

    def trajectory(self, relay: RelayAtModelResolution) -> CameraTrajectory:
        """Cameras of all clips, boundary frames shared: C (L - 1) + 1 of them."""
        num_keys = relay.cam_to_world.shape[0]
        num_clips = self.conf.num_clips or num_keys - 1
        num_frames = num_clips * (self.conf.num_frames - 1) + 1
        return interpolate_trajectory(relay.cam_to_world, relay.K, num_frames)

    def render_trajectory(self, relay: SceneReconstruction, ctx: RunContext) -> TrajectoryRenders:
        """The relay point cloud rendered from every trajectory camera (ViewCrafter's
        `run_render`), renders at relay cameras replaced by the relay images."""
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
        points, colors = relay_point_cloud(relay, conf.min_conf_thr, conf.bg_trd, conf.clean_tol)
        renderer = PointRasterRenderer(
            points,
            colors,
            radius_ndc=conf.point_radius,
            points_per_pixel=conf.points_per_pixel,
            min_depth=conf.min_depth,
            device=conf.device,
        )

        num_cameras = len(trajectory)
        renders = np.empty((num_cameras, conf.height, conf.width, 3), dtype=np.uint8)
        masks = np.empty((num_cameras, conf.height, conf.width), dtype=bool)
        with ctx.subspan(0.0, RENDER_PROGRESS_SHARE):
            for frame in range(num_cameras):
                rendering = renderer.render(
                    trajectory.cam_to_world[frame], trajectory.K[frame], conf.height, conf.width
                )
                renders[frame], masks[frame] = rendering.image, rendering.mask
                ctx.report((frame + 1) / num_cameras)
        if conf.replace_key_renders:
            for key, frame in trajectory.key_frame_indices().items():
                renders[frame] = model_relay.images[key]
                masks[frame] = True
        return TrajectoryRenders(model_relay, trajectory, renders, masks)

    def synthesize(self, relay: SceneReconstruction, ctx: RunContext) -> list[CandidateFrame]:
        """Generated frames along the trajectory through the relay cameras, in order.

        Each trajectory camera appears once (shared clip boundaries are kept from the
        earlier clip), except the first and last, whose frames are copies of the inputs;
        index is the camera's position along the trajectory.
        """
        conf = self.conf
        rendered = self.render_trajectory(relay, ctx)
        trajectory, model_relay = rendered.trajectory, rendered.relay
        renders, masks = rendered.renders, rendered.masks
        num_cameras = len(trajectory)

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
                ctx.report(1.0)
            for offset in range(1, conf.num_frames):
                frame = first + offset
                if frame == num_cameras - 1:
                    break  # the last relay camera: a copy of input B
                keyframe = Keyframe(image=generated[offset], K=trajectory.K[frame].copy())
                candidates.append(
                    CandidateFrame(
                        keyframe=keyframe,
                        index=frame,
                        source="viewcrafter",
                        cam_to_world=trajectory.cam_to_world[frame].copy(),
                    )
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
    render.device = device  # rasterise where the generator runs
    return PointCloudViewSynthesizer(ViewCrafterGenerator.from_config(generator), render)


def build_render_only_synthesizer(section: dict[str, Any]) -> PointCloudViewSynthesizer:
    """PointCloudViewSynthesizer + RenderOnlyGenerator from `{render: {...}}`."""
    parts = _split_section(section, ("render",))
    return PointCloudViewSynthesizer(RenderOnlyGenerator(), parts["render"])
