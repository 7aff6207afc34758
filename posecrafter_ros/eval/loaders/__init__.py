"""Readers of posed image sets in their native layouts, and layout detection.

Each reader takes the folder (and layout-specific options) and returns a PosedDataset.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from ..datasets import DatasetError, PosedDataset, load_middlebury, load_posed_pairs
from .cambridge import is_cambridge_scene, load_cambridge
from .dl3dv import find_transforms, load_dl3dv
from .navi import find_annotations, load_navi
from .scannet import is_scannet_scene, load_scannet


def _posed_pairs(root: Path) -> PosedDataset:
    return PosedDataset(root, "posed-pairs", fixed_pairs=load_posed_pairs(root))


def _middlebury(root: Path) -> PosedDataset:
    return PosedDataset(root, "middlebury", views=load_middlebury(root))


LAYOUTS: dict[str, Callable[..., PosedDataset]] = {
    "posed-pairs": _posed_pairs,
    "middlebury": _middlebury,
    "cambridge": load_cambridge,
    "scannet": load_scannet,
    "dl3dv": load_dl3dv,
    "navi": load_navi,
}


def _has_child(root: Path, test: Callable[[Path], bool]) -> bool:
    return any(p.is_dir() and test(p) for p in root.iterdir())


def detect_layout(root: Path) -> str:
    """The layout of a folder, from the files each format is known by."""
    if (root / "pairs.json").is_file():
        return "posed-pairs"
    if any(root.glob("*_par.txt")):
        return "middlebury"
    if is_scannet_scene(root) or _has_child(root, is_scannet_scene):
        return "scannet"
    if is_cambridge_scene(root) or _has_child(root, is_cambridge_scene):
        return "cambridge"
    if find_transforms(root):
        return "dl3dv"
    if find_annotations(root):
        return "navi"
    raise DatasetError(
        f"{root}: layout not recognised; expected pairs.json (posed-pairs), *_par.txt "
        "(Middlebury), dataset_train/test.txt (Cambridge), pose/ + intrinsic/ (ScanNet), "
        "transforms.json (DL3DV) or annotations.json (NAVI)"
    )


def load_dataset(path: str | Path, layout: str | None = None, **options) -> PosedDataset:
    """Read a data set folder in any supported layout (detected unless `layout` is given).

    Layouts: posed-pairs, middlebury, cambridge, scannet, dl3dv, navi. `options` go to the
    layout's reader (e.g. split="test" for Cambridge, frame_stride=10 for ScanNet).
    """
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"{root} does not exist")
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r} (known: {sorted(LAYOUTS)})")
    accepted = set(inspect.signature(LAYOUTS[layout]).parameters) - {"root"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise DatasetError(
            f"the {layout} reader takes no option {unknown} (its options: {sorted(accepted)})"
        )
    return LAYOUTS[layout](root, **options)


__all__ = ["LAYOUTS", "DatasetError", "detect_layout", "load_dataset"]
