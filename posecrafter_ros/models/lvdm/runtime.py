"""Building, loading and running an lvdm model from a plain `conf` dict (device, dtype, offload).

Shared by the DynamiCrafter interpolator (Stage 1) and the ViewCrafter generator (Stage 2).
Common conf keys (defaults in `RuntimeConfig`):
  checkpoint   path to the official .ckpt / .safetensors / shard set ("" only with tiny)
  tiny         build a tiny random model (seeded) instead: CPU tests and benchmarks (it runs
               at a reduced size, see RuntimeConfig.model_size)
  random_weights  the full-size preset with seeded random weights, no checkpoint: the same
               compute and memory as the official model (cost benchmarks, scripts/bench_pipeline.py)
  preset       full-size architecture (configs.PRESETS); the stage picks a sensible default
  device       "cpu", "cuda", "cuda:1", ...
  dtype        UNet compute dtype: "float32" (exact), "bfloat16" or "float16" (autocast, and
               the UNet weights are stored in that dtype to halve their memory)
  attention    "einsum" (the official path, exact) or "sdpa" (PyTorch fused attention)
  offload      keep idle sub-models on the CPU and move each to `device` only while it runs
  ddim_steps, cfg_scale, guidance_rescale, eta, frame_stride, prompt, seed, height, width,
  num_frames   sampling settings (official values: 50, 7.5, 0.7, 1.0, ...)
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from ..checkpoint import CheckpointError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .latent_diffusion import LatentVideoDiffusion, LVDMConfig

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class RuntimeConfig:
    checkpoint: str = ""
    tiny: bool = False
    random_weights: bool = False
    preset: str = ""
    device: str = "cpu"
    dtype: str = "float32"
    attention: str = "einsum"
    offload: bool = False
    ddim_steps: int = 50
    cfg_scale: float = 7.5
    guidance_rescale: float = 0.7
    eta: float = 1.0
    frame_stride: int = 5
    prompt: str = ""
    seed: int = 123
    height: int = 320
    width: int = 512
    num_frames: int = 16
    timestep_spacing: str = "uniform_trailing"

    @classmethod
    def from_dict(
        cls,
        conf: Mapping[str, Any],
        defaults: Mapping[str, Any] | None = None,
        section: str = "lvdm model",
    ) -> "RuntimeConfig":
        """Merge `defaults` (the stage's) and `conf`. A key that is not a field is an error
        naming `section` (the profile section it came from) and the valid keys."""
        names = sorted(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(conf) - set(names))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in {section}; valid keys: {names}")
        merged = {**(defaults or {}), **conf}
        config = cls(**merged)
        config.checkpoint = str(config.checkpoint or "")
        if config.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {config.dtype!r}")
        if config.height % 64 or config.width % 64:
            raise ValueError(
                f"height and width must be multiples of 64, got {config.height}x{config.width}"
            )
        return config

    @property
    def model_size(self) -> tuple[int, int]:
        """(height, width) the network runs at. Tiny random models run at 64 px high (width
        rounded to a multiple of 64) and their frames are resized to height x width, so that
        pipeline tests at the real output size stay fast; real models run at height x width."""
        if not self.tiny:
            return self.height, self.width
        return 64, max(64, round(64 * self.width / self.height / 64) * 64)

    @property
    def torch_dtype(self) -> "torch.dtype":
        import torch

        return getattr(torch, self.dtype)


def init_tiny_weights(model: "nn.Module", seed: int) -> None:
    """Deterministic random values for every parameter (tiny test models and full-size cost
    runs): norms near identity, matrices scaled by 1/sqrt(fan_in), vectors small."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(int(seed))

    def randn(shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    with torch.no_grad():
        for module in model.modules():
            norm = isinstance(module, (nn.GroupNorm, nn.LayerNorm))
            for name, param in module.named_parameters(recurse=False):
                if norm and name == "weight":
                    param.copy_(1 + 0.1 * randn(param.shape))
                elif param.ndim >= 2:
                    param.copy_(randn(param.shape) / max(param[0].numel(), 1) ** 0.5)
                else:
                    param.copy_(0.02 * randn(param.shape))


def build_model(conf: RuntimeConfig, variant: str, default_preset: str) -> "LatentVideoDiffusion":
    """Tiny random model (conf.tiny), the full-size preset with random weights
    (conf.random_weights) or loaded from conf.checkpoint."""
    import torch

    from . import configs
    from .attention import set_attention_backend
    from .latent_diffusion import LatentVideoDiffusion
    from .loading import load_lvdm_checkpoint

    if conf.tiny:
        config: LVDMConfig = configs.tiny(variant, *conf.model_size)
        model = LatentVideoDiffusion(config)
        init_tiny_weights(model, conf.seed)
    elif conf.random_weights:
        config = configs.preset(conf.preset or default_preset)
        model = LatentVideoDiffusion(
            config.replace(latent_size=(conf.height // 8, conf.width // 8))
        )
        init_tiny_weights(model, conf.seed)
    else:
        if not conf.checkpoint.strip():
            raise CheckpointError(
                f"no {variant} checkpoint configured: set `checkpoint` to the official model file "
                "(or `tiny: true` for a random test model)"
            )
        config = configs.preset(conf.preset or default_preset)
        config = config.replace(latent_size=(conf.height // 8, conf.width // 8))
        with torch.device("meta"):
            model = LatentVideoDiffusion(config)
        load_lvdm_checkpoint(model, conf.checkpoint)
        model.materialize_constants()
    set_attention_backend(model, conf.attention)
    model.eval().requires_grad_(False)
    if conf.dtype != "float32":
        model.unet.to(conf.torch_dtype)
    if not conf.offload:
        model.to(conf.device)
    return model


@contextlib.contextmanager
def placed(module: "nn.Module", device: str, offload: bool) -> Iterator["nn.Module"]:
    """Run `module` on `device`; with offload, move it there for the block and back after."""
    if not offload:
        yield module
        return
    module.to(device)
    try:
        yield module
    finally:
        module.to("cpu")
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def autocast_dtype(conf: RuntimeConfig) -> "torch.dtype | None":
    return None if conf.dtype == "float32" else conf.torch_dtype


def condition_sample_decode(
    model: "LatentVideoDiffusion",
    conf: RuntimeConfig,
    videos: "torch.Tensor",
    concat: "torch.Tensor",
    noise: Any,
    progress: Callable[[float], None],
) -> "torch.Tensor":
    """The half of image-guided synthesis that DynamiCrafter and ViewCrafter share.

    videos: [1 x 3 x T x H x W] in [-1, 1] (frame 0 conditions the cross-attention);
    concat: [1 x 4 x T x h x w] latents concatenated to the UNet input.
    Conditioning (text + first-frame image tokens, and the unconditional pair), DDIM sampling
    with classifier-free guidance (`progress(fraction)` after every step; the caller's
    callback may raise to stop), then VAE decoding:
    returns [3 x T x H x W] in [-1, 1]. Call under torch.no_grad().
    """
    with (
        placed(model.cond_stage_model, conf.device, conf.offload),
        placed(model.embedder, conf.device, conf.offload),
        placed(model.image_proj_model, conf.device, conf.offload),
    ):
        cond, uncond = model.conditionings([conf.prompt], videos[:, :, 0], concat)
    with placed(model.model, conf.device, conf.offload):
        latents = model.sample(
            cond,
            uncond,
            noise,
            conf.ddim_steps,
            fs=conf.frame_stride,
            eta=conf.eta,
            cfg_scale=conf.cfg_scale,
            guidance_rescale=conf.guidance_rescale,
            spacing=conf.timestep_spacing,
            callback=lambda i, n: progress((i + 1) / n),
            autocast_dtype=autocast_dtype(conf),
        )
    with placed(model.first_stage_model, conf.device, conf.offload):
        return model.decode_latents(latents)[0]
