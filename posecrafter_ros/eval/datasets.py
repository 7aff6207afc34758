"""Posed image sets with ground truth, read into one pair type.

Conventions: a view's pose is world-to-camera, x_cam = R_w2c x_world + t_w2c (OpenCV
camera axes). A pair's ground truth is x_cam1 = R_0to1 x_cam0 + t_0to1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

# Relative-rotation bins of the protocol, in degrees: [lo, hi).
ROTATION_BINS: dict[str, tuple[float, float]] = {
    "0-50": (0.0, 50.0),
    "50-65": (50.0, 65.0),
    "65-90": (65.0, 90.0),
    "90-180": (90.0, 180.0 + 1e-9),
}


class DatasetError(Exception):
    """A dataset folder is missing files or has an unexpected layout."""


@dataclass(frozen=True)
class PosedView:
    image_path: Path
    K: np.ndarray
    R_w2c: np.ndarray
    t_w2c: np.ndarray
    name: str = ""


@dataclass(frozen=True)
class PosedPair:
    image0: Path
    image1: Path
    K0: np.ndarray
    K1: np.ndarray
    R_0to1: np.ndarray
    t_0to1: np.ndarray
    name: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def rotation_deg(self) -> float:
        cos = (np.trace(self.R_0to1) - 1.0) / 2.0
        return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def relative_pose(view0: PosedView, view1: PosedView) -> tuple[np.ndarray, np.ndarray]:
    """(R_0to1, t_0to1) between two world-to-camera views."""
    R = view1.R_w2c @ view0.R_w2c.T
    t = view1.t_w2c - R @ view0.t_w2c
    return R, t


def make_pair(view0: PosedView, view1: PosedView) -> PosedPair:
    R, t = relative_pose(view0, view1)
    return PosedPair(
        view0.image_path, view1.image_path, view0.K, view1.K, R, t,
        name=f"{view0.name}-{view1.name}",
    )


def rotation_bin(rotation_deg: float) -> str | None:
    for name, (lo, hi) in ROTATION_BINS.items():
        if lo <= rotation_deg < hi:
            return name
    return None


def load_posed_pairs(root: str | Path) -> list[PosedPair]:
    """The posed-pairs format: pairs.json (+ images/), as in shared/data/posed_pairs_fixture."""
    root = Path(root)
    index = root / "pairs.json"
    if not index.is_file():
        raise DatasetError(f"{root}: no pairs.json (not a posed-pairs folder)")
    pairs = []
    for i, entry in enumerate(json.loads(index.read_text())):
        try:
            p0, p1 = root / "images" / entry["image0"], root / "images" / entry["image1"]
            pairs.append(
                PosedPair(
                    p0, p1,
                    np.asarray(entry["K0"], float), np.asarray(entry["K1"], float),
                    np.asarray(entry["R_0to1"], float), np.asarray(entry["t_0to1"], float),
                    name=f"{Path(entry['image0']).stem}-{Path(entry['image1']).stem}",
                    meta={k: v for k, v in entry.items() if k not in ("K0", "K1", "R_0to1", "t_0to1")},
                )
            )
        except KeyError as err:
            raise DatasetError(f"{index}: entry {i} lacks {err}") from None
    return pairs


def load_middlebury(root: str | Path) -> list[PosedView]:
    """A Middlebury multi-view set: <scene>_par.txt ("img k11..k33 r11..r33 t1 t2 t3", P = K[R|t])."""
    root = Path(root)
    par_files = sorted(root.glob("*_par.txt"))
    if not par_files:
        raise DatasetError(f"{root}: no *_par.txt (not a Middlebury folder)")
    views = []
    for line_no, line in enumerate(par_files[0].read_text().splitlines()):
        fields = line.split()
        if len(fields) != 22:
            continue  # the first line holds the number of views
        values = np.asarray(fields[1:], float)
        views.append(
            PosedView(
                root / fields[0], values[:9].reshape(3, 3), values[9:18].reshape(3, 3), values[18:21],
                name=Path(fields[0]).stem,
            )
        )
    if not views:
        raise DatasetError(f"{par_files[0]}: no camera lines")
    return views


def all_pairs(views: Sequence[PosedView], max_rotation_deg: float = 180.0) -> list[PosedPair]:
    """Every unordered pair (i < j) whose relative rotation is at most `max_rotation_deg`."""
    pairs = []
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            pair = make_pair(views[i], views[j])
            if pair.rotation_deg <= max_rotation_deg:
                pairs.append(pair)
    return pairs


def sample_pairs_by_bin(
    pairs: Sequence[PosedPair], per_bin: int, seed: int = 0, bins: Sequence[str] | None = None
) -> list[PosedPair]:
    """Up to `per_bin` pairs from each rotation bin, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    chosen = []
    for name in bins or ROTATION_BINS:
        members = [p for p in pairs if rotation_bin(p.rotation_deg) == name]
        if len(members) > per_bin:
            idx = sorted(rng.choice(len(members), size=per_bin, replace=False))
            members = [members[i] for i in idx]
        chosen.extend(members)
    return chosen
