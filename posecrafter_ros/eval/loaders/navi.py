"""NAVI (google/navi, v1.0 / v1.5) in its release layout.

<object>/<scene>/annotations.json with <scene> one of multiview-XX-<camera>, video-XX-<camera>
or wild_set, images under <object>/<scene>/images/. Each annotation:
{"filename", "image_size": [height, width], "camera": {"q": [qw, qx, qy, qz], "t": [tx, ty, tz],
"focal_length": f (pixels)}, ...}. (q, t) map object coordinates into the camera frame,
x_cam = R(q) x_obj + t, with OpenCV camera axes (the release's projection puts the
principal point at (w // 2, h // 2) with y down). The object frame is the world, so
in-the-wild collections (object moved between shots) still give relative camera poses.
Images carry EXIF orientation; OpenCV's reader applies it, as the release's reader does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...core.rotations import quaternion_wxyz_to_matrix
from ..datasets import DatasetError, PosedDataset, PosedView
from .common import pinhole


def find_annotations(root: Path) -> list[Path]:
    """annotations.json of a scene folder, an object folder or the release root."""
    for pattern in ("annotations.json", "*/annotations.json", "*/*/annotations.json"):
        found = sorted(root.glob(pattern))
        if found:
            return found
    return []


def load_navi_scene(path: Path) -> list[PosedView]:
    scene = path.parent
    group = f"{scene.parent.name}/{scene.name}"
    entries = json.loads(path.read_text())
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: expected a list of annotations")
    views = []
    for i, entry in enumerate(entries):
        try:
            camera = entry["camera"]
            height, width = (int(v) for v in entry["image_size"])
            f = float(camera["focal_length"])
            R = quaternion_wxyz_to_matrix(camera["q"])
            t = np.asarray(camera["t"], float)
            filename = entry["filename"]
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"{path}: annotation {i} is malformed ({err!r})") from None
        views.append(
            PosedView(
                scene / "images" / filename,
                pinhole(f, f, width // 2, height // 2),
                R,
                t,
                name=f"{group}/{Path(filename).stem}",
                group=group,
                image_size=(width, height),
            )
        )
    return sorted(views, key=lambda v: v.name)


def load_navi(root: Path) -> PosedDataset:
    files = find_annotations(root)
    if not files:
        raise DatasetError(f"{root}: no annotations.json (not a NAVI release folder)")
    views = [v for f in files for v in load_navi_scene(f)]
    if not views:
        raise DatasetError(f"{root}: annotations list no images")
    return PosedDataset(root, "navi", views=views)
