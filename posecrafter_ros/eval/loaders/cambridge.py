"""Cambridge Landmarks (PoseNet release) in its native layout.

<scene>/dataset_train.txt, dataset_test.txt: three header lines, then one line per image:
"seqN/frameXXXXX.png X Y Z W P Q R" with (X, Y, Z) the camera centre in the scene's world
frame and (W, P, Q, R) the world-to-camera rotation as a quaternion (w, x, y, z), both
taken from the VisualSFM reconstruction. So R_w2c = quat(W, P, Q, R), t_w2c = -R_w2c C.

Intrinsics: the release ships <scene>/reconstruction.nvm (VisualSFM NVM_V3), whose camera
lines are "seqN/frameXXXXX.jpg f qw qx qy qz cx cy cz radial 0" with f in pixels of the
1920x1080 video frames; the principal point is the image centre. Without the .nvm file
a documented default is used: f = DEFAULT_FOCAL_FRACTION * 1920 (1670 px, the typical
value in the reconstructions). Images stored at another size get K rescaled on read.

Views are grouped per scene and sequence (one video each): pairs come from one video, and
the frames between them are that video's frames (for the oracle row).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...core.rotations import quaternion_wxyz_to_matrix
from ..datasets import DatasetError, PosedDataset, PosedView
from .common import pinhole

logger = logging.getLogger(__name__)

NVM_IMAGE_SIZE = (1920, 1080)
DEFAULT_FOCAL_FRACTION = 1670.0 / 1920.0
SPLIT_FILES = {
    "train": ("dataset_train.txt",),
    "test": ("dataset_test.txt",),
    "all": ("dataset_train.txt", "dataset_test.txt"),
}
# A few frames of the release have absurd centres (failed registrations).
MAX_ABS_COORDINATE = 1e4


def is_cambridge_scene(path: Path) -> bool:
    return any((path / name).is_file() for name in SPLIT_FILES["all"])


def read_nvm_focals(path: Path) -> dict[str, float]:
    """Image path without extension -> focal length (pixels), from the first NVM model."""
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("NVM_V3"):
        raise DatasetError(f"{path}: not an NVM_V3 file (first line {lines[:1]})")
    row = 1
    while row < len(lines) and not lines[row].strip():
        row += 1
    try:
        count = int(lines[row].split()[0])
    except (IndexError, ValueError):
        raise DatasetError(f"{path}: line {row + 1} should hold the number of cameras") from None
    focals = {}
    for line in lines[row + 1 : row + 1 + count]:
        fields = line.split()
        focals[str(Path(fields[0]).with_suffix(""))] = float(fields[1])
    return focals


def _read_split(path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    entries = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) != 8:
            continue  # header lines
        try:
            values = np.asarray(fields[1:], float)
        except ValueError:
            continue  # the "ImageFile, Camera Position [X Y Z W P Q R]" header
        entries.append((fields[0], values[:3], values[3:]))
    if not entries:
        raise DatasetError(f"{path}: no 'image X Y Z W P Q R' lines")
    return entries


def load_cambridge_scene(
    scene: Path, split: str = "all", focal_px: float | None = None
) -> list[PosedView]:
    if split not in SPLIT_FILES:
        raise DatasetError(f"unknown Cambridge split {split!r} (known: {sorted(SPLIT_FILES)})")
    nvm = scene / "reconstruction.nvm"
    focals = read_nvm_focals(nvm) if nvm.is_file() else {}
    if not focals and focal_px is None:
        logger.warning(
            "%s: no reconstruction.nvm; using the default focal %.0f px at 1920x1080",
            scene,
            DEFAULT_FOCAL_FRACTION * NVM_IMAGE_SIZE[0],
        )
    width, height = NVM_IMAGE_SIZE
    views = []
    for name in SPLIT_FILES[split]:
        if not (scene / name).is_file():
            continue
        for rel_path, centre, quat in _read_split(scene / name):
            if not np.all(np.isfinite(centre)) or np.abs(centre).max() > MAX_ABS_COORDINATE:
                logger.warning("%s: skipping %s (centre %s is an outlier)", scene, rel_path, centre)
                continue
            key = str(Path(rel_path).with_suffix(""))
            focal = focal_px or focals.get(key, DEFAULT_FOCAL_FRACTION * width)
            R = quaternion_wxyz_to_matrix(quat)
            sequence = Path(rel_path).parts[0] if len(Path(rel_path).parts) > 1 else ""
            views.append(
                PosedView(
                    scene / rel_path,
                    pinhole(focal, focal, width / 2.0, height / 2.0),
                    R,
                    -R @ centre,
                    name=f"{scene.name}/{key}",
                    group=f"{scene.name}/{sequence}",
                    image_size=NVM_IMAGE_SIZE,
                )
            )
    # Capture order inside each video (the split files interleave train and test frames).
    return sorted(views, key=lambda v: (v.group, v.name))


def load_cambridge(root: Path, split: str = "all", focal_px: float | None = None) -> PosedDataset:
    """A scene folder, or a folder of scene folders (KingsCollege/, ShopFacade/, ...)."""
    scenes = (
        [root]
        if is_cambridge_scene(root)
        else sorted(p for p in root.iterdir() if p.is_dir() and is_cambridge_scene(p))
    )
    if not scenes:
        raise DatasetError(
            f"{root}: no dataset_train.txt / dataset_test.txt (not Cambridge Landmarks)"
        )
    views = [v for scene in scenes for v in load_cambridge_scene(scene, split, focal_px)]
    if not views:
        raise DatasetError(f"{root}: no usable views for split {split!r}")
    return PosedDataset(root, "cambridge", views=views)
