"""Loading official lvdm checkpoints (DynamiCrafter / ViewCrafter) into our modules.

Accepted files: the official `.ckpt` ({"state_dict": ...} or deepspeed {"module":
{"_forward_module." + key: ...}}), a `.safetensors` copy (bf16 pruned copies are cast to
the model dtype), or a sharded safetensors set (`name-00001-of-0000N.safetensors`, given
as any shard, the folder, or a `*.safetensors.index.json`). Every missing or unexpected
key is an error that names it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ..checkpoint import CheckpointError, load_exact, read_state_dict, select_prefix
from .autoencoder import load_ldm_vae

if TYPE_CHECKING:
    import torch

    from .latent_diffusion import LatentVideoDiffusion

DEEPSPEED_PREFIX = "_forward_module."
SHARD_PATTERN = re.compile(r"(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.safetensors$")
# Older lvdm checkpoints (256 models) call the fs embedding `framestride_embed`.
LEGACY_RENAMES = (("framestride_embed", "fps_embedding"),)
PARTS = (
    ("model.diffusion_model.", "unet"),
    ("cond_stage_model.", "cond_stage_model"),
    ("embedder.", "embedder"),
    ("image_proj_model.", "image_proj_model"),
)


def shard_paths(path: str | Path) -> list[Path]:
    """The files of a checkpoint: one file, or every shard of a sharded safetensors set."""
    path = Path(path).expanduser()
    if path.is_dir():
        shards = sorted(p for p in path.glob("*.safetensors") if SHARD_PATTERN.match(p.name))
        if not shards:
            singles = sorted(path.glob("*.safetensors"))
            if len(singles) == 1:
                return singles
            raise CheckpointError(
                f"{path}: expected one .safetensors file or one shard set, found {len(singles)}"
            )
        path = shards[0]
    if path.name.endswith(".index.json"):
        if not path.is_file():
            raise CheckpointError(f"checkpoint index not found: {path}")
        index = json.loads(path.read_text())
        return sorted({path.parent / name for name in index["weight_map"].values()})
    match = SHARD_PATTERN.match(path.name)
    if not match:
        return [path]
    count = int(match["count"])
    paths = [
        path.parent / f"{match['stem']}-{i:05d}-of-{count:05d}.safetensors"
        for i in range(1, count + 1)
    ]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise CheckpointError(f"incomplete shard set for {path}: missing {missing}")
    return paths


def read_checkpoint(path: str | Path) -> dict[str, "torch.Tensor"]:
    """Flat official-key state dict from any accepted file layout (wrappers stripped)."""
    state: dict[str, "torch.Tensor"] = {}
    for shard in shard_paths(path):
        part = read_state_dict(shard)
        duplicated = sorted(set(part) & set(state))
        if duplicated:
            raise CheckpointError(f"{shard}: keys repeated across shards (e.g. {duplicated[:3]})")
        state.update(part)
    if state and all(k.startswith(DEEPSPEED_PREFIX) for k in state):
        state = {k[len(DEEPSPEED_PREFIX) :]: v for k, v in state.items()}
    for old, new in LEGACY_RENAMES:
        state = {k.replace(old, new): v for k, v in state.items()}
    return state


def load_lvdm_state_dict(
    model: "LatentVideoDiffusion", state: Mapping[str, "torch.Tensor"], what: str
) -> None:
    """Load an official lvdm state dict into `model`, strictly.

    The schedule buffers (betas, ..., scale_arr) are loaded too: the checkpoint's values are
    the ones the official sampler uses (e.g. scale_arr depends on the yaml's base_scale).
    From reduced-precision copies they are only checked against our float32 values.
    """
    import torch

    modules = {
        "unet": model.unet,
        "cond_stage_model": model.cond_stage_model,
        "embedder": model.embedder,
        "image_proj_model": model.image_proj_model,
    }
    buffers = dict(model.named_buffers(recurse=False))
    prefixes = tuple(p for p, _ in PARTS) + ("first_stage_model.",)
    unexpected = sorted(k for k in state if not k.startswith(prefixes) and k not in buffers)
    missing = sorted(k for k in buffers if k not in state)
    if unexpected or missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:5]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:5]})")
        raise CheckpointError(f"{what}: checkpoint does not fit the model: " + "; ".join(parts))
    for prefix, name in PARTS:
        load_exact(modules[name], select_prefix(state, prefix), f"{what} [{prefix}*]")
    load_ldm_vae(
        model.first_stage_model,
        select_prefix(state, "first_stage_model."),
        f"{what} [first_stage_model.*]",
    )
    with torch.no_grad():
        for name, buf in buffers.items():
            value = state[name]
            if tuple(value.shape) != tuple(buf.shape):
                raise CheckpointError(
                    f"{what}: {name}: checkpoint {tuple(value.shape)} vs model {tuple(buf.shape)}"
                )
            if value.dtype in (torch.float32, torch.float64):
                if buf.is_meta:
                    setattr(model, name, value.to(buf.dtype))
                else:
                    buf.copy_(value.to(buf.dtype))
            elif not buf.is_meta:
                # Reduced-precision copies (bf16 pruned): keep our exact float32 schedule,
                # which must agree with the stored one to that precision.
                if not torch.allclose(buf, value.to(buf.dtype), rtol=2e-2, atol=1e-2):
                    raise CheckpointError(
                        f"{what}: schedule buffer {name} does not match this model's config "
                        "(e.g. a different base_scale): choose the matching preset"
                    )


def load_lvdm_checkpoint(model: "LatentVideoDiffusion", path: str | Path) -> None:
    """Read `path` (any accepted layout) and load it strictly into `model`."""
    if not str(path).strip():
        raise CheckpointError("no checkpoint path given for the video model (set `checkpoint`)")
    load_lvdm_state_dict(model, read_checkpoint(path), str(path))


def official_state_dict(model: "LatentVideoDiffusion") -> dict[str, "torch.Tensor"]:
    """`model`'s tensors under the official checkpoint names (VAE back in the LDM layout).

    Works on meta-device models too (used to compare with the manifests without weights).
    """
    from .autoencoder import ldm_to_diffusers_key

    modules = {
        "unet": model.unet,
        "cond_stage_model": model.cond_stage_model,
        "embedder": model.embedder,
        "image_proj_model": model.image_proj_model,
    }
    out: dict[str, "torch.Tensor"] = {}
    for prefix, name in PARTS:
        out.update({prefix + k: v for k, v in modules[name].state_dict().items()})
    out.update(dict(model.named_buffers(recurse=False)))
    levels = len(model.first_stage_model.config.block_out_channels)
    # Invert the LDM -> diffusers renaming over every name the LDM layout can have.
    inverse = {ldm_to_diffusers_key(k, levels): k for k in _ldm_vae_names(model)}
    for key, value in model.first_stage_model.state_dict().items():
        if key not in inverse:
            raise KeyError(f"VAE parameter {key} has no LDM name")
        if ".mid_block.attentions.0." in key and key.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]  # linear -> 1x1 conv
        out["first_stage_model." + inverse[key]] = value
    return out


def official_state_shapes(model: "LatentVideoDiffusion") -> dict[str, tuple[tuple[int, ...], str]]:
    """{official key: (shape, dtype name)} of `model` (see official_state_dict)."""
    return {
        k: (tuple(v.shape), str(v.dtype).replace("torch.", ""))
        for k, v in official_state_dict(model).items()
    }


def _ldm_vae_names(model: "LatentVideoDiffusion") -> list[str]:
    """Every key an LDM AutoencoderKL of this config has."""
    cfg = model.config.vae
    levels, blocks = len(cfg.ch_mult), cfg.num_res_blocks
    names = ["quant_conv", "post_quant_conv"]
    resnet = ["norm1", "conv1", "norm2", "conv2", "nin_shortcut"]
    attn = ["norm", "q", "k", "v", "proj_out"]
    for part in ("encoder", "decoder"):
        names += [f"{part}.conv_in", f"{part}.norm_out", f"{part}.conv_out"]
        names += [f"{part}.mid.block_{i}.{r}" for i in (1, 2) for r in resnet]
        names += [f"{part}.mid.attn_1.{a}" for a in attn]
    for i in range(levels):
        names += [f"encoder.down.{i}.block.{j}.{r}" for j in range(blocks) for r in resnet]
        names += [f"decoder.up.{i}.block.{j}.{r}" for j in range(blocks + 1) for r in resnet]
        names += [f"encoder.down.{i}.downsample.conv", f"decoder.up.{i}.upsample.conv"]
    return [f"{n}.{kind}" for n in names for kind in ("weight", "bias")]
