"""ScanNet scenes as exported by the official SensReader (`reader.py --export_*`).

<scene>/color/<id>.jpg, <scene>/pose/<id>.txt (4x4 camera-to-world, OpenCV camera axes,
metres; frames that failed tracking hold -inf and are skipped), and
<scene>/intrinsic/intrinsic_color.txt (4x4, the top-left 3x3 is K of the colour images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...core.types import world_to_camera
from ..datasets import DatasetError, PosedDataset, PosedView

COLOR_SUFFIXES = (".jpg", ".png")


def is_scannet_scene(path: Path) -> bool:
    return (path / "pose").is_dir() and (path / "intrinsic" / "intrinsic_color.txt").is_file()


def _frame_key(path: Path):
    return (0, int(path.stem)) if path.stem.isdigit() else (1, path.stem)


def load_scannet_scene(scene: Path, frame_stride: int = 1) -> list[PosedView]:
    K = np.loadtxt(scene / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    poses = sorted((scene / "pose").glob("*.txt"), key=_frame_key)[:: max(1, frame_stride)]
    views = []
    for pose_path in poses:
        image = next(
            (
                scene / "color" / f"{pose_path.stem}{s}"
                for s in COLOR_SUFFIXES
                if (scene / "color" / f"{pose_path.stem}{s}").is_file()
            ),
            None,
        )
        cam_to_world = np.loadtxt(pose_path)
        if image is None or cam_to_world.shape != (4, 4) or not np.all(np.isfinite(cam_to_world)):
            continue
        R, t = world_to_camera(cam_to_world)
        views.append(
            PosedView(image, K, R, t, name=f"{scene.name}/{pose_path.stem}", group=scene.name)
        )
    return views


def load_scannet(root: Path, frame_stride: int = 1) -> PosedDataset:
    """A scene folder, or a folder of scene folders (scene0000_00/, ...)."""
    scenes = (
        [root]
        if is_scannet_scene(root)
        else sorted(p for p in root.iterdir() if p.is_dir() and is_scannet_scene(p))
    )
    if not scenes:
        raise DatasetError(
            f"{root}: no pose/ + intrinsic/intrinsic_color.txt (not a ScanNet export)"
        )
    views = [v for scene in scenes for v in load_scannet_scene(scene, frame_stride)]
    if not views:
        raise DatasetError(f"{root}: no frame with a colour image and a finite pose")
    return PosedDataset(root, "scannet", views=views)
