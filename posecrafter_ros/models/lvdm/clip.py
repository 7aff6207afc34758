"""OpenCLIP text and image towers with open_clip's state-dict names (open_clip itself does not
import here: it pulls torchvision).

The lvdm checkpoints hold two copies of OpenCLIP ViT-H-14:
- `cond_stage_model.model.*`: the text side (`visual` deleted), run up to the PENULTIMATE
  resblock then `ln_final` (FrozenOpenCLIPEmbedder, layer="penultimate");
- `embedder.model.*`: the image side (text `transformer` deleted, but token_embedding,
  positional_embedding, ln_final, text_projection and logit_scale remain), returning ALL
  tokens after the vision transformer, without ln_post / proj (FrozenOpenCLIPImageEmbedderV2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class CLIPVisionConfig:
    image_size: int = 224
    layers: int = 32
    width: int = 1280
    head_width: int = 80
    patch_size: int = 14
    mlp_ratio: float = 4.0


@dataclass
class CLIPTextConfig:
    context_length: int = 77
    vocab_size: int = 49408
    width: int = 1024
    heads: int = 16
    layers: int = 24
    mlp_ratio: float = 4.0


@dataclass
class CLIPConfig:
    """An open_clip model config (`ViT-H-14.json` layout); defaults are ViT-H-14."""

    embed_dim: int = 1024
    vision_cfg: CLIPVisionConfig = field(default_factory=CLIPVisionConfig)
    text_cfg: CLIPTextConfig = field(default_factory=CLIPTextConfig)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "CLIPConfig":
        """From an open_clip model config; options that change the weights (layer scale,
        attention pooling, ...) are not supported and raise."""
        if cfg.get("quick_gelu"):
            raise ValueError("QuickGELU OpenCLIP models are not supported (ViT-H-14 uses GELU)")
        return cls(
            embed_dim=int(cfg["embed_dim"]),
            vision_cfg=_sub_config(CLIPVisionConfig, cfg.get("vision_cfg", {})),
            text_cfg=_sub_config(CLIPTextConfig, cfg.get("text_cfg", {})),
        )


# open_clip config keys that do not change the ViT-H-14-style towers built here.
_NEUTRAL_KEYS = {"patch_dropout", "hf_tokenizer_name", "tokenizer_kwargs", "timm_model_name"}


def _sub_config(kind: type, values: Mapping[str, Any]):
    names = {f.name for f in dataclasses.fields(kind)}
    unsupported = sorted(set(values) - names - _NEUTRAL_KEYS)
    if unsupported:
        raise ValueError(f"unsupported open_clip {kind.__name__} options {unsupported}")
    return kind(**{k: v for k, v in values.items() if k in names})


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: x += attn(ln_1 x); x += mlp(ln_2 x). x: [N x B x width].

    Sequence-first like open_clip's original layout: this keeps nn.MultiheadAttention on its
    reference (non-fused) path, which is what the official outputs were computed with.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(layers)
        )

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, skip_last: int = 0
    ) -> torch.Tensor:
        """x: [B x N x width]; runs all resblocks except the last `skip_last` ones."""
        x = x.transpose(0, 1)
        for block in self.resblocks[: len(self.resblocks) - skip_last]:
            x = block(x, attn_mask)
        return x.transpose(0, 1)


class _TextLeftovers(nn.Module):
    """Text-side tensors both checkpoint copies keep (token/positional embedding, heads)."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        text = config.text_cfg
        self.token_embedding = nn.Embedding(text.vocab_size, text.width)
        self.positional_embedding = nn.Parameter(torch.empty(text.context_length, text.width))
        self.ln_final = nn.LayerNorm(text.width)
        self.text_projection = nn.Parameter(torch.empty(text.width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]))


class OpenCLIPTextModel(_TextLeftovers):
    """open_clip CLIP with `visual` deleted (keys `cond_stage_model.model.*`)."""

    def __init__(self, config: CLIPConfig):
        super().__init__(config)
        text = config.text_cfg
        self.transformer = Transformer(text.width, text.layers, text.heads, text.mlp_ratio)
        # Additive causal mask, not part of the checkpoint (non-persistent in open_clip).
        self.register_buffer("attn_mask", self.causal_mask(text.context_length), persistent=False)

    @staticmethod
    def causal_mask(length: int, device: str | torch.device | None = None) -> torch.Tensor:
        return torch.full((length, length), float("-inf"), device=device).triu_(1)


class VisionTransformer(nn.Module):
    """open_clip `visual` of a ViT CLIP."""

    def __init__(self, config: CLIPVisionConfig, embed_dim: int):
        super().__init__()
        width, patch = config.width, config.patch_size
        grid = config.image_size // patch
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(
            width, config.layers, width // config.head_width, config.mlp_ratio
        )
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, embed_dim))

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels [B x 3 x S x S] -> all tokens [B x (1+grid^2) x width] (no ln_post)."""
        x = self.conv1(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.transformer(self.ln_pre(x))


class OpenCLIPImageModel(_TextLeftovers):
    """open_clip CLIP with the text `transformer` deleted (keys `embedder.model.*`)."""

    def __init__(self, config: CLIPConfig):
        super().__init__(config)
        self.visual = VisionTransformer(config.vision_cfg, config.embed_dim)


class TextEncoder(nn.Module):
    """Token ids [B x 77] -> penultimate-layer text tokens [B x 77 x width] (after ln_final)."""

    def __init__(self, config: CLIPConfig, skip_last_layers: int = 1):
        super().__init__()
        self.model = OpenCLIPTextModel(config)
        self.skip_last_layers = skip_last_layers

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.token_embedding(tokens) + m.positional_embedding
        mask = m.attn_mask.to(x.dtype)
        x = m.transformer(x, attn_mask=mask, skip_last=self.skip_last_layers)
        return m.ln_final(x)


class ImageEmbedder(nn.Module):
    """Images in [-1, 1], [B x 3 x H x W] -> CLIP vision tokens [B x (1+grid^2) x width].

    Preprocessing as FrozenOpenCLIPImageEmbedderV2: kornia bicubic resize to the CLIP input
    size (align_corners=True, antialias), [-1, 1] -> [0, 1], CLIP mean/std.
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.model = OpenCLIPImageModel(config)
        self.image_size = config.vision_cfg.image_size
        self.register_buffer("mean", torch.tensor(CLIP_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD), persistent=False)

    def materialize_constants(self) -> None:
        """Re-create the non-checkpoint buffers (after building on the meta device)."""
        self.mean = torch.tensor(CLIP_MEAN, device="cpu")
        self.std = torch.tensor(CLIP_STD, device="cpu")

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        import kornia

        x = kornia.geometry.transform.resize(
            images,
            (self.image_size, self.image_size),
            interpolation="bicubic",
            align_corners=True,
            antialias=True,
        )
        x = (x + 1.0) / 2.0
        return kornia.enhance.normalize(x, self.mean, self.std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.visual.tokens(self.preprocess(images))
