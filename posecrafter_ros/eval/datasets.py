"""Posed image sets with ground truth, read into one pair type.

Conventions: a view's pose is world-to-camera, x_cam = R_w2c x_world + t_w2c (OpenCV
camera axes: x right, y down, z forward). A pair's ground truth is
x_cam1 = R_0to1 x_cam0 + t_0to1.

Two kinds of data sets exist:
- pair sets (the posed-pairs format): fixed pairs, each with its own intrinsics;
- view sets (Middlebury, Cambridge Landmarks, ScanNet, DL3DV-10K, NAVI): posed views in
  groups that share one world frame (a scene, a video), ordered as captured, from which
  pairs are sampled by relative-rotation bins.

`posecrafter_ros.eval.loaders.load_dataset(path)` detects the layout and calls the reader of
that layout (the per-layout readers live in `posecrafter_ros.eval.loaders`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Relative-rotation bins of the protocol, in degrees: [lo, hi). The paper reports 50-65
# (small overlap) and 65-90 (none); 0-50 shows the direct path, 90-180 the extreme cases.
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
    """One image with intrinsics and a world-to-camera pose.

    K: [3 x 3] intrinsics for an image of `image_size` (width, height); None means the
    image on disk has exactly the size K was made for. Readers rescale K when the image on
    disk has another size (e.g. DL3DV's downsampled images_4/ folders).
    group: views of the same group share one world frame (scene, video, object capture).
    """

    image_path: Path
    K: np.ndarray
    R_w2c: np.ndarray
    t_w2c: np.ndarray
    name: str = ""
    group: str = ""
    image_size: tuple[int, int] | None = None

    @property
    def cam_to_world(self) -> np.ndarray:
        """[4 x 4] camera-to-world transform (OpenCV camera axes)."""
        T = np.eye(4)
        T[:3, :3] = self.R_w2c.T
        T[:3, 3] = -self.R_w2c.T @ self.t_w2c
        return T


@dataclass(frozen=True)
class PosedPair:
    """Two images with intrinsics and their relative pose x_cam1 = R_0to1 x_cam0 + t_0to1.

    meta may hold "size0"/"size1" (the image sizes K0/K1 refer to, see PosedView), the
    group and view indices the pair came from, and any fields of the source format.
    """

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
        return rotation_angle_deg(self.R_0to1)


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle in degrees of a rotation matrix."""
    cos = (np.trace(R) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def relative_pose(view0: PosedView, view1: PosedView) -> tuple[np.ndarray, np.ndarray]:
    """(R_0to1, t_0to1) between two world-to-camera views."""
    R = view1.R_w2c @ view0.R_w2c.T
    t = view1.t_w2c - R @ view0.t_w2c
    return R, t


def make_pair(view0: PosedView, view1: PosedView, **meta) -> PosedPair:
    R, t = relative_pose(view0, view1)
    return PosedPair(
        view0.image_path,
        view1.image_path,
        view0.K,
        view1.K,
        R,
        t,
        name=f"{view0.name}-{view1.name}",
        meta={"size0": view0.image_size, "size1": view1.image_size, "group": view0.group, **meta},
    )


def rotation_bin(rotation_deg: float) -> str | None:
    for name, (lo, hi) in ROTATION_BINS.items():
        if lo <= rotation_deg < hi:
            return name
    return None


@dataclass
class PosedDataset:
    """A loaded data set: fixed pairs (pair sets) or ordered views in groups (view sets)."""

    root: Path
    layout: str
    views: list[PosedView] = field(default_factory=list)
    fixed_pairs: list[PosedPair] = field(default_factory=list)

    @property
    def is_sequence(self) -> bool:
        """True for view sets: frames between two views exist (the oracle row needs them)."""
        return bool(self.views)

    def groups(self) -> dict[str, list[int]]:
        """Group name -> indices into `views`, in capture order."""
        out: dict[str, list[int]] = {}
        for i, view in enumerate(self.views):
            out.setdefault(view.group, []).append(i)
        return out

    def sample_pairs(
        self, per_bin: int, seed: int = 0, bins: Sequence[str] | None = None
    ) -> list[PosedPair]:
        """Up to `per_bin` pairs per rotation bin, deterministic for a seed."""
        if self.fixed_pairs:
            return sample_pairs_by_bin(self.fixed_pairs, per_bin, seed, bins)
        return sample_view_pairs(self.views, per_bin, seed, bins)

    def between_indices(self, pair: PosedPair) -> list[int]:
        """Indices of the views captured strictly between a sampled pair's views (same group),
        in path order from its first view to its second (core.oracle.OracleSource)."""
        if "index0" not in pair.meta:
            return []
        first, second = pair.meta["index0"], pair.meta["index1"]
        step = 1 if second > first else -1
        group = self.views[first].group
        return [i for i in range(first + step, second, step) if self.views[i].group == group]


def load_posed_pairs(root: str | Path) -> list[PosedPair]:
    """The posed-pairs format: pairs.json (+ images/), as in shared/data/posed_pairs_fixture.

    pairs.json is a list of {"image0", "image1" (paths under images/), "K0", "K1" (3x3),
    "R_0to1" (3x3), "t_0to1" (3)} plus free extra fields, kept in `meta`.
    """
    root = Path(root)
    index = root / "pairs.json"
    if not index.is_file():
        raise DatasetError(f"{root}: no pairs.json (not a posed-pairs folder)")
    pairs = []
    matrix_keys = ("K0", "K1", "R_0to1", "t_0to1")
    for i, entry in enumerate(json.loads(index.read_text())):
        try:
            p0, p1 = root / "images" / entry["image0"], root / "images" / entry["image1"]
            pairs.append(
                PosedPair(
                    p0,
                    p1,
                    np.asarray(entry["K0"], float),
                    np.asarray(entry["K1"], float),
                    np.asarray(entry["R_0to1"], float),
                    np.asarray(entry["t_0to1"], float),
                    name=f"{Path(entry['image0']).stem}-{Path(entry['image1']).stem}",
                    meta={k: v for k, v in entry.items() if k not in matrix_keys},
                )
            )
        except KeyError as err:
            raise DatasetError(f"{index}: entry {i} lacks {err}") from None
    return pairs


def load_middlebury(root: str | Path) -> list[PosedView]:
    """A Middlebury multi-view set: <scene>_par.txt, one line per image.

    Line format: "img k11..k33 r11..r33 t1 t2 t3", projection P = K [R | t] (world-to-camera);
    the first line holds the number of views.
    """
    root = Path(root)
    par_files = sorted(root.glob("*_par.txt"))
    if not par_files:
        raise DatasetError(f"{root}: no *_par.txt (not a Middlebury folder)")
    views = []
    for line in par_files[0].read_text().splitlines():
        fields = line.split()
        if len(fields) != 22:
            continue  # the count line
        values = np.asarray(fields[1:], float)
        views.append(
            PosedView(
                root / fields[0],
                values[:9].reshape(3, 3),
                values[9:18].reshape(3, 3),
                values[18:21],
                name=Path(fields[0]).stem,
                group=par_files[0].stem[: -len("_par")],
            )
        )
    if not views:
        raise DatasetError(f"{par_files[0]}: no camera lines")
    return views


def all_pairs(views: Sequence[PosedView], max_rotation_deg: float = 180.0) -> list[PosedPair]:
    """Every unordered pair (i < j) of one group whose rotation is at most `max_rotation_deg`."""
    pairs = []
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            if views[i].group != views[j].group:
                continue
            pair = make_pair(views[i], views[j], index0=i, index1=j)
            if pair.rotation_deg <= max_rotation_deg:
                pairs.append(pair)
    return pairs


def sample_pairs_by_bin(
    pairs: Sequence[PosedPair], per_bin: int, seed: int = 0, bins: Sequence[str] | None = None
) -> list[PosedPair]:
    """Up to `per_bin` pairs from each rotation bin, deterministic for a seed.

    Output order: bin by bin (in `bins` order), pairs in their input order inside a bin.
    """
    rng = np.random.default_rng(seed)
    chosen = []
    for name in bins or ROTATION_BINS:
        _check_bin(name)
        members = [p for p in pairs if rotation_bin(p.rotation_deg) == name]
        if len(members) > per_bin:
            idx = sorted(rng.choice(len(members), size=per_bin, replace=False))
            members = [members[i] for i in idx]
        chosen.extend(members)
    return chosen


def sample_view_pairs(
    views: Sequence[PosedView],
    per_bin: int,
    seed: int = 0,
    bins: Sequence[str] | None = None,
    chunk_rows: int = 512,
) -> list[PosedPair]:
    """Up to `per_bin` view pairs (i < j, same group) per rotation bin, deterministic for a seed.

    Scales to long sequences (ScanNet's thousands of frames): angles are computed in row
    chunks of the upper triangle, and only the (i, j) indices of each bin are kept.
    trace(R_j R_i^T) is the element-wise product sum of R_j and R_i, so a chunk of angles is
    one einsum instead of many matrix products.
    """
    bins = list(bins or ROTATION_BINS)
    for name in bins:
        _check_bin(name)
    groups: dict[str, list[int]] = {}
    for i, view in enumerate(views):
        groups.setdefault(view.group, []).append(i)
    members: dict[str, list[np.ndarray]] = {name: [] for name in bins}
    for indices in groups.values():
        idx = np.asarray(indices)
        rotations = np.stack([views[i].R_w2c for i in idx])
        for start in range(0, len(idx), chunk_rows):
            rows = rotations[start : start + chunk_rows]
            traces = np.einsum("iab,jab->ij", rows, rotations)
            angles = np.degrees(np.arccos(np.clip((traces - 1.0) / 2.0, -1.0, 1.0)))
            row_ids = np.arange(start, start + len(rows))[:, None]
            ii, jj = np.nonzero(np.arange(len(idx))[None, :] > row_ids)  # upper triangle
            a = angles[ii, jj]
            for name in bins:
                lo, hi = ROTATION_BINS[name]
                keep = (a >= lo) & (a < hi)
                pair_indices = np.stack([idx[ii[keep] + start], idx[jj[keep]]], axis=1)
                members[name].append(pair_indices.astype(np.int32))  # millions on ScanNet
    rng = np.random.default_rng(seed)
    pairs = []
    for name in bins:
        candidates = np.concatenate(members[name]) if members[name] else np.zeros((0, 2), int)
        if len(candidates) > per_bin:
            picked = rng.choice(len(candidates), size=per_bin, replace=False)
            candidates = candidates[np.sort(picked)]
        for i, j in candidates:
            pairs.append(make_pair(views[i], views[j], index0=int(i), index1=int(j)))
    return pairs


def _check_bin(name: str) -> None:
    if name not in ROTATION_BINS:
        raise ValueError(f"unknown rotation bin {name!r} (known: {list(ROTATION_BINS)})")


@dataclass
class ViewSequence:
    """An order of a posed view set along which its views follow each other, and whether that
    order closes into a ring (the last view is as close to the first as neighbours are)."""

    order: list[int]
    cyclic: bool
    median_step: float


def sequence_order(views: Sequence[PosedView], max_heading_gap_deg: float = 90.0) -> ViewSequence:
    """The capture-like order of a posed view set, found from its ground-truth poses.

    View distance: the angle between optical axes over its median nearest-neighbour value plus
    the centre distance over its median nearest-neighbour value (scale-free; a camera rolled
    about its axis still sees the same things). A short closed tour through all views is found
    (nearest-neighbour tours from every view, improved by 2-opt). The set is a ring when its
    headings go all the way round: the optical axes, projected on the plane they span, leave no
    gap wider than `max_heading_gap_deg` (an object ring, a loop around a block). Otherwise the
    tour is cut at its longest step into an open sequence, and a file order at most as long is
    kept (the capture order of a walk).
    """
    n = len(views)
    if n < 4:
        return ViewSequence(list(range(n)), False, 0.0)
    axes = np.array([v.R_w2c[2] for v in views])  # optical axes in world coordinates
    angle = np.degrees(np.arccos(np.clip(axes @ axes.T, -1.0, 1.0)))
    centres = np.array([-v.R_w2c.T @ v.t_w2c for v in views])
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    off_diagonal = ~np.eye(n, dtype=bool)

    def nn_median(d: np.ndarray) -> float:
        return float(np.median(np.where(off_diagonal, d, np.inf).min(axis=1))) or 1.0

    cost = angle / nn_median(angle) + dist / nn_median(dist)

    def steps(order: list[int], closed: bool) -> list[float]:
        pairs = list(zip(order, order[1:] + order[:1])) if closed else zip(order[:-1], order[1:])
        return [float(cost[a, b]) for a, b in pairs]

    def two_opt(tour: list[int]) -> list[int]:
        improved = True
        while improved:
            improved = False
            for i in range(1, n - 1):
                for j in range(i + 1, n):
                    # Reversing tour[i..j] replaces edges (i-1, i) and (j, j+1 mod n).
                    a, b, c, d = tour[i - 1], tour[i], tour[j], tour[(j + 1) % n]
                    if cost[a, c] + cost[b, d] < cost[a, b] + cost[c, d] - 1e-9:
                        tour[i : j + 1] = tour[i : j + 1][::-1]
                        improved = True
        return tour

    best = None
    for start in range(n):
        tour, left = [start], set(range(n)) - {start}
        while left:
            tour.append(min(left, key=lambda v: cost[tour[-1], v]))
            left.discard(tour[-1])
        tour = two_opt(tour)
        if best is None or sum(steps(tour, True)) < sum(steps(best, True)) - 1e-6:
            best = tour
    _, _, plane = np.linalg.svd(axes)  # the two leading directions span the headings' plane
    headings = np.sort(np.degrees(np.arctan2(axes @ plane[1], axes @ plane[0])))
    gaps = np.diff(np.concatenate([headings, headings[:1] + 360.0]))
    cyclic = float(gaps.max()) <= max_heading_gap_deg
    order = best
    if not cyclic:
        closed_steps = steps(best, True)
        longest = int(np.argmax(closed_steps))
        order = best[longest + 1 :] + best[: longest + 1]  # cut after the longest step
        if sum(steps(list(range(n)), False)) <= sum(steps(order, False)) + 1e-6:
            order = list(range(n))
    median_step = float(np.median([angle[a, b] for a, b in zip(order[:-1], order[1:])]))
    return ViewSequence(order, bool(cyclic), median_step)
