"""DUSt3R global alignment: one world frame for N views from pairwise point maps.

Follows the official `PointCloudOptimizer` (init "mst", Adam with betas (0.9, 0.9)):

- per view: log-depth map, pose [quaternion XYZW, signed_log1p(t)] (camera-to-world),
  focal as `focal_break * log(f)`, principal point as `(W/2, H/2) + 10 * pp_param` (frozen);
- per edge (i, j): a similarity [quaternion, signed_log1p(t), log s] mapping the pair's
  point maps into the world; the scales are normalised so exp(mean log s) = base_scale;
- loss: sum over edges of log(conf)-weighted Euclidean distances between each view's
  back-projected depth map and the edge's aligned points, divided by the total pixel count
  (per side).
- init: maximum-confidence spanning tree (scipy), chained Umeyama registrations, focal by a
  robust reprojection fit, PnP-RANSAC (OpenCV SQPnP) for views the tree reaches only
  through their partner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .geometry import (
    apply_transform,
    estimate_focal,
    matrix_to_quaternion,
    pixel_centres,
    pnp_ransac,
    quaternion_to_matrix,
    signed_expm1,
    signed_log1p,
    similarity_matrix,
    similarity_registration,
)
from .inference import PairPrediction, view_confidence


class AlignmentError(Exception):
    """Global alignment or the two-view pose could not produce a valid result."""


# Pixel weight of a confidence c in the loss (official `get_conf_trf`).
CONFIDENCE_WEIGHTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "log": torch.log,
    "sqrt": torch.sqrt,
    "m1": lambda c: c - 1,
    "id": lambda c: c,
    "none": lambda c: c,
}


@dataclass(frozen=True)
class AlignmentConfig:
    """Official defaults of `global_aligner(...).compute_global_alignment(init='mst', ...)`."""

    niter: int = 300
    lr: float = 0.01
    schedule: str = "linear"
    lr_min: float = 1e-6
    min_conf_thr: float = 3.0
    base_scale: float = 0.5
    pw_break: float = 20.0
    focal_break: float = 20.0
    niter_pnp: int = 10
    dist: str = "l1"
    conf: str = "log"
    allow_pw_adaptors: bool = False
    optimize_pp: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")
        if self.dist not in ("l1", "l2"):
            raise ValueError(f"dist must be 'l1' or 'l2', got {self.dist!r}")
        if self.conf not in CONFIDENCE_WEIGHTS:
            raise ValueError(f"conf must be one of {sorted(CONFIDENCE_WEIGHTS)}, got {self.conf!r}")


def learning_rate(config: AlignmentConfig, iteration: int) -> float:
    t = iteration / config.niter
    if config.schedule == "linear":
        return config.lr + (config.lr_min - config.lr) * t
    return config.lr_min + (config.lr - config.lr_min) * (1 + np.cos(t * np.pi)) / 2


def _ravel_padded(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """[H x W x ...] -> [length x ...], zero-padded after the H*W pixels."""
    flat = tensor.reshape((tensor.shape[0] * tensor.shape[1],) + tensor.shape[2:])
    if len(flat) < length:
        flat = torch.cat((flat, flat.new_zeros((length - len(flat),) + flat.shape[1:])))
    return flat


def _poses_to_matrices(poses: torch.Tensor) -> torch.Tensor:
    """[N x >=7] (quat XYZW, signed_log1p t, ...) -> [N x 4 x 4] rigid matrices."""
    quat = poses[:, :4]
    quat = quat / torch.norm(quat, dim=-1, keepdim=True)
    out = torch.zeros((len(poses), 4, 4), dtype=poses.dtype, device=poses.device)
    out[:, :3, :3] = quaternion_to_matrix(quat)
    out[:, :3, 3] = signed_expm1(poses[:, 4:7])
    out[:, 3, 3] = 1.0
    return out


class PointCloudOptimizer(nn.Module):
    """Global alignment state and loss for the views and edges of `predictions`."""

    def __init__(
        self, predictions: Sequence[PairPrediction], config: AlignmentConfig | None = None
    ):
        super().__init__()
        self.config = config or AlignmentConfig()
        self.edges = [(p.i, p.j) for p in predictions]
        views = sorted({v for edge in self.edges for v in edge})
        if views != list(range(len(views))) or len(views) < 2:
            raise AlignmentError(f"edges must connect views 0..N-1 (N >= 2), got {self.edges}")
        self.num_views = len(views)
        self.pred_i = [p.pts_i for p in predictions]
        self.pred_j = [p.pts_j for p in predictions]
        self.conf_i = [p.conf_i for p in predictions]
        self.conf_j = [p.conf_j for p in predictions]
        shapes: list[tuple[int, int] | None] = [None] * self.num_views
        for e, (i, j) in enumerate(self.edges):
            for view, points in ((i, self.pred_i[e]), (j, self.pred_j[e])):
                shape = tuple(points.shape[:2])
                if shapes[view] not in (None, shape):
                    raise AlignmentError(f"view {view} has point maps of two shapes")
                shapes[view] = shape
        self.imshapes: list[tuple[int, int]] = [s for s in shapes if s is not None]
        self.im_conf = view_confidence(predictions, self.num_views)

        areas = [h * w for h, w in self.imshapes]
        self.max_area = max(areas)
        num_edges = len(self.edges)
        self.pw_poses = nn.Parameter(torch.zeros((num_edges, 8)))
        self.pw_adaptors = nn.Parameter(
            torch.zeros((num_edges, 2)), requires_grad=self.config.allow_pw_adaptors
        )
        self.im_depthmaps = nn.Parameter(torch.zeros((self.num_views, self.max_area)))
        self.im_poses = nn.Parameter(torch.zeros((self.num_views, 7)))
        self.im_focals = nn.Parameter(
            torch.tensor(
                [[self.config.focal_break * np.log(max(h, w))] for h, w in self.imshapes],
                dtype=torch.float32,
            )
        )
        self.im_pp = nn.Parameter(
            torch.zeros((self.num_views, 2)), requires_grad=self.config.optimize_pp
        )
        # Views whose intrinsics were preset (preset_intrinsics) and are not optimised.
        self.known_views = [False] * self.num_views
        with torch.no_grad():
            self.pw_poses[:, 3] = 1.0
            self.im_poses[:, 3] = 1.0

        def stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
            return torch.stack([_ravel_padded(t, self.max_area) for t in tensors]).float()

        self.register_buffer("_pp", torch.tensor([(w / 2, h / 2) for h, w in self.imshapes]))
        grids = []
        for h, w in self.imshapes:
            xs, ys = torch.arange(w), torch.arange(h)
            grids.append(torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1))
        self.register_buffer("_grid", stack(grids))
        weight = CONFIDENCE_WEIGHTS[self.config.conf]
        self.register_buffer("_weight_i", stack([weight(c) for c in self.conf_i]))
        self.register_buffer("_weight_j", stack([weight(c) for c in self.conf_j]))
        self.register_buffer("_stacked_pred_i", stack(self.pred_i))
        self.register_buffer("_stacked_pred_j", stack(self.pred_j))
        self.register_buffer("_ei", torch.tensor([i for i, _ in self.edges]))
        self.register_buffer("_ej", torch.tensor([j for _, j in self.edges]))
        self.total_area_i = sum(areas[i] for i, _ in self.edges)
        self.total_area_j = sum(areas[j] for _, j in self.edges)
        self.pnp_views: tuple[int, ...] = ()  # views the last MST init posed by PnP-RANSAC

    # ------------------------------------------------------------------ state
    def focals(self) -> torch.Tensor:
        """[N x 1] focal lengths (pixels at working resolution)."""
        return (self.im_focals / self.config.focal_break).exp()

    def principal_points(self) -> torch.Tensor:
        """[N x 2] (cx, cy)."""
        return self._pp + 10 * self.im_pp

    def intrinsics(self) -> torch.Tensor:
        """[N x 3 x 3]."""
        K = torch.zeros((self.num_views, 3, 3), device=self.im_focals.device)
        K[:, 0, 0] = K[:, 1, 1] = self.focals().flatten()
        K[:, :2, 2] = self.principal_points()
        K[:, 2, 2] = 1
        return K

    def cam_to_world(self) -> torch.Tensor:
        """[N x 4 x 4] camera-to-world (OpenCV camera axes)."""
        return _poses_to_matrices(self.im_poses)

    def depthmaps(self) -> list[torch.Tensor]:
        """Per view [H x W] depth."""
        depth = self.im_depthmaps.exp()
        return [d[: h * w].view(h, w) for d, (h, w) in zip(depth, self.imshapes)]

    def _world_points_raveled(self) -> torch.Tensor:
        """[N x max_area x 3] world points of every (padded) pixel."""
        focal = self.focals().unsqueeze(1)
        pp = self.principal_points().unsqueeze(1)
        depth = self.im_depthmaps.exp().unsqueeze(-1)
        camera_points = torch.cat((depth * (self._grid - pp) / focal, depth), dim=-1)
        return apply_transform(self.cam_to_world(), camera_points)

    def world_points(self) -> list[torch.Tensor]:
        """Per view [H x W x 3] world coordinates."""
        points = self._world_points_raveled()
        return [p[: h * w].view(h, w, 3) for p, (h, w) in zip(points, self.imshapes)]

    def masks(self) -> list[torch.Tensor]:
        """Per view [H x W] bool: confidence above `min_conf_thr`."""
        return [c > self.config.min_conf_thr for c in self.im_conf]

    def pairwise_scale_factor(self) -> torch.Tensor:
        return (math.log(self.config.base_scale) - self.pw_poses[:, -1].mean()).exp()

    def pairwise_poses(self) -> torch.Tensor:
        """[E x 4 x 4] scaled edge-to-world similarities (scale applied to R and t)."""
        scale = self.pw_poses[:, -1].exp() * self.pairwise_scale_factor()
        scaled = _poses_to_matrices(self.pw_poses).clone()
        scaled[:, :3] *= scale.view(-1, 1, 1)
        return scaled

    def _adaptors(self) -> torch.Tensor:
        adapt = torch.cat((self.pw_adaptors[:, 0:1], self.pw_adaptors), dim=-1)
        adapt = adapt - adapt.mean(dim=1, keepdim=True)
        return (adapt / self.config.pw_break).exp()

    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-point residual: Euclidean ("l1") or squared Euclidean ("l2") distance."""
        if self.config.dist == "l1":
            return (a - b).norm(dim=-1)
        return (a - b).square().sum(dim=-1)

    def forward(self) -> torch.Tensor:
        """The alignment loss (scalar)."""
        pairwise = self.pairwise_poses()
        adapt = self._adaptors().unsqueeze(1)
        world = self._world_points_raveled()
        aligned_i = apply_transform(pairwise, adapt * self._stacked_pred_i)
        aligned_j = apply_transform(pairwise, adapt * self._stacked_pred_j)
        residual_i = self._distance(world[self._ei], aligned_i) * self._weight_i
        residual_j = self._distance(world[self._ej], aligned_j) * self._weight_j
        return residual_i.sum() / self.total_area_i + residual_j.sum() / self.total_area_j

    # ------------------------------------------------------------------ presets
    def preset_intrinsics(
        self,
        focals: Sequence[float],
        principal_points: Sequence[tuple[float, float]],
        views: Sequence[int] | None = None,
    ):
        """Fix known focals and principal points (working pixels) of `views` (default: all).

        The official `preset_focal` / `preset_principal_point` freeze the whole focal tensor
        even when only some views are preset; here only the given views are fixed and the
        others' focals stay free (principal points stay at the image centre unless
        `optimize_pp`), as needed when real keyframes share an alignment with generated views.
        """
        views = list(range(self.num_views)) if views is None else [int(v) for v in views]
        if not (len(views) == len(focals) == len(principal_points)):
            raise ValueError(
                f"{len(focals)} focals and {len(principal_points)} principal points for "
                f"{len(views)} views"
            )
        with torch.no_grad():
            for view, focal, pp in zip(views, focals, principal_points):
                h, w = self.imshapes[view]
                self.im_focals[view] = self.config.focal_break * np.log(float(focal))
                self.im_pp[view] = (
                    torch.tensor(pp, dtype=torch.float32) - torch.tensor((w / 2, h / 2))
                ) / 10
                self.known_views[view] = True
        if all(self.known_views):
            self.im_focals.requires_grad_(False)
            self.im_pp.requires_grad_(False)
            return
        # Some views free: zero the gradients of the fixed rows. Adam's moments of those rows
        # then stay zero, so its steps leave them exactly where they were set.
        frozen = torch.tensor(self.known_views)[:, None]
        for param in (self.im_focals, self.im_pp):
            if param.requires_grad:
                param.register_hook(lambda grad: grad.masked_fill(frozen.to(grad.device), 0.0))

    # ------------------------------------------------------------------ init
    def _set_edge_pose(self, edge: int, rotation: torch.Tensor, t: torch.Tensor, scale) -> None:
        self.pw_poses.data[edge, 0:4] = matrix_to_quaternion(rotation)
        self.pw_poses.data[edge, 4:7] = signed_log1p(t / scale)
        self.pw_poses.data[edge, -1] = np.log(float(scale))

    def _set_view_pose(self, view: int, cam_to_world: torch.Tensor) -> None:
        self.im_poses.data[view, 0:4] = matrix_to_quaternion(cam_to_world[:3, :3])
        self.im_poses.data[view, 4:7] = signed_log1p(cam_to_world[:3, 3])

    def _set_depthmap(self, view: int, depth: torch.Tensor) -> None:
        self.im_depthmaps.data[view] = (
            _ravel_padded(depth, self.max_area).log().nan_to_num(neginf=0)
        )

    @torch.no_grad()
    def init_minimum_spanning_tree(self) -> None:
        """Initialise every pose, depth and focal from the pairwise predictions."""
        points, focals, cam_to_world = self._spanning_tree()
        for e, (i, _) in enumerate(self.edges):
            scale, rotation, t = similarity_registration(self.pred_i[e], points[i], self.conf_i[e])
            self._set_edge_pose(e, rotation, t, scale)
        factor = self.pairwise_scale_factor()
        cam_to_world[:, :3, 3] *= factor
        for view_points in points:
            view_points *= factor
        for view in range(self.num_views):
            pose = cam_to_world[view]
            self._set_depthmap(view, apply_transform(torch.linalg.inv(pose), points[view])[..., 2])
            self._set_view_pose(view, pose)
            if focals[view] is not None and not self.known_views[view]:
                self.im_focals.data[view] = self.config.focal_break * np.log(focals[view])

    def _known_focal(self, view: int) -> float | None:
        return float(self.focals()[view, 0]) if self.known_views[view] else None

    def _spanning_tree(self):
        """Chain the strongest edges; returns world points, focals and cam-to-world per view."""
        import scipy.sparse as sp
        from scipy.sparse.csgraph import minimum_spanning_tree

        n = self.num_views
        edge_index = {edge: e for e, edge in enumerate(self.edges)}
        scores = sp.dok_array((n, n))
        for e, edge in enumerate(self.edges):
            scores[edge] = float(self.conf_i[e].mean() * self.conf_j[e].mean())
        neg_scores = -scores
        tree = minimum_spanning_tree(neg_scores).tocoo()
        todo = sorted(zip(-tree.data, tree.row, tree.col))

        points: list[torch.Tensor | None] = [None] * n
        cam_to_world: list[torch.Tensor | None] = [None] * n
        focals: list[float | None] = [None] * n
        _, i, j = todo.pop()
        edge = edge_index[(i, j)]
        points[i] = self.pred_i[edge].clone()
        points[j] = self.pred_j[edge].clone()
        done = {i, j}
        cam_to_world[i] = torch.eye(4)
        focals[i] = self._known_focal(i) or estimate_focal(self.pred_i[edge])
        while todo:
            score, i, j = todo.pop()
            if focals[i] is None:
                # The official code estimates this focal from the PREVIOUS edge's view-1 points
                # (a stale loop variable); kept so the initial state matches it.
                focals[i] = self._known_focal(i) or estimate_focal(self.pred_i[edge])
            if i in done or j in done:
                edge = edge_index[(i, j)]
                if i in done:
                    scale, rotation, t = similarity_registration(
                        self.pred_i[edge], points[i], self.conf_i[edge]
                    )
                    points[j] = apply_transform(
                        similarity_matrix(scale, rotation, t), self.pred_j[edge]
                    )
                    done.add(j)
                else:
                    scale, rotation, t = similarity_registration(
                        self.pred_j[edge], points[j], self.conf_j[edge]
                    )
                    points[i] = apply_transform(
                        similarity_matrix(scale, rotation, t), self.pred_i[edge]
                    )
                    done.add(i)
                if cam_to_world[i] is None:
                    cam_to_world[i] = similarity_matrix(1, rotation, t)
            else:
                todo.insert(0, (score, i, j))

        ranked = np.array(list(neg_scores.keys()))[np.argsort(list(neg_scores.values()))]
        for i, j in ranked.tolist():
            if focals[i] is None:
                focals[i] = self._known_focal(i) or estimate_focal(self.pred_i[edge_index[(i, j)]])
        pnp_views = []
        for view in range(n):
            if cam_to_world[view] is None:
                found = self._pnp_pose(view, points[view], focals[view])
                if found is not None:
                    focals[view], cam_to_world[view] = found
                    pnp_views.append(view)
            if cam_to_world[view] is None:
                cam_to_world[view] = torch.eye(4)
        # PnP-RANSAC on noisy points picks its consensus set chaotically: float32 rounding
        # that differs between CPUs (e.g. AVX2 vs AVX512 reductions) can flip it, so the
        # poses and depths of these views are only reproducible bit-exactly on one machine.
        self.pnp_views = tuple(pnp_views)
        return points, focals, torch.stack(cam_to_world)

    def _pnp_pose(self, view: int, points: torch.Tensor, focal: float | None):
        """(focal, cam-to-world [4 x 4]) of a view from its world points [H x W x 3], or None.

        Uses the confident pixels; the image centre is the principal point unless it is known.
        """
        mask = self.masks()[view]
        if mask.sum() < 4:
            return None
        points_np, mask_np = points.numpy(), mask.numpy()
        height, width, _ = points_np.shape
        pixels = pixel_centres(height, width)
        size = max(width, height)
        candidates = [focal] if focal is not None else np.geomspace(size / 2, size * 3, 21)
        pp = (width / 2, height / 2)
        if self.known_views[view]:
            pp = tuple(float(v) for v in self.principal_points()[view])
        best = None
        for candidate in candidates:
            found = pnp_ransac(
                points_np[mask_np], pixels[mask_np], candidate, pp, self.config.niter_pnp
            )
            if found is not None and (best is None or found[0] > best[0]):
                best = (found[0], found[1], found[2], candidate)
        if best is None:
            return None
        import cv2

        _, rvec, tvec, best_focal = best
        rotation = torch.from_numpy(cv2.Rodrigues(rvec)[0])
        world_to_cam = similarity_matrix(1, rotation, torch.from_numpy(tvec))
        return best_focal, torch.linalg.inv(world_to_cam)

    # ------------------------------------------------------------------ optimise
    def optimize(
        self, report: Callable[[int, float], None] | None = None, report_every: int = 10
    ) -> float:
        """Adam over the free parameters; returns the loss of the last iteration (before its step).

        report(iteration, loss) is called every `report_every` iterations (may raise to stop).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.config.lr, betas=(0.9, 0.9))
        loss = float("inf")
        for iteration in range(self.config.niter):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(self.config, iteration)
            optimizer.zero_grad()
            value = self()
            value.backward()
            optimizer.step()
            loss = float(value.detach())
            if not math.isfinite(loss):
                raise AlignmentError(
                    f"global alignment diverged (loss {loss}) at iteration {iteration}"
                )
            if report is not None and (
                iteration % report_every == 0 or iteration == self.config.niter - 1
            ):
                report(iteration, loss)
        return loss


def global_alignment(
    predictions: Sequence[PairPrediction],
    config: AlignmentConfig | None = None,
    known_intrinsics: tuple[Sequence[float], Sequence[tuple[float, float]]] | None = None,
    report: Callable[[int, float], None] | None = None,
    report_every: int = 10,
    device: str = "cpu",
    known_views: Sequence[int] | None = None,
) -> tuple[PointCloudOptimizer, float]:
    """MST init (CPU: scipy, OpenCV) + Adam on `device`; the optimizer is returned on the CPU.

    known_intrinsics: (focals [M], principal points [M x 2]) to fix, of views `known_views`
    (default: all N views).
    """
    optimizer = PointCloudOptimizer(predictions, config)
    if known_intrinsics is not None:
        optimizer.preset_intrinsics(*known_intrinsics, views=known_views)
    optimizer.init_minimum_spanning_tree()
    optimizer.to(device)
    loss = optimizer.optimize(report, report_every)
    return optimizer.cpu(), loss


@dataclass
class TwoViewResult:
    """Official `PairViewer` quantities for two views, with the PnP outcome made explicit.

    cam_to_world: [2 x 4 x 4] in the frame of `reference_view` (its pose is the identity).
    focals: [2]; principal_points: [2 x 2]; depthmaps / world_points / masks per view.
    """

    cam_to_world: torch.Tensor
    focals: torch.Tensor
    principal_points: torch.Tensor
    depthmaps: list[torch.Tensor]
    world_points: list[np.ndarray]
    masks: list[torch.Tensor]
    reference_view: int
    pnp_inliers: int


def two_view_alignment(
    predictions: Sequence[PairPrediction], min_conf_thr: float = 3.0, pnp_iterations: int = 100
) -> TwoViewResult:
    """Relative pose of two views from their symmetric pair (i.e. edges (0,1) and (1,0)).

    The frame is that of the view whose edge is more confident; the other view's pose comes
    from PnP-RANSAC on its points as predicted in the reference view's frame. The official
    PairViewer silently substitutes the identity when that PnP fails; here it raises
    AlignmentError instead.
    """
    import cv2

    by_edge = {(p.i, p.j): p for p in predictions}
    if set(by_edge) != {(0, 1), (1, 0)}:
        raise AlignmentError(
            f"two-view alignment needs edges (0,1) and (1,0), got {sorted(by_edge)}"
        )
    shapes = [tuple(by_edge[(v, 1 - v)].pts_i.shape[:2]) for v in (0, 1)]
    im_conf = view_confidence(list(by_edge.values()), 2)
    masks = [c > min_conf_thr for c in im_conf]

    focals, pps, confidences, poses, inliers = [], [], [], [], []
    for view in (0, 1):
        own, other = by_edge[(view, 1 - view)], by_edge[(1 - view, view)]
        confidences.append(float(own.conf_i.mean() * own.conf_j.mean()))
        height, width = shapes[view]
        pp = torch.tensor((width / 2, height / 2))
        focal = estimate_focal(own.pts_i, pp)
        focals.append(focal)
        pps.append(pp)
        # This view's points as predicted in the other view's frame -> this camera's pose there.
        points = other.pts_j.numpy()
        mask = masks[view].numpy()
        found = None
        if mask.sum() >= 4:
            found = pnp_ransac(
                points[mask],
                pixel_centres(height, width)[mask],
                focal,
                (float(pp[0]), float(pp[1])),
                pnp_iterations,
            )
        if found is None:
            poses.append(None)
            inliers.append(0)
            continue
        rotation = cv2.Rodrigues(found[1])[0]
        world_to_cam = np.r_[np.c_[rotation, found[2]], [(0, 0, 0, 1)]]
        poses.append(torch.from_numpy(np.linalg.inv(world_to_cam).astype(np.float32)))
        inliers.append(found[0])

    reference = 0 if confidences[0] > confidences[1] else 1
    other_view = 1 - reference
    relative = poses[other_view]
    if relative is None:
        raise AlignmentError(
            f"two-view pose failed: PnP-RANSAC found no pose for view {other_view} from "
            f"{int(masks[other_view].sum())} confident points (the official PairViewer would "
            "silently return the identity)"
        )
    cam_to_world = [torch.eye(4), torch.eye(4)]
    cam_to_world[other_view] = relative
    ref_edge = by_edge[(reference, other_view)]
    depth = [None, None]
    depth[reference] = ref_edge.pts_i[..., 2]
    depth[other_view] = apply_transform(torch.linalg.inv(relative), ref_edge.pts_j)[..., 2]

    focal_tensor = torch.tensor(focals)
    pp_tensor = torch.stack(pps)
    world_points = []
    for view in (0, 1):
        world_points.append(
            _depth_to_world(
                depth[view].numpy(),
                float(focal_tensor[view]),
                pp_tensor[view].numpy(),
                cam_to_world[view].numpy(),
            )
        )
    return TwoViewResult(
        cam_to_world=torch.stack(cam_to_world),
        focals=focal_tensor,
        principal_points=pp_tensor,
        depthmaps=depth,
        world_points=world_points,
        masks=masks,
        reference_view=reference,
        pnp_inliers=inliers[other_view],
    )


def _depth_to_world(
    depth: np.ndarray, focal: float, pp: np.ndarray, cam_to_world: np.ndarray
) -> np.ndarray:
    """[H x W] depth -> [H x W x 3] float32 world points (pinhole, square pixels)."""
    focal32 = np.float32(focal)
    cx, cy = np.float32(pp[0]), np.float32(pp[1])
    height, width = depth.shape
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    camera = np.stack(((u - cx) * depth / focal32, (v - cy) * depth / focal32, depth), axis=-1)
    camera = camera.astype(np.float32)
    return (
        np.einsum("ik,vuk->vui", cam_to_world[:3, :3], camera) + cam_to_world[:3, 3][None, None, :]
    )
