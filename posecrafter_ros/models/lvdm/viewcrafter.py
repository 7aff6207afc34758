"""ViewCrafter: point-cloud renders -> sharp video frames (HVG stage 2).

Conditioning as the official `ViewCrafter.run_diffusion` + `image_guided_synthesis`:
- the first render is replaced by the reference image (the render of the reference camera);
  in ViewCrafter's sparse-view mode the last one too (`last_reference`);
- every frame, in [-1, 1], is VAE-encoded (posterior sampled, one draw per frame) and the
  latents of ALL frames are the concatenated condition (`c_concat = z`);
- the image cross-attention condition is frame `condition_index[0] = 0` only (the reference);
- prompt "Rotating view of a scene", frame_stride 10, CFG 7.5 with guidance rescale 0.7,
  DDIM with uniform-trailing spacing and eta 1; the unconditional branch keeps c_concat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ...core.types import RunContext
from .runtime import RuntimeConfig, build_model, condition_sample_decode, placed

if TYPE_CHECKING:
    from .latent_diffusion import LatentVideoDiffusion

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
            conf = RuntimeConfig.from_dict(conf or {}, VIEWCRAFTER_DEFAULTS)
        if model.config.variant != "viewcrafter":
            raise ValueError(
                "ViewCrafterGenerator needs a ViewCrafter (variant 'viewcrafter') model"
            )
        self.model = model
        self.conf = conf

    @classmethod
    def from_config(cls, conf: Mapping[str, Any]) -> "ViewCrafterGenerator":
        """Build from a profile dict (see runtime.py for the keys); loads the checkpoint."""
        runtime = RuntimeConfig.from_dict(conf, VIEWCRAFTER_DEFAULTS)
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

        from .diffusion import TorchNoise
        from .video import images_to_tensor, resize, tensor_to_images

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
            video = condition_sample_decode(model, conf, videos, z, noise, ctx)
        out = tensor_to_images(video)
        if (h, w) != out.shape[1:3]:
            out = np.stack([resize(f, h, w) for f in out])
        return out
