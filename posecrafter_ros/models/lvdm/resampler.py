"""Image-projection Resampler (Perceiver) mapping CLIP image tokens to UNet context tokens.

Keys follow the official `image_proj_model.*` names: `latents`, `proj_in`, `proj_out`,
`norm_out`, `layers.{i}.0` (PerceiverAttention) and `layers.{i}.1` (LN-Linear-GELU-Linear).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn


@dataclass
class ResamplerConfig:
    """Official `image_proj_stage_config.params` (field defaults: the DynamiCrafter-512 yaml;
    `from_dict` fills omitted keys with the official constructor's defaults)."""

    dim: int = 1024
    depth: int = 4
    dim_head: int = 64
    heads: int = 12
    num_queries: int = 16
    embedding_dim: int = 1280
    output_dim: int = 1024
    ff_mult: int = 4
    video_length: int | None = 16

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> "ResamplerConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"unknown Resampler config keys {unknown}")
        official_defaults = {
            "dim": 1024,
            "depth": 8,
            "dim_head": 64,
            "heads": 16,
            "num_queries": 8,
            "embedding_dim": 768,
            "output_dim": 1024,
            "ff_mult": 4,
            "video_length": None,
        }
        return cls(**{**official_defaults, **dict(params)})


class PerceiverAttention(nn.Module):
    """Latents attend to [image tokens, latents]; q and k each scaled by dim_head**-0.25."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        inner_dim = dim_head * heads
        self.heads = heads
        self.dim_head = dim_head
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """x: [B x N x dim] image features, latents: [B x L x dim] -> [B x L x dim]."""
        x = self.norm1(x)
        latents = self.norm2(latents)
        b, n_latents, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (t.view(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        # Scaling q and k separately (instead of the product) is what the checkpoint saw.
        scale = self.dim_head**-0.25
        weights = (q * scale) @ (k * scale).transpose(-2, -1)
        weights = torch.softmax(weights.float(), dim=-1).type(weights.dtype)
        out = (weights @ v).transpose(1, 2).reshape(b, n_latents, -1)
        return self.to_out(out)


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    inner = dim * mult
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, inner, bias=False),
        nn.GELU(),
        nn.Linear(inner, dim, bias=False),
    )


class Resampler(nn.Module):
    """CLIP image tokens [B x N x embedding_dim] -> [B x (video_length*num_queries) x output_dim]."""

    def __init__(self, config: ResamplerConfig):
        super().__init__()
        self.config = config
        queries = config.num_queries * (config.video_length or 1)
        self.latents = nn.Parameter(torch.randn(1, queries, config.dim) / config.dim**0.5)
        self.proj_in = nn.Linear(config.embedding_dim, config.dim)
        self.proj_out = nn.Linear(config.dim, config.output_dim)
        self.norm_out = nn.LayerNorm(config.output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PerceiverAttention(config.dim, config.dim_head, config.heads),
                    _feed_forward(config.dim, config.ff_mult),
                ]
            )
            for _ in range(config.depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        latents = self.latents.repeat(x.shape[0], 1, 1)
        x = self.proj_in(x)
        for attn, ff in self.layers:  # type: ignore[misc]
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))
