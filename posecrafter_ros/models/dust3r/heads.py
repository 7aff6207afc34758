"""DUSt3R prediction heads: per-pixel 3D points + confidence from decoder tokens.

Both heads return {"pts3d": [B x H x W x 3], "conf": [B x H x W]}. State-dict names follow
the official `LinearPts3d` (`proj`) and `PixelwiseTaskWithDPT` (`dpt.*`) modules.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import Dust3rConfig


def postprocess(raw: torch.Tensor, config: Dust3rConfig) -> dict[str, torch.Tensor]:
    """raw: [B x 4 x H x W] -> {"pts3d": [B x H x W x 3], "conf": [B x H x W]}.

    Depth modes (released checkpoints: "exp"): the first three channels are a direction and
    a distance code d = |xyz|; pts = xyz / d * expm1(d) ("exp"), xyz * d ("square"), or xyz
    unchanged ("linear"). Confidence: vmin + exp(c) ("exp") or vmin + (vmax - vmin) sigmoid(c).
    """
    fmap = raw.permute(0, 2, 3, 1)
    xyz = fmap[..., 0:3]
    depth_mode = config.depth_mode[0]
    if depth_mode == "linear":
        points = xyz
    else:
        distance = xyz.norm(dim=-1, keepdim=True)
        direction = xyz / distance.clip(min=1e-8)
        scaled = torch.expm1(distance) if depth_mode == "exp" else distance.square()
        points = direction * scaled
    conf_mode, conf_min, conf_max = config.conf_mode
    if conf_mode == "exp":
        conf = conf_min + fmap[..., 3].exp().clip(max=conf_max - conf_min)
    else:
        conf = (conf_max - conf_min) * torch.sigmoid(fmap[..., 3]) + conf_min
    return {"pts3d": points, "conf": conf}


class LinearHead(nn.Module):
    """One linear map per token to a patch of (x, y, z, c) values, then pixel shuffle."""

    def __init__(self, config: Dust3rConfig):
        super().__init__()
        self.config = config
        self.patch_size = config.patch_size
        self.proj = nn.Linear(config.dec_embed_dim, 4 * config.patch_size**2)

    def forward(
        self, layers: Sequence[torch.Tensor], hw: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        """layers: [encoder output, decoder layer 1..L], each [B x N x C]; uses the last."""
        height, width = hw
        tokens = layers[-1]
        batch = tokens.shape[0]
        patches = self.proj(tokens).transpose(-1, -2)
        grid = patches.reshape(batch, -1, height // self.patch_size, width // self.patch_size)
        return postprocess(F.pixel_shuffle(grid, self.patch_size), self.config)


class ResidualConvUnit(nn.Module):
    """x + conv(relu(conv(relu(x)))) with 3x3 convolutions."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FusionBlock(nn.Module):
    """RefineNet fusion: (coarse [+ refined skip]) -> residual unit -> x2 upsample -> 1x1."""

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = coarse if skip is None else coarse + self.resConfUnit1(skip)
        out = self.resConfUnit2(out)
        out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(out)


class Upsample2x(nn.Module):
    """Bilinear x2 (align_corners=True), a module so `head.*` indices match the checkpoint."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class DPTScratch(nn.Module):
    """Projections to the common width (two names for the same convs) and the fusion blocks."""

    def __init__(self, layer_dims: Sequence[int], features: int):
        super().__init__()
        convs = [nn.Conv2d(d, features, kernel_size=3, padding=1, bias=False) for d in layer_dims]
        self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn = convs
        # The official checkpoint holds these convs under both names.
        self.layer_rn = nn.ModuleList(convs)
        self.refinenet1 = FusionBlock(features)
        self.refinenet2 = FusionBlock(features)
        self.refinenet3 = FusionBlock(features)
        self.refinenet4 = FusionBlock(features)


class DPTAdapter(nn.Module):
    """DPT decoder over 4 hooked token maps at 1/16 resolution -> [B x 4 x H x W]."""

    def __init__(self, config: Dust3rConfig):
        super().__init__()
        features, last, dims = config.dpt_feature_dim, config.dpt_last_dim, config.dpt_layer_dims
        token_dims = (config.enc_embed_dim,) + (config.dec_embed_dim,) * 3
        self.hooks = config.dpt_hooks
        self.patch_size = config.patch_size
        self.scratch = DPTScratch(dims, features)
        self.head = nn.Sequential(
            nn.Conv2d(features, features // 2, kernel_size=3, padding=1),
            Upsample2x(),
            nn.Conv2d(features // 2, last, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(last, 4, kernel_size=1),
        )
        # Token maps at 1/16 -> 1/4, 1/8, 1/16, 1/32 of the image.
        self.act_postprocess = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(token_dims[0], dims[0], 1),
                    nn.ConvTranspose2d(dims[0], dims[0], kernel_size=4, stride=4),
                ),
                nn.Sequential(
                    nn.Conv2d(token_dims[1], dims[1], 1),
                    nn.ConvTranspose2d(dims[1], dims[1], kernel_size=2, stride=2),
                ),
                nn.Sequential(nn.Conv2d(token_dims[2], dims[2], 1)),
                nn.Sequential(
                    nn.Conv2d(token_dims[3], dims[3], 1),
                    nn.Conv2d(dims[3], dims[3], kernel_size=3, stride=2, padding=1),
                ),
            ]
        )

    def forward(self, layers: Sequence[torch.Tensor], hw: tuple[int, int]) -> torch.Tensor:
        rows, cols = hw[0] // self.patch_size, hw[1] // self.patch_size
        maps = []
        for level, hook in enumerate(self.hooks):
            tokens = layers[hook]
            grid = tokens.reshape(tokens.shape[0], rows, cols, tokens.shape[2]).permute(0, 3, 1, 2)
            maps.append(self.scratch.layer_rn[level](self.act_postprocess[level](grid)))
        scratch = self.scratch
        # Odd token grids: the upsampled 1/32 map can be one row/column larger than 1/16.
        path = scratch.refinenet4(maps[3])[:, :, : maps[2].shape[2], : maps[2].shape[3]]
        path = scratch.refinenet3(path, maps[2])
        path = scratch.refinenet2(path, maps[1])
        path = scratch.refinenet1(path, maps[0])
        return self.head(path)


class DPTHead(nn.Module):
    """`PixelwiseTaskWithDPT`: DPT adapter + point/confidence postprocessing."""

    def __init__(self, config: Dust3rConfig):
        super().__init__()
        self.config = config
        self.dpt = DPTAdapter(config)

    def forward(
        self, layers: Sequence[torch.Tensor], hw: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        return postprocess(self.dpt(layers, hw), self.config)


def build_head(config: Dust3rConfig) -> nn.Module:
    return DPTHead(config) if config.head_type == "dpt" else LinearHead(config)
