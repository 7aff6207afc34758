"""The lvdm 3D UNet of DynamiCrafter / ViewCrafter (`openaimodel3d.UNetModel`), rewritten.

Video latents are processed as [(B*T) x C x H x W] (batch-major, frame-minor) by the 2D
layers, and as [B x C x T x H x W] by the temporal ones. A level is ResBlock (+ temporal
conv, key `temopral_conv` as in the checkpoints) -> SpatialTransformer -> TemporalTransformer.
State-dict names equal the official `model.diffusion_model.*` keys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SpatialTransformer, TemporalTransformer

# The official UNet splits image tokens per frame only when the context holds exactly
# 77 text tokens + 16 image tokens per frame (hard-coded there).
IMAGE_TOKENS_PER_FRAME = 16
TEXT_TOKENS = 77
# The extra temporal transformer after the first conv always has 8 heads (hard-coded there).
INIT_ATTN_HEADS = 8


REQUIRED_UNET_KEYS = {
    "in_channels",
    "model_channels",
    "out_channels",
    "num_res_blocks",
    "attention_resolutions",
}
# Defaults of the official UNetModel constructor for its optional arguments.
OFFICIAL_UNET_DEFAULTS: dict[str, Any] = {
    "dropout": 0.0,
    "channel_mult": [1, 2, 4, 8],
    "conv_resample": True,
    "dims": 2,
    "context_dim": None,
    "use_scale_shift_norm": False,
    "resblock_updown": False,
    "num_heads": -1,
    "num_head_channels": -1,
    "transformer_depth": 1,
    "use_linear": False,
    "use_checkpoint": False,
    "temporal_conv": False,
    "tempspatial_aware": False,
    "temporal_attention": True,
    "use_relative_position": True,
    "use_causal_attention": False,
    "temporal_length": None,
    "use_fp16": False,
    "addition_attention": False,
    "temporal_selfatt_only": True,
    "image_cross_attention": False,
    "image_cross_attention_scale_learnable": False,
    "default_fs": 4,
    "fs_condition": False,
}


@dataclass
class UNetConfig:
    """Constructor arguments of the official UNetModel (names as in the official yamls).

    Field defaults are the DynamiCrafter-512 yaml values; `from_dict` instead fills keys a
    dict omits with the official constructor's own defaults, so `from_dict(params)` builds
    what `UNetModel(**params)` builds.

    Flags the official DynamiCrafter/ViewCrafter configs never enable (relative position,
    causal temporal attention, resblock up/down sampling) are rejected at construction.
    `use_checkpoint` (gradient checkpointing) and `use_fp16` are accepted for compatibility
    and have no effect: inference precision is chosen with autocast (runtime `dtype`).
    """

    in_channels: int = 8
    out_channels: int = 4
    model_channels: int = 320
    attention_resolutions: list[int] = field(default_factory=lambda: [4, 2, 1])
    num_res_blocks: int = 2
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    dropout: float = 0.1
    num_heads: int = -1
    num_head_channels: int = 64
    transformer_depth: int = 1
    context_dim: int | None = 1024
    use_linear: bool = True
    use_checkpoint: bool = False
    conv_resample: bool = True
    dims: int = 2
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    temporal_conv: bool = True
    tempspatial_aware: bool = False
    temporal_attention: bool = True
    temporal_selfatt_only: bool = True
    use_relative_position: bool = False
    use_causal_attention: bool = False
    temporal_length: int | None = 16
    use_fp16: bool = False
    addition_attention: bool = True
    image_cross_attention: bool = True
    image_cross_attention_scale_learnable: bool = False
    default_fs: int = 24
    fs_condition: bool = True

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> "UNetConfig":
        """Build from an official `unet_config.params` dict; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"unknown UNet config keys {unknown}; known: {sorted(names)}")
        missing = sorted(REQUIRED_UNET_KEYS - set(params))
        if missing:
            raise ValueError(f"UNet config lacks required keys {missing}")
        return cls(**{**OFFICIAL_UNET_DEFAULTS, **dict(params)})

    def validate(self) -> None:
        unsupported = {
            "use_relative_position": self.use_relative_position,
            "use_causal_attention": self.use_causal_attention,
            "resblock_updown": self.resblock_updown,
            "temporal_selfatt_only=False": not self.temporal_selfatt_only,
        }
        used = [name for name, on in unsupported.items() if on]
        if used:
            raise ValueError(
                f"UNet flags {used} are not used by DynamiCrafter/ViewCrafter and not supported"
            )
        if self.dims != 2:
            raise ValueError(f"dims must be 2 (frames are folded into the batch), got {self.dims}")
        if (self.num_heads == -1) == (self.num_head_channels == -1):
            raise ValueError("set exactly one of num_heads / num_head_channels")


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding, cos half first: [N] -> [N x dim] (float32)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = timesteps[:, None].float() * freqs.to(timesteps.device)[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32) evaluated in float32 and cast back (the official `GroupNormSpecific`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).type(x.dtype)


class TemporalConvBlock(nn.Module):
    """identity + 4 x [GroupNorm, SiLU, (Dropout), Conv3d over time]; x: [B x C x T x H x W]."""

    def __init__(self, channels: int, dropout: float = 0.1, spatial_aware: bool = False):
        super().__init__()
        height_kernel, height_pad = (
            ((3, 3, 1), (1, 1, 0)) if spatial_aware else ((3, 1, 1), (1, 0, 0))
        )
        width_kernel, width_pad = (
            ((3, 1, 3), (1, 0, 1)) if spatial_aware else ((3, 1, 1), (1, 0, 0))
        )
        self.conv1 = nn.Sequential(
            nn.GroupNorm(32, channels),
            nn.SiLU(),
            nn.Conv3d(channels, channels, height_kernel, padding=height_pad),
        )
        self.conv2 = self._layer(channels, dropout, width_kernel, width_pad)
        self.conv3 = self._layer(channels, dropout, height_kernel, height_pad)
        self.conv4 = self._layer(channels, dropout, width_kernel, width_pad)

    @staticmethod
    def _layer(channels: int, dropout: float, kernel: tuple, padding: tuple) -> nn.Sequential:
        return nn.Sequential(
            nn.GroupNorm(32, channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv3d(channels, channels, kernel, padding=padding),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class ResBlock(nn.Module):
    """GN-SiLU-conv, + projected embedding, GN-SiLU-dropout-conv, + skip, then temporal conv."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = False,
        use_temporal_conv: bool = False,
        tempspatial_aware: bool = False,
    ):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(
            GroupNorm32(32, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(
            nn.SiLU(),
            nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels),
        )
        self.out_layers = nn.Sequential(
            GroupNorm32(32, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        if out_channels == channels:
            self.skip_connection: nn.Module = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)
        self.use_temporal_conv = use_temporal_conv
        if use_temporal_conv:
            self.temopral_conv = TemporalConvBlock(out_channels, 0.1, tempspatial_aware)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, batch_size: int) -> torch.Tensor:
        """x: [(B*T) x C x H x W], emb: [(B*T) x E]."""
        h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        h = self.skip_connection(x) + h
        if self.use_temporal_conv:
            bt, c, hh, ww = h.shape
            h5 = h.view(batch_size, bt // batch_size, c, hh, ww).transpose(1, 2)
            h = self.temopral_conv(h5).transpose(1, 2).reshape(bt, c, hh, ww)
        return h


class Downsample(nn.Module):
    """3x3 convolution with stride 2 (key `op`)."""

    def __init__(self, channels: int, use_conv: bool = True):
        super().__init__()
        self.op: nn.Module = (
            nn.Conv2d(channels, channels, 3, stride=2, padding=1)
            if use_conv
            else nn.AvgPool2d(2, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 convolution (key `conv`)."""

    def __init__(self, channels: int, use_conv: bool = True):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class TimestepEmbedSequential(nn.Sequential):
    """Runs its layers, handing each the inputs it needs (emb, context, frame layout)."""

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None, batch_size: int
    ) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, batch_size)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                bt, c, h, w = x.shape
                x5 = x.view(batch_size, bt // batch_size, c, h, w).transpose(1, 2)
                x = layer(x5).transpose(1, 2).reshape(bt, c, h, w)
            else:
                x = layer(x)
        return x


class UNet3D(nn.Module):
    """Video denoiser: v-prediction UNet with text+image cross-attention and fs conditioning.

    forward(x: [B x C_in x T x H x W], timesteps: [B], context: [B x L x context_dim],
    fs: [B] or None) -> [B x C_out x T x H x W].
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        config.validate()
        self.config = config
        mc = config.model_channels
        time_embed_dim = mc * 4
        self.time_embed = nn.Sequential(
            nn.Linear(mc, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
        )
        if config.fs_condition:
            self.fps_embedding = nn.Sequential(
                nn.Linear(mc, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
            )
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(config.in_channels, mc, 3, padding=1))]
        )
        if config.addition_attention:
            self.init_attn = TimestepEmbedSequential(
                TemporalTransformer(
                    mc,
                    INIT_ATTN_HEADS,
                    config.num_head_channels,
                    config.transformer_depth,
                    use_linear=False,
                )
            )
        skip_channels = [mc]
        ch = mc
        ds = 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                layers: list[nn.Module] = [self._resblock(ch, mult * mc)]
                ch = mult * mc
                if ds in config.attention_resolutions:
                    layers.extend(self._transformers(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(config.channel_mult) - 1:
                self.input_blocks.append(
                    TimestepEmbedSequential(Downsample(ch, config.conv_resample))
                )
                skip_channels.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(
            self._resblock(ch, ch), *self._transformers(ch), self._resblock(ch, ch)
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(config.channel_mult))[::-1]:
            for i in range(config.num_res_blocks + 1):
                layers = [self._resblock(ch + skip_channels.pop(), mc * mult)]
                ch = mc * mult
                if ds in config.attention_resolutions:
                    layers.extend(self._transformers(ch))
                if level and i == config.num_res_blocks:
                    layers.append(Upsample(ch, config.conv_resample))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(
            GroupNorm32(32, ch), nn.SiLU(), nn.Conv2d(mc, config.out_channels, 3, padding=1)
        )

    def _resblock(self, channels: int, out_channels: int) -> ResBlock:
        c = self.config
        return ResBlock(
            channels,
            c.model_channels * 4,
            c.dropout,
            out_channels,
            use_scale_shift_norm=c.use_scale_shift_norm,
            use_temporal_conv=c.temporal_conv,
            tempspatial_aware=c.tempspatial_aware,
        )

    def _transformers(self, ch: int) -> list[nn.Module]:
        c = self.config
        if c.num_head_channels == -1:
            heads, dim_head = c.num_heads, ch // c.num_heads
        else:
            heads, dim_head = ch // c.num_head_channels, c.num_head_channels
        layers: list[nn.Module] = [
            SpatialTransformer(
                ch,
                heads,
                dim_head,
                depth=c.transformer_depth,
                context_dim=c.context_dim,
                use_linear=c.use_linear,
                image_cross_attention=c.image_cross_attention,
                image_cross_attention_scale_learnable=c.image_cross_attention_scale_learnable,
            )
        ]
        if c.temporal_attention:
            layers.append(
                TemporalTransformer(
                    ch, heads, dim_head, c.transformer_depth, use_linear=c.use_linear
                )
            )
        return layers

    def frame_context(self, context: torch.Tensor, frames: int) -> torch.Tensor:
        """[B x L x D] -> [(B*T) x L' x D]: per-frame image tokens when L == 77 + 16*T."""
        if context.shape[1] == TEXT_TOKENS + frames * IMAGE_TOKENS_PER_FRAME:
            text = context[:, :TEXT_TOKENS].repeat_interleave(frames, dim=0)
            b, _, d = context.shape
            image = context[:, TEXT_TOKENS:].reshape(b * frames, IMAGE_TOKENS_PER_FRAME, d)
            return torch.cat([text, image], dim=1)
        return context.repeat_interleave(frames, dim=0)

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        fs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, _, t, h, w = x.shape
        mc = self.config.model_channels
        emb = self.time_embed(timestep_embedding(timesteps, mc).type(x.dtype))
        context = self.frame_context(context, t)
        emb = emb.repeat_interleave(t, dim=0)
        if self.config.fs_condition:
            if fs is None:
                fs = torch.full((b,), self.config.default_fs, dtype=torch.long, device=x.device)
            fs_emb = self.fps_embedding(timestep_embedding(fs, mc).type(x.dtype))
            emb = emb + fs_emb.repeat_interleave(t, dim=0)
        hidden = x.transpose(1, 2).reshape(b * t, -1, h, w)
        skips = []
        for index, block in enumerate(self.input_blocks):
            hidden = block(hidden, emb, context, b)
            if index == 0 and self.config.addition_attention:
                hidden = self.init_attn(hidden, emb, context, b)
            skips.append(hidden)
        hidden = self.middle_block(hidden, emb, context, b)
        for block in self.output_blocks:
            hidden = block(torch.cat([hidden, skips.pop()], dim=1), emb, context, b)
        y = self.out(hidden)
        return y.reshape(b, t, -1, h, w).transpose(1, 2)
