"""DL3DV-10K scenes: nerfstudio transforms.json.

transforms.json: intrinsics "fl_x", "fl_y", "cx", "cy", "w", "h" at the top level or per
frame (a frame's own values win), and "frames": [{"file_path", "transform_matrix"}] with
transform_matrix the camera-to-world pose in OpenGL camera axes (x right, y up, z back).
Converted to OpenCV axes by flipping the camera's y and z axes. "applied_transform" (a
world-frame change nerfstudio records) leaves relative poses unchanged and is ignored, as
are the distortion coefficients (k1, k2, p1, p2: small for DL3DV's frames).

The intrinsics refer to w x h; DL3DV's downsampled releases keep them and store the
images in images_2/, images_4/ or images_8/ beside images/: a missing file_path is looked
up there, and K is rescaled to the size found on disk when the image is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...core.types import world_to_camera
from ..datasets import DatasetError, PosedDataset, PosedView
from .common import GL_TO_CV, pinhole

DOWNSAMPLED_DIRS = ("images_2", "images_4", "images_8")
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")


def find_transforms(root: Path) -> list[Path]:
    """transforms.json of the scene at `root`, or of scenes up to two levels below it."""
    if (root / "transforms.json").is_file():
        return [root / "transforms.json"]
    return sorted(set(root.glob("*/transforms.json")) | set(root.glob("*/*/transforms.json")))


def _resolve_image(scene: Path, file_path: str) -> Path:
    path = scene / file_path
    if path.is_file():
        return path
    parts = Path(file_path).parts
    for folder in DOWNSAMPLED_DIRS:
        candidate = (
            scene.joinpath(folder, *parts[1:]) if len(parts) > 1 else scene / folder / file_path
        )
        if candidate.is_file():
            return candidate
    return path  # reported when read


def load_dl3dv_scene(transforms: Path) -> list[PosedView]:
    meta = json.loads(transforms.read_text())
    scene = transforms.parent
    group = scene.name if scene.name != "nerfstudio" else scene.parent.name
    views = []
    for i, frame in enumerate(meta.get("frames", [])):
        intr = {k: frame.get(k, meta.get(k)) for k in INTRINSIC_KEYS}
        missing = [k for k, v in intr.items() if v is None]
        if missing:
            raise DatasetError(f"{transforms}: frame {i} has no {missing} (top level or per frame)")
        cam_to_world_gl = np.asarray(frame["transform_matrix"], float)
        if cam_to_world_gl.shape == (3, 4):
            cam_to_world_gl = np.vstack([cam_to_world_gl, [0.0, 0.0, 0.0, 1.0]])
        R, t = world_to_camera(cam_to_world_gl @ GL_TO_CV)
        views.append(
            PosedView(
                _resolve_image(scene, frame["file_path"]),
                pinhole(intr["fl_x"], intr["fl_y"], intr["cx"], intr["cy"]),
                R,
                t,
                name=f"{group}/{Path(frame['file_path']).stem}",
                group=group,
                image_size=(int(intr["w"]), int(intr["h"])),
            )
        )
    # nerfstudio does not promise capture order in "frames"; file names carry it.
    return sorted(views, key=lambda v: v.name)


def load_dl3dv(root: Path) -> PosedDataset:
    files = find_transforms(root)
    if not files:
        raise DatasetError(f"{root}: no transforms.json (not a DL3DV / nerfstudio scene)")
    views = [v for f in files for v in load_dl3dv_scene(f)]
    if not views:
        raise DatasetError(f"{root}: transforms.json lists no frames")
    return PosedDataset(root, "dl3dv", views=views)
