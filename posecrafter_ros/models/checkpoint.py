"""Safe checkpoint loading shared by every model.

Only two formats are read: safetensors, and torch pickles through
`torch.load(weights_only=True)`, which refuses arbitrary objects. The one non-tensor object
official checkpoints carry (DUSt3R's `argparse.Namespace` under "args") is allow-listed for
that load only and never evaluated.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:
    import torch


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable, unsafe, or does not fit the model."""


SAFETENSORS_SUFFIXES = (".safetensors",)
# Wrappers official releases put around the state dict, outermost first (Lightning, deepspeed,
# DUSt3R's {"args", "model"}, DISK's {"extractor"}).
WRAPPER_KEYS = ("state_dict", "module", "model", "extractor")


def read_state_dict(path: str | Path) -> dict[str, "torch.Tensor"]:
    """Read a flat {name: tensor} dict from a .safetensors or a torch checkpoint.

    Raises CheckpointError naming the file and what to do.
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (set its path in the node's config)")
    if path.suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises several types for bad files
            raise CheckpointError(f"cannot read safetensors file {path}: {err}") from None
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"refusing or failing to load {path} with weights_only=True: {err}. "
            "Only plain tensor checkpoints (or .safetensors) are accepted."
        ) from None
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj: object, path: str | Path = "<memory>") -> dict[str, "torch.Tensor"]:
    """Strip `state_dict` / deepspeed `module` / `model` wrappers down to the tensor dict."""
    import torch

    while isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
        else:
            # Mixed dicts (e.g. a state dict with a few non-tensor entries) keep their tensors.
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors:
                return tensors
            raise CheckpointError(
                f"{path}: no state dict found (top-level keys: {sorted(map(str, obj))[:10]})"
            )
    raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")


def select_prefix(state: Mapping[str, "torch.Tensor"], prefix: str) -> dict[str, "torch.Tensor"]:
    """Entries under `prefix` with the prefix removed (e.g. 'model.diffusion_model.')."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_exact(
    module: "torch.nn.Module",
    state: Mapping[str, "torch.Tensor"],
    what: str,
    ignore_unexpected: Iterable[str] = (),
) -> None:
    """Load `state` into `module`, failing with the names of missing/unexpected keys.

    Tensors are cast to each parameter's dtype (bf16 pruned copies load into fp32 models).
    """
    expected = module.state_dict()
    ignore = tuple(ignore_unexpected)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(
        k for k in set(state) - set(expected) if not (ignore and k.startswith(ignore))
    )
    shape_errors = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shape_errors:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:5]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:5]})")
        if shape_errors:
            parts.append(f"{len(shape_errors)} shape mismatches (e.g. {shape_errors[:3]})")
        raise CheckpointError(f"{what}: checkpoint does not fit the model: " + "; ".join(parts))
    casted = {k: state[k].to(dtype=expected[k].dtype) for k in expected}
    module.load_state_dict(casted, strict=True, assign=any(p.is_meta for p in module.parameters()))
