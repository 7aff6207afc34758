"""The LDM video autoencoder as diffusers' `AutoencoderKL`, loaded from LDM checkpoint keys.

The official checkpoints store the VAE as `first_stage_model.{encoder,decoder,quant_conv,
post_quant_conv}.*` in the LDM layout. `ldm_to_diffusers_key` renames those keys to the
diffusers module paths (the same renaming diffusers' `convert_ldm_vae_checkpoint` performs,
written as an explicit bijection so unknown or missing keys can be named exactly);
attention 1x1 convolutions become linear weights.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL

from ..checkpoint import CheckpointError, load_exact


@dataclass
class VAEConfig:
    """Official `first_stage_config.params` (ddconfig flattened) plus the latent scale factor."""

    embed_dim: int = 4
    z_channels: int = 4
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: int = 2
    attn_resolutions: list[int] = field(default_factory=list)
    dropout: float = 0.0
    double_z: bool = True
    scale_factor: float = 0.18215

    @classmethod
    def from_official(cls, params: Mapping[str, Any], scale_factor: float = 0.18215) -> "VAEConfig":
        dd = dict(params["ddconfig"])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(dd) - names)
        if unknown:
            raise ValueError(f"unknown VAE ddconfig keys {unknown}")
        return cls(
            embed_dim=int(params.get("embed_dim", dd.get("z_channels", 4))),
            scale_factor=scale_factor,
            **dd,
        )


def _swish(x: "torch.Tensor") -> "torch.Tensor":
    import torch

    return x * torch.sigmoid(x)


class LDMAttentionProcessor:
    """diffusers attention processor computing the LDM VAE's single-head `AttnBlock` exactly:
    1x1-conv projections, bmm(q, k) * C**-0.5, softmax, bmm(v, w^T), 1x1-conv output, residual.

    Same function as diffusers' default processor; the identical op order matters because
    latent differences of ~1e-6 get amplified by classifier-free guidance while sampling.
    """

    def __call__(
        self,
        attn,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        **kwargs,
    ):
        import torch
        import torch.nn.functional as F

        residual = hidden_states
        b, c, h, w = hidden_states.shape
        x = attn.group_norm(hidden_states)

        def conv1x1(linear, inputs):
            return F.conv2d(inputs, linear.weight[:, :, None, None], linear.bias)

        q = conv1x1(attn.to_q, x).reshape(b, c, h * w).permute(0, 2, 1)  # [B x HW x C]
        k = conv1x1(attn.to_k, x).reshape(b, c, h * w)  # [B x C x HW]
        v = conv1x1(attn.to_v, x).reshape(b, c, h * w)
        weights = torch.softmax(torch.bmm(q, k) * (int(c) ** (-0.5)), dim=2)
        out = torch.bmm(v, weights.permute(0, 2, 1)).reshape(b, c, h, w)
        out = conv1x1(attn.to_out[0], out)
        # residual first: the sum keeps the input memory layout, as the official x + h_ does
        return (residual + out) / attn.rescale_output_factor


def build_autoencoder(config: VAEConfig) -> "AutoencoderKL":
    """diffusers AutoencoderKL with the LDM architecture of `config` (random weights).

    Its SiLU activations are replaced by the LDM's `x * sigmoid(x)`: the same function, but
    the fused SiLU kernel rounds differently (~1e-6 per block), which the sampler amplifies.
    """
    from diffusers import AutoencoderKL
    from torch import nn

    class LDMSwish(nn.Module):
        def forward(self, x):
            return _swish(x)

    if config.attn_resolutions:
        raise ValueError("VAE attention at intermediate resolutions is not used by lvdm models")
    if not config.double_z or config.embed_dim != config.z_channels:
        raise ValueError("only double_z VAEs with embed_dim == z_channels are supported")
    levels = len(config.ch_mult)
    vae = AutoencoderKL(
        in_channels=config.in_channels,
        out_channels=config.out_ch,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(config.ch * m for m in config.ch_mult),
        layers_per_block=config.num_res_blocks,
        latent_channels=config.z_channels,
        norm_num_groups=32,
        sample_size=config.resolution,
        scaling_factor=config.scale_factor,
    )
    for module in list(vae.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.SiLU):
                setattr(module, name, LDMSwish())
    vae.set_attn_processor(LDMAttentionProcessor())
    return vae


_RESNET_NAMES = {"nin_shortcut": "conv_shortcut"}
_ATTN_NAMES = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_TOP_NAMES = {"norm_out": "conv_norm_out", "conv_in": "conv_in", "conv_out": "conv_out"}


def ldm_to_diffusers_key(key: str, levels: int) -> str:
    """'encoder.down.1.block.0.nin_shortcut.weight' -> 'encoder.down_blocks.1.resnets.0.conv_shortcut.weight'.

    Raises KeyError for names that are not part of an LDM AutoencoderKL.
    """
    if key.startswith(("quant_conv.", "post_quant_conv.")):
        return key
    m = re.fullmatch(r"(encoder|decoder)\.(.+)\.(weight|bias)", key)
    if not m:
        raise KeyError(key)
    part, path, kind = m.groups()
    if path in _TOP_NAMES:
        return f"{part}.{_TOP_NAMES[path]}.{kind}"
    if mm := re.fullmatch(r"mid\.block_([12])\.(\w+)", path):
        return f"{part}.mid_block.resnets.{int(mm[1]) - 1}.{_RESNET_NAMES.get(mm[2], mm[2])}.{kind}"
    if mm := re.fullmatch(r"mid\.attn_1\.(\w+)", path):
        if mm[1] in _ATTN_NAMES:
            return f"{part}.mid_block.attentions.0.{_ATTN_NAMES[mm[1]]}.{kind}"
    if part == "encoder" and (mm := re.fullmatch(r"down\.(\d+)\.block\.(\d+)\.(\w+)", path)):
        return (
            f"encoder.down_blocks.{mm[1]}.resnets.{mm[2]}.{_RESNET_NAMES.get(mm[3], mm[3])}.{kind}"
        )
    if part == "encoder" and (mm := re.fullmatch(r"down\.(\d+)\.downsample\.conv", path)):
        return f"encoder.down_blocks.{mm[1]}.downsamplers.0.conv.{kind}"
    # The LDM decoder numbers its levels from the lowest resolution up; diffusers from the top.
    if part == "decoder" and (mm := re.fullmatch(r"up\.(\d+)\.block\.(\d+)\.(\w+)", path)):
        level = levels - 1 - int(mm[1])
        return f"decoder.up_blocks.{level}.resnets.{mm[2]}.{_RESNET_NAMES.get(mm[3], mm[3])}.{kind}"
    if part == "decoder" and (mm := re.fullmatch(r"up\.(\d+)\.upsample\.conv", path)):
        return f"decoder.up_blocks.{levels - 1 - int(mm[1])}.upsamplers.0.conv.{kind}"
    raise KeyError(key)


def convert_ldm_vae_state_dict(
    state: Mapping[str, "torch.Tensor"], levels: int
) -> tuple[dict[str, "torch.Tensor"], list[str]]:
    """LDM VAE tensors (prefix removed) -> (diffusers tensors, LDM keys that have no place)."""
    converted: dict[str, "torch.Tensor"] = {}
    unknown: list[str] = []
    for key, value in state.items():
        try:
            new_key = ldm_to_diffusers_key(key, levels)
        except KeyError:
            unknown.append(key)
            continue
        if ".mid_block.attentions.0." in new_key and new_key.endswith("weight") and value.ndim == 4:
            value = value[:, :, 0, 0]  # 1x1 conv -> linear
        converted[new_key] = value
    return converted, sorted(unknown)


def load_ldm_vae(vae: "AutoencoderKL", state: Mapping[str, "torch.Tensor"], what: str) -> None:
    """Load LDM-named VAE tensors into `vae`; every missing/unknown key is an error."""
    levels = len(vae.config.block_out_channels)
    converted, unknown = convert_ldm_vae_state_dict(state, levels)
    if unknown:
        raise CheckpointError(f"{what}: {len(unknown)} unexpected VAE keys (e.g. {unknown[:5]})")
    load_exact(vae, converted, what)
