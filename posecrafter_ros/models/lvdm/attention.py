"""Spatial and temporal transformers of the lvdm 3D UNet (DynamiCrafter / ViewCrafter).

Attribute names equal the official checkpoint keys (`transformer_blocks.0.attn2.to_k_ip`,
`ff.net.0.proj`, ...). Numerics follow the official einsum path: scale = dim_head**-0.5,
softmax in the input dtype; `attention_backend="sdpa"` swaps in PyTorch's fused kernel
(same maths, less memory) for GPU runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Text tokens at the front of every cross-attention context (hard-coded in the official code).
TEXT_CONTEXT_LEN = 77
ATTENTION_BACKENDS = ("einsum", "sdpa")


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str) -> torch.Tensor:
    """Scaled dot-product attention.

    q: [B x heads x N x D], k, v: [B x heads x M x D] -> [B x heads x N x D].
    """
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    scale = q.shape[-1] ** -0.5
    weights = torch.einsum("bhid,bhjd->bhij", q, k) * scale
    return torch.einsum("bhij,bhjd->bhid", weights.softmax(dim=-1), v)


class CrossAttention(nn.Module):
    """Multi-head attention with an optional second (image) key/value branch.

    With `image_cross_attention`, the context is split after the 77 text tokens: text goes
    through to_k/to_v, image tokens through to_k_ip/to_v_ip, both share the query, and the
    two attention outputs are summed (image branch scaled by 1.0, or by tanh(alpha)+1 when
    the scale is learnable) before to_out.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
        image_cross_attention: bool = False,
        image_cross_attention_scale_learnable: bool = False,
    ):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(dropout))
        self.image_cross_attention = image_cross_attention
        self.image_scale_learnable = image_cross_attention_scale_learnable
        if image_cross_attention:
            self.to_k_ip = nn.Linear(context_dim, inner_dim, bias=False)
            self.to_v_ip = nn.Linear(context_dim, inner_dim, bias=False)
            if image_cross_attention_scale_learnable:
                self.alpha = nn.Parameter(torch.tensor(0.0))
        self.backend = "einsum"

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B x N x (heads*D)] -> [B x heads x N x D]."""
        b, n, _ = x.shape
        return x.view(b, n, self.heads, -1).transpose(1, 2).contiguous()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B x N x query_dim], context: [B x M x context_dim] or None (self-attention)."""
        q = self._heads(self.to_q(x))
        image_context = None
        if context is None:
            context = x
        elif self.image_cross_attention:
            context, image_context = context[:, :TEXT_CONTEXT_LEN], context[:, TEXT_CONTEXT_LEN:]
        else:
            context = context[:, :TEXT_CONTEXT_LEN]
        out = attend(
            q, self._heads(self.to_k(context)), self._heads(self.to_v(context)), self.backend
        )
        if image_context is not None:
            out_image = attend(
                q,
                self._heads(self.to_k_ip(image_context)),
                self._heads(self.to_v_ip(image_context)),
                self.backend,
            )
            if self.image_scale_learnable:
                out_image = out_image * (torch.tanh(self.alpha) + 1)
            out = out + out_image
        b, _, n, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    """Linear -> (value, gate) halves -> value * GELU(gate) (exact GELU)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward with 4x inner width; keys `net.0.proj`, `net.2`."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        inner_dim = dim * mult
        self.net = nn.Sequential(
            GEGLU(dim, inner_dim), nn.Dropout(dropout), nn.Linear(inner_dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """x += attn1(norm1 x); x += attn2(norm2 x, context); x += ff(norm3 x).

    attn1 is always self-attention here; attn2 is cross-attention when context_dim is given,
    otherwise a second self-attention (the temporal blocks, `only_self_att`).
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        d_head: int,
        context_dim: int | None = None,
        dropout: float = 0.0,
        image_cross_attention: bool = False,
        image_cross_attention_scale_learnable: bool = False,
    ):
        super().__init__()
        self.attn1 = CrossAttention(dim, None, n_heads, d_head, dropout)
        self.ff = FeedForward(dim, dropout=dropout)
        self.attn2 = CrossAttention(
            dim,
            context_dim,
            n_heads,
            d_head,
            dropout,
            image_cross_attention=image_cross_attention,
            image_cross_attention_scale_learnable=image_cross_attention_scale_learnable,
        )
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Per-frame transformer over the H*W tokens of each image; x: [(B*T) x C x H x W]."""

    def __init__(
        self,
        in_channels: int,
        n_heads: int,
        d_head: int,
        depth: int = 1,
        dropout: float = 0.0,
        context_dim: int | None = None,
        use_linear: bool = False,
        image_cross_attention: bool = False,
        image_cross_attention_scale_learnable: bool = False,
    ):
        super().__init__()
        inner_dim = n_heads * d_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(32, in_channels, eps=1e-6, affine=True)
        if use_linear:
            self.proj_in: nn.Module = nn.Linear(in_channels, inner_dim)
            self.proj_out: nn.Module = nn.Linear(inner_dim, in_channels)
        else:
            self.proj_in = nn.Conv2d(in_channels, inner_dim, kernel_size=1)
            self.proj_out = nn.Conv2d(inner_dim, in_channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(
                inner_dim,
                n_heads,
                d_head,
                context_dim=context_dim,
                dropout=dropout,
                image_cross_attention=image_cross_attention,
                image_cross_attention_scale_learnable=image_cross_attention_scale_learnable,
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """x: [(B*T) x C x H x W], context: [(B*T) x L x context_dim]."""
        bt, c, h, w = x.shape
        x_in = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.flatten(2).transpose(1, 2).contiguous()  # [(B*T) x (H*W) x C]
        if self.use_linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context)
        if self.use_linear:
            x = self.proj_out(x)
        # Contiguous NCHW as the official code: later GroupNorms are layout-sensitive in float32.
        x = x.transpose(1, 2).reshape(bt, -1, h, w).contiguous()
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in


class TemporalTransformer(nn.Module):
    """Transformer along time for every pixel; x: [B x C x T x H x W].

    Tokens are [(B*H*W) x T x C]; no positional encoding, no causal mask, and both attention
    layers are self-attention (the official `only_self_att=True`). `use_linear=False` gives
    Conv1d(k=1) projections (the official `init_attn` layer).
    """

    def __init__(
        self,
        in_channels: int,
        n_heads: int,
        d_head: int,
        depth: int = 1,
        dropout: float = 0.0,
        use_linear: bool = False,
    ):
        super().__init__()
        inner_dim = n_heads * d_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(32, in_channels, eps=1e-6, affine=True)
        if use_linear:
            self.proj_in: nn.Module = nn.Linear(in_channels, inner_dim)
            self.proj_out: nn.Module = nn.Linear(inner_dim, in_channels)
        else:
            self.proj_in = nn.Conv1d(in_channels, inner_dim, kernel_size=1)
            self.proj_out = nn.Conv1d(inner_dim, in_channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner_dim, n_heads, d_head, context_dim=None, dropout=dropout)
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        x_in = x
        x = self.norm(x).permute(0, 3, 4, 1, 2).reshape(b * h * w, c, t)  # [(B*H*W) x C x T]
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.transpose(1, 2).contiguous()  # [(B*H*W) x T x C]
        if self.use_linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x)
        if self.use_linear:
            x = self.proj_out(x)
        else:
            x = self.proj_out(x.transpose(1, 2)).transpose(1, 2)
        x = x.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2).contiguous()
        return x + x_in


def set_attention_backend(module: nn.Module, backend: str) -> None:
    """Select "einsum" (exact official path) or "sdpa" for every CrossAttention in `module`."""
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"attention backend must be one of {ATTENTION_BACKENDS}, got {backend!r}")
    for child in module.modules():
        if isinstance(child, CrossAttention):
            child.backend = backend
