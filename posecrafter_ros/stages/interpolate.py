"""HVG stage 1: DynamiCrafter interpolation between two keyframes (I0, IT) -> T frames.

As the official `scripts/run_application.sh interp` (inference_512_v1.0.yaml, the
dynamicrafter_512_interp_v1 checkpoint, scripts/evaluation/inference.py): both images are
brought to 512x320 (`load_data_prompts`: short side resized, centre crop; see
core/imageops.py for the one deviation, 4:3 and portrait images are covered rather than
padded), the input video is A repeated T/2 times then B, the image cross-attention sees A
only, the concatenated latents keep only the first and last frames (the rest zeroed),
frame_stride 5, CFG 7.5 with guidance rescale 0.7, DDIM 50 steps uniform-trailing, eta 1,
seed 12306. The official prompt comes from a text file next to each image pair; a robot's
keyframes have none, so the prompt is empty (the official code's unconditional text).

Intrinsics: each K is mapped through the same resize + crop. Frame 0 carries A's mapped K,
the last frame B's; middle frames carry the average of the two (the relay and pose stages
treat generated frames' intrinsics as unknown and optimise their focals).
The caller picks relay frames from the returned list, e.g. indices {0, 1, T-2, T-1}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..core.imageops import resize_to_model
from ..core.types import Keyframe, RunContext
from ..models.lvdm.runtime import RuntimeConfig, build_model, condition_sample_decode, placed

if TYPE_CHECKING:
    from ..models.lvdm.latent_diffusion import LatentVideoDiffusion

DYNAMICRAFTER_DEFAULTS: dict[str, Any] = {
    "preset": "dynamicrafter_512_interp",
    "frame_stride": 5,  # run_application.sh: FS=5
    "num_frames": 16,
    "prompt": "",
    "seed": 12306,  # run_application.sh interp
}


class DynamiCrafterInterpolator:
    """Implements core.stages.Interpolator with a DynamiCrafter-512 interp model."""

    def __init__(
        self, model: "LatentVideoDiffusion", conf: RuntimeConfig | Mapping[str, Any] | None = None
    ):
        if not isinstance(conf, RuntimeConfig):
            conf = RuntimeConfig.from_dict(
                conf or {}, DYNAMICRAFTER_DEFAULTS, "bridge.interpolator"
            )
        if model.config.variant != "dynamicrafter":
            raise ValueError(
                "DynamiCrafterInterpolator needs a DynamiCrafter (variant 'dynamicrafter') model"
            )
        if conf.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {conf.num_frames}")
        self.model = model
        self.conf = conf

    @classmethod
    def from_config(cls, conf: Mapping[str, Any]) -> "DynamiCrafterInterpolator":
        """Build from a profile dict (keys: see models/lvdm/runtime.py); loads the checkpoint.

        Raises CheckpointError when no checkpoint is configured and `tiny` is false.
        """
        runtime = RuntimeConfig.from_dict(conf, DYNAMICRAFTER_DEFAULTS, "bridge.interpolator")
        return cls(build_model(runtime, "dynamicrafter", DYNAMICRAFTER_DEFAULTS["preset"]), runtime)

    def to(self, device: str) -> "DynamiCrafterInterpolator":
        self.conf.device = str(device)
        if not self.conf.offload:
            self.model.to(device)
        return self

    def prepare(self, keyframe: Keyframe) -> tuple[np.ndarray, np.ndarray]:
        """Keyframe -> (RGB uint8 [height x width x 3] at the model size, mapped K)."""
        image = keyframe.image
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        crop, K, _ = resize_to_model(image, keyframe.K, (self.conf.width, self.conf.height))
        return crop, K

    def interpolate(self, a: Keyframe, b: Keyframe, ctx: RunContext) -> list[Keyframe]:
        """T frames from A to B, each [height x width x 3] uint8 with mapped intrinsics.

        Reports progress after every DDIM step; ctx.check() errors (cancel, budget) propagate.
        """
        import torch

        from ..models.lvdm.diffusion import TorchNoise
        from ..models.lvdm.video import interpolation_video, resize, tensor_to_images

        conf, model = self.conf, self.model
        image_a, K_a = self.prepare(a)
        image_b, K_b = self.prepare(b)
        model_h, model_w = conf.model_size
        frames = conf.num_frames
        device = torch.device(conf.device)
        noise = TorchNoise(conf.seed, device)
        ctx.check()
        with torch.no_grad():
            videos = interpolation_video(
                resize(image_a, model_h, model_w), resize(image_b, model_h, model_w), frames
            ).to(device)
            with placed(model.first_stage_model, conf.device, conf.offload):
                # Only the end frames' latents are used; the others still draw their noise.
                z = model.encode_frames(videos, noise, keep=[0, frames - 1])
            concat = torch.zeros_like(z)
            concat[:, :, 0], concat[:, :, -1] = z[:, :, 0], z[:, :, -1]
            video = condition_sample_decode(model, conf, videos, concat, noise, ctx.report)
        images = [resize(image, conf.height, conf.width) for image in tensor_to_images(video)]
        K_mid = (K_a + K_b) / 2
        out = []
        for index, image in enumerate(images):
            K = K_a if index == 0 else K_b if index == frames - 1 else K_mid
            fraction = index / (frames - 1)
            stamp = int(round(a.stamp_ns + fraction * (b.stamp_ns - a.stamp_ns)))
            out.append(Keyframe(image=image, K=K.copy(), frame_id=a.frame_id, stamp_ns=stamp))
        return out
