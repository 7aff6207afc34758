"""The full lvdm video model (`LatentVisualDiffusion` / `VIPLatentDiffusion`), rewritten.

Sub-module names reproduce the official checkpoint prefixes: `model.diffusion_model`
(UNet), `first_stage_model` (VAE, LDM key names converted for diffusers on load),
`cond_stage_model.model` (OpenCLIP text), `embedder.model` (OpenCLIP image),
`image_proj_model` (Resampler), and the schedule buffers at the top level.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .autoencoder import VAEConfig, build_autoencoder
from .clip import CLIPConfig, ImageEmbedder, TextEncoder
from .diffusion import (
    DDIMSampler,
    NoiseSchedule,
    NoiseSource,
    ScheduleConfig,
    StepRecord,
)
from .resampler import Resampler, ResamplerConfig
from .tokenizer import default_tokenizer
from .unet3d import UNet3D, UNetConfig

VARIANTS = ("dynamicrafter", "viewcrafter")


@dataclass
class LVDMConfig:
    """Everything needed to build one lvdm model (the official yaml, flattened).

    variant: "dynamicrafter" or "viewcrafter" (only the sampler's first rescale factor and the
    conditioning recipe differ). latent_size: (h, w) latent grid = image size / 8.
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    clip: CLIPConfig = field(default_factory=CLIPConfig)
    resampler: ResamplerConfig = field(default_factory=ResamplerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    latent_size: tuple[int, int] = (40, 64)
    variant: str = "dynamicrafter"
    text_layer: str = "penultimate"
    uncond_type: str = "empty_seq"

    @classmethod
    def from_official(cls, config: Mapping[str, Any], variant: str | None = None) -> "LVDMConfig":
        """Parse an official yaml as a dict ({"model": {...}}), optionally with an
        `open_clip_arch` table ({arch name: open_clip model config}) for non-ViT-H-14 towers."""
        model = config["model"]
        params = model["params"]
        target = model.get("target", "")
        if variant is None:
            variant = "viewcrafter" if "VIPLatentDiffusion" in target else "dynamicrafter"
        if params.get("conditioning_key", "hybrid") != "hybrid":
            raise ValueError("only the hybrid (concat + cross-attention) conditioning is supported")
        if not params.get("perframe_ae", True):
            raise ValueError("only per-frame autoencoding (perframe_ae: true) is supported")
        arch = params["cond_stage_config"].get("params", {}).get("arch", "ViT-H-14")
        img_arch = params["img_cond_stage_config"].get("params", {}).get("arch", "ViT-H-14")
        if arch != img_arch:
            raise ValueError(
                f"text and image towers must share one architecture ({arch} vs {img_arch})"
            )
        arch_table = config.get("open_clip_arch", {})
        clip = CLIPConfig.from_dict(arch_table[arch]) if arch in arch_table else _named_clip(arch)
        image_size = params.get("image_size", [40, 64])
        schedule = ScheduleConfig(
            timesteps=int(params.get("timesteps", 1000)),
            linear_start=float(params.get("linear_start", 0.00085)),
            linear_end=float(params.get("linear_end", 0.012)),
            rescale_betas_zero_snr=bool(params.get("rescale_betas_zero_snr", False)),
            parameterization=params.get("parameterization", "eps"),
            use_dynamic_rescale=bool(params.get("use_dynamic_rescale", False)),
            base_scale=float(params.get("base_scale", 0.7)),
            turning_step=int(params.get("turning_step", 400)),
        )
        return cls(
            unet=UNetConfig.from_dict(params["unet_config"]["params"]),
            vae=VAEConfig.from_official(
                params["first_stage_config"]["params"], float(params.get("scale_factor", 0.18215))
            ),
            clip=clip,
            resampler=ResamplerConfig.from_dict(params["image_proj_stage_config"]["params"]),
            schedule=schedule,
            latent_size=(int(image_size[0]), int(image_size[1])),
            variant=variant,
            text_layer=params["cond_stage_config"].get("params", {}).get("layer", "last"),
            uncond_type=params.get("uncond_type", "empty_seq"),
        )

    def replace(self, **changes: Any) -> "LVDMConfig":
        return dataclasses.replace(self, **changes)


def _named_clip(arch: str) -> CLIPConfig:
    if arch != "ViT-H-14":
        raise ValueError(
            f"unknown OpenCLIP architecture {arch!r}: give its config in `open_clip_arch`"
        )
    return CLIPConfig()


class _DiffusionWrapper(nn.Module):
    """Holds the UNet under the official name `model.diffusion_model`."""

    def __init__(self, unet: UNet3D):
        super().__init__()
        self.diffusion_model = unet


@dataclass
class Conditioning:
    """Inputs of one UNet branch: cross-attention tokens and the concatenated latents.

    context: [B x (77 + image tokens) x context_dim]; concat: [B x 4 x T x h x w].
    """

    context: torch.Tensor
    concat: torch.Tensor


class LatentVideoDiffusion(nn.Module):
    """UNet + VAE + OpenCLIP text/image + Resampler + schedule, with official key names."""

    def __init__(self, config: LVDMConfig):
        super().__init__()
        if config.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {config.variant!r}")
        if config.text_layer not in ("last", "penultimate"):
            raise ValueError(
                f"text layer must be 'last' or 'penultimate', got {config.text_layer!r}"
            )
        self.config = config
        self.model = _DiffusionWrapper(UNet3D(config.unet))
        self.first_stage_model = build_autoencoder(config.vae)
        self.cond_stage_model = TextEncoder(
            config.clip, skip_last_layers=int(config.text_layer == "penultimate")
        )
        self.embedder = ImageEmbedder(config.clip)
        self.image_proj_model = Resampler(config.resampler)
        schedule = NoiseSchedule(config.schedule)
        # Top-level buffers, as in the checkpoint (no prefix).
        for name, buf in schedule.named_buffers():
            self.register_buffer(name, buf)

    def materialize_constants(self) -> None:
        """Re-create buffers that are not in checkpoints (after a meta-device build + load)."""
        text = self.cond_stage_model.model
        text.attn_mask = text.causal_mask(text.positional_embedding.shape[0], device="cpu")
        self.embedder.materialize_constants()
        tensors = [*self.named_parameters(), *self.named_buffers()]
        leftovers = [name for name, t in tensors if t.is_meta]
        if leftovers:
            raise RuntimeError(f"tensors left on the meta device after loading: {leftovers[:5]}")

    # -- conditioning -------------------------------------------------------------------
    @property
    def unet(self) -> UNet3D:
        return self.model.diffusion_model

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> [N x 77 x text width] (penultimate layer, ln_final)."""
        device = self.cond_stage_model.model.positional_embedding.device
        return self.cond_stage_model(default_tokenizer()(list(prompts)).to(device))

    def encode_image_condition(self, images: torch.Tensor) -> torch.Tensor:
        """Condition images in [-1, 1], [B x 3 x H x W] -> Resampler tokens [B x L x context_dim]."""
        return self.image_proj_model(self.embedder(images))

    def encode_frames(
        self, frames: torch.Tensor, noise: NoiseSource, keep: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Frames in [-1, 1], [B x 3 x T x H x W] -> sampled, scaled latents [B x 4 x T x h x w].

        Each frame is encoded separately (perframe_ae) and its posterior SAMPLED with one
        noise draw per frame, in (b t) order, as the official get_latent_z does. `keep`: frame
        indices whose latents are needed; the others still consume their noise draw (so the
        random stream stays aligned) but are not encoded and come back as zeros.
        """
        b, _, t, h, w = frames.shape
        flat = frames.transpose(1, 2).reshape(b * t, 3, h, w)
        wanted = set(range(t)) if keep is None else {k % t for k in keep}
        latents = []
        scale = self.config.vae.scale_factor
        for index in range(b * t):
            if index % t in wanted:
                dist = self.first_stage_model.encode(flat[index : index + 1]).latent_dist
                eps = noise.randn(dist.mean.shape).to(dist.mean)
                latents.append((dist.mean + dist.std * eps) * scale)
            else:
                shape = (1, self.config.vae.z_channels, h // self.downsample, w // self.downsample)
                noise.randn(shape)
                latents.append(torch.zeros(shape, device=frames.device, dtype=frames.dtype))
        z = torch.cat(latents)
        return z.reshape(b, t, *z.shape[1:]).transpose(1, 2)

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.config.vae.ch_mult) - 1)

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """[B x 4 x T x h x w] -> frames [B x 3 x T x H x W] (not clamped), one frame at a time."""
        b, c, t, h, w = z.shape
        # Multiply by the reciprocal (not divide) as the official decode_core: rounding differs.
        flat = (1.0 / self.config.vae.scale_factor) * z.transpose(1, 2).reshape(b * t, c, h, w)
        frames = torch.cat(
            [self.first_stage_model.decode(flat[i : i + 1]).sample for i in range(b * t)]
        )
        return frames.reshape(b, t, *frames.shape[1:]).transpose(1, 2)

    def conditionings(
        self, prompts: Sequence[str], condition_image: torch.Tensor, concat: torch.Tensor
    ) -> tuple[Conditioning, Conditioning]:
        """(conditional, unconditional) branches as the official image_guided_synthesis builds them.

        condition_image: [B x 3 x H x W] in [-1, 1]; the unconditional branch uses an empty
        prompt and an all-zero image, and the same concat latents.
        """
        b = condition_image.shape[0]
        image_tokens = self.encode_image_condition(condition_image)
        cond = Conditioning(torch.cat([self.encode_text(prompts), image_tokens], dim=1), concat)
        if self.config.uncond_type == "empty_seq":
            uc_text = self.encode_text([""] * b)
        else:
            uc_text = torch.zeros_like(
                cond.context[:, : cond.context.shape[1] - image_tokens.shape[1]]
            )
        uc_image = self.encode_image_condition(torch.zeros_like(condition_image))
        return cond, Conditioning(torch.cat([uc_text, uc_image], dim=1), concat)

    # -- sampling -----------------------------------------------------------------------
    def sample(
        self,
        cond: Conditioning,
        uncond: Conditioning,
        noise: NoiseSource,
        steps: int,
        fs: int,
        eta: float = 1.0,
        cfg_scale: float = 7.5,
        guidance_rescale: float = 0.7,
        spacing: str = "uniform_trailing",
        callback=None,
        record: list[StepRecord] | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """DDIM sampling -> latents [B x 4 x T x h x w] (same shape as cond.concat)."""
        shape = tuple(cond.concat.shape)
        fs_tensor = torch.full((shape[0],), int(fs), dtype=torch.long, device=cond.concat.device)

        def denoise(x: torch.Tensor, ts: torch.Tensor, conditional: bool) -> torch.Tensor:
            branch = cond if conditional else uncond
            inputs = torch.cat([x, branch.concat], dim=1)
            if autocast_dtype is None:
                return self.unet(inputs, ts, branch.context, fs_tensor)
            with torch.autocast(x.device.type, dtype=autocast_dtype):
                return self.unet(inputs, ts, branch.context, fs_tensor).float()

        sampler = DDIMSampler(self, self.config.variant)
        return sampler.sample(
            denoise,
            shape,
            noise,
            steps,
            eta,
            cfg_scale,
            guidance_rescale,
            spacing,
            callback,
            record,
        )
