"""DUSt3R network: CroCo ViT encoder, two cross-attending decoders, two point-map heads.

State-dict names equal the official `AsymmetricCroCo3DStereo` checkpoints (patch_embed.*,
enc_blocks.*, enc_norm.*, decoder_embed.*, dec_blocks.*, dec_blocks2.*, dec_norm.*,
downstream_head{1,2}.*, mask_token). Images are processed in their native orientation
(the official `load_model` inference construction: PatchEmbedDust3R, landscape_only=False).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointError, load_exact, read_state_dict
from .config import Dust3rConfig, infer_config
from .heads import build_head
from .rope import RoPE2D

LAYER_NORM_EPS = 1e-6


def _layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LAYER_NORM_EPS)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention, [B x heads x N x d] each -> [B x N x heads*d].

    On GPUs the fused SDPA kernels save the N x N attention memory (ViT-L at 512 x 384 has
    768 tokens per view); elsewhere the explicit product reproduces the official float32
    numbers bit for bit.
    """
    if q.is_cuda:
        out = F.scaled_dot_product_attention(q, k, v)
    else:
        weights = ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(dim=-1)
        out = weights @ v
    return out.transpose(1, 2).flatten(2)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, rope: RoPE2D):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x: [B x N x C], pos: [B x N x 2]."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        return self.proj(_attend(self.rope(q, pos), self.rope(k, pos), v))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, rope: RoPE2D):
        super().__init__()
        self.num_heads = num_heads
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        return x.reshape(batch, tokens, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, memory_pos: torch.Tensor
    ) -> torch.Tensor:
        """x: [B x N x C] queries, memory: [B x M x C] keys/values (the other view)."""
        q = self.rope(self._heads(self.projq(x)), pos)
        k = self.rope(self._heads(self.projk(memory)), memory_pos)
        return self.proj(_attend(q, k, self._heads(self.projv(memory))))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope: RoPE2D):
        super().__init__()
        self.norm1 = _layer_norm(dim)
        self.attn = SelfAttention(dim, num_heads, rope)
        self.norm2 = _layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Self-attention, cross-attention to the other view's tokens, MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope: RoPE2D, norm_memory: bool):
        super().__init__()
        self.norm1 = _layer_norm(dim)
        self.attn = SelfAttention(dim, num_heads, rope)
        self.cross_attn = CrossAttention(dim, num_heads, rope)
        self.norm2 = _layer_norm(dim)
        self.norm3 = _layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = _layer_norm(dim) if norm_memory else nn.Identity()

    def forward(
        self, x: torch.Tensor, other: torch.Tensor, pos: torch.Tensor, other_pos: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos)
        memory = self.norm_y(other)
        x = x + self.cross_attn(self.norm2(x), memory, pos, other_pos)
        return x + self.mlp(self.norm3(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection; any image size that is a multiple of the patch."""

    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images: [B x 3 x H x W] -> tokens [B x N x C], positions [B x N x 2] (row, col)."""
        batch, _, height, width = images.shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"image {height}x{width} is not a multiple of the patch {self.patch_size}"
            )
        grid = self.proj(images)
        rows, cols = grid.shape[-2:]
        positions = torch.cartesian_prod(
            torch.arange(rows, device=images.device), torch.arange(cols, device=images.device)
        )
        return grid.flatten(2).transpose(1, 2), positions[None].expand(batch, -1, -1)


class Dust3rModel(nn.Module):
    """Pairwise point-map regression: both views' points in view 1's camera frame."""

    def __init__(self, config: Dust3rConfig):
        super().__init__()
        self.config = config
        rope = RoPE2D(config.rope_freq)
        self.patch_embed = PatchEmbed(config.patch_size, config.enc_embed_dim)
        self.enc_blocks = nn.ModuleList(
            [
                EncoderBlock(config.enc_embed_dim, config.enc_num_heads, config.mlp_ratio, rope)
                for _ in range(config.enc_depth)
            ]
        )
        self.enc_norm = _layer_norm(config.enc_embed_dim)
        # Unused at inference; kept because the released checkpoints carry it (CroCo leftover).
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.dec_embed_dim))
        self.decoder_embed = nn.Linear(config.enc_embed_dim, config.dec_embed_dim)

        def decoder() -> nn.ModuleList:
            return nn.ModuleList(
                [
                    DecoderBlock(
                        config.dec_embed_dim,
                        config.dec_num_heads,
                        config.mlp_ratio,
                        rope,
                        config.norm_im2_in_dec,
                    )
                    for _ in range(config.dec_depth)
                ]
            )

        self.dec_blocks = decoder()
        self.dec_norm = _layer_norm(config.dec_embed_dim)
        self.dec_blocks2 = decoder()
        self.downstream_head1 = build_head(config)
        self.downstream_head2 = build_head(config)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images: [B x 3 x H x W] in [-1, 1] -> (tokens [B x N x C], pos [B x N x 2])."""
        x, pos = self.patch_embed(images)
        for block in self.enc_blocks:
            x = block(x, pos)
        return self.enc_norm(x), pos

    def decode(
        self, feat1: torch.Tensor, pos1: torch.Tensor, feat2: torch.Tensor, pos2: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Both decoders in lock-step, each layer reading the other's previous layer.

        Returns per view [encoder tokens, decoder layer 1..L] (dec_norm on the last).
        """
        out1, out2 = [feat1], [feat2]
        x1, x2 = self.decoder_embed(feat1), self.decoder_embed(feat2)
        for block1, block2 in zip(self.dec_blocks, self.dec_blocks2):
            x1, x2 = block1(x1, x2, pos1, pos2), block2(x2, x1, pos2, pos1)
            out1.append(x1)
            out2.append(x2)
        out1[-1], out2[-1] = self.dec_norm(out1[-1]), self.dec_norm(out2[-1])
        return out1, out2

    def heads(
        self,
        layers1: list[torch.Tensor],
        layers2: list[torch.Tensor],
        hw1: tuple[int, int],
        hw2: tuple[int, int],
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Heads in float32 (as the official code, which disables autocast there)."""
        with torch.autocast(device_type=layers1[-1].device.type, enabled=False):
            res1 = self.downstream_head1([t.float() for t in layers1], hw1)
            res2 = self.downstream_head2([t.float() for t in layers2], hw2)
        return res1, {"pts3d_in_other_view": res2["pts3d"], "conf": res2["conf"]}

    def forward(
        self, img1: torch.Tensor, img2: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """img1: [B x 3 x H1 x W1], img2: [B x 3 x H2 x W2] -> (pred1, pred2).

        pred1: pts3d [B x H1 x W1 x 3] and conf [B x H1 x W1] of view 1 in its own frame;
        pred2: pts3d_in_other_view [B x H2 x W2 x 3] and conf of view 2 in view 1's frame.
        """
        if img1.shape[-2:] == img2.shape[-2:]:
            feats, pos = self.encode(torch.cat((img1, img2)))
            feat1, feat2 = feats.chunk(2)
            pos1, pos2 = pos.chunk(2)
        else:
            feat1, pos1 = self.encode(img1)
            feat2, pos2 = self.encode(img2)
        layers1, layers2 = self.decode(feat1, pos1, feat2, pos2)
        return self.heads(layers1, layers2, tuple(img1.shape[-2:]), tuple(img2.shape[-2:]))


def complete_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Restore the aliases a checkpoint may lack.

    - no `dec_blocks2.*`: the official loader copies the first decoder (CroCo-pretrained
      checkpoints have a single decoder);
    - DPT `scratch.layer{i}_rn` vs `scratch.layer_rn.{i-1}`: the same convs under two names;
      a deduplicated copy (e.g. safetensors) may keep only one.
    """
    out = dict(state)
    if not any(k.startswith("dec_blocks2.") for k in out):
        for key, value in state.items():
            if key.startswith("dec_blocks."):
                out["dec_blocks2." + key[len("dec_blocks.") :]] = value
    for head in ("downstream_head1", "downstream_head2"):
        for level in range(4):
            named = f"{head}.dpt.scratch.layer{level + 1}_rn.weight"
            listed = f"{head}.dpt.scratch.layer_rn.{level}.weight"
            if named in out and listed not in out:
                out[listed] = out[named]
            elif listed in out and named not in out:
                out[named] = out[listed]
    return out


def load_dust3r(
    path: str | Path,
    config: Dust3rConfig | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    overrides: Mapping[str, object] | None = None,
) -> Dust3rModel:
    """Build and load a DUSt3R network from a `.pth` (official layout) or `.safetensors` file.

    config: None infers widths/depths/head sizes from the tensor shapes (head counts from the
    released ViT-L/B convention), then applies `overrides` ({Dust3rConfig field: value}, e.g.
    the head counts of a non-released network).
    """
    if not str(path).strip():
        raise CheckpointError(
            "no DUSt3R checkpoint configured: set `checkpoint` to the path of "
            "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth (or its .safetensors copy)"
        )
    state = complete_state_dict(read_state_dict(path))
    if config is None:
        try:
            config = infer_config(state)
        except KeyError as err:
            raise CheckpointError(f"{path}: {err.args[0]}") from None
    if overrides:
        config = Dust3rConfig.from_dict({**config.to_dict(), **overrides})
    with torch.device("meta"):
        model = Dust3rModel(config)
    load_exact(model, state, f"DUSt3R ({path})")
    return to_device_dtype(model, device, dtype)


def to_device_dtype(
    model: Dust3rModel, device: str | torch.device, dtype: torch.dtype
) -> Dust3rModel:
    """Move to `device`; encoder/decoder in `dtype`, the heads stay float32 (as official AMP)."""
    model = model.to(device=device, dtype=dtype)
    model.downstream_head1.float()
    model.downstream_head2.float()
    return model.eval()
