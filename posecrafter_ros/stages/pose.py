"""Bridge slot "pose_model": the relative pose of the last view in the first from N views.

Two adapters: `ClassicalMultiViewPose` (CPU, below) and `Dust3rPoseModel` (DUSt3R pairwise
inference + global alignment, sharing `relay_pose.Dust3rStage` with the relay poser).

The classical model, pairwise geometry -> incremental registration -> bundle adjustment. For views {I0, selected frames, IT} with known intrinsics:
1. every pair is matched and solved with the direct path's two-view estimator; pairs with
   enough support become edges of a view graph (I0 and IT must be connected through it);
2. tracks are the connected components of the inlier matches;
3. the best-supported edge initialises the reconstruction, the other views are registered one
   by one with PnP + RANSAC on the triangulated tracks, new tracks are triangulated;
4. a bundle adjustment (scipy, Huber loss) refines all poses and points;
5. the pose of IT in I0 is read off, its translation normalised (scale is unknown).
The covariance is propagated to first order along the best-supported path of the view graph
from the pairwise covariances (rotation perturbations rotated into I0's frame and summed).
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Sequence

import cv2
import numpy as np

from ..core.covariance import so3_exp
from ..core.gate import GateConf
from ..core.matching import get_matcher
from ..core.twoview import TwoViewEstimate, estimate_from_matches, resolve_conf
from ..core.types import EstimationError, Keyframe, RelativePose, RunContext, Status
from .relay_pose import Dust3rStage, Dust3rStageConfig

DEFAULT_MULTIVIEW_CONF: dict[str, Any] = {
    "direct": {},  # two-view conf (matcher, geometry, covariance, gate) used for every pair
    "min_edge_inliers": 25,  # a view pair needs this many inliers to be an edge
    "max_edge_p_wrong": 0.3,  # ... and at most this probability of being a wrong solution
    "pnp_threshold_px": 4.0,  # PnP RANSAC reprojection threshold
    "min_pnp_inliers": 12,  # a view registers with at least this many 2D-3D inliers
    "ba_loss_scale_px": 2.0,  # Huber scale of the bundle adjustment
    "ba_max_evaluations": 100,  # least-squares function evaluations
}


class ClassicalMultiViewPose:
    """MultiViewPoseModel: relative pose of the last view in the first view's frame."""

    def __init__(self, conf: dict[str, Any] | None = None):
        conf = dict(conf or {})
        conf.pop("type", None)
        unknown = sorted(set(conf) - set(DEFAULT_MULTIVIEW_CONF))
        if unknown:
            raise ValueError(
                f"unknown multi-view conf keys {unknown}; valid: {sorted(DEFAULT_MULTIVIEW_CONF)}"
            )
        self.conf = {**DEFAULT_MULTIVIEW_CONF, **conf}
        self.direct = resolve_conf(self.conf["direct"])
        self.gate = GateConf.from_dict(self.direct["gate"])
        self.matcher = get_matcher(self.direct["matcher"])

    @classmethod
    def from_config(cls, conf: dict[str, Any]) -> "ClassicalMultiViewPose":
        return cls(conf)

    # -- view graph ---------------------------------------------------------------------------

    def _edges(
        self, views, feats, ctx
    ) -> dict[tuple[int, int], tuple[TwoViewEstimate, np.ndarray]]:
        """{(i, j): (two-view estimate, [K x 2] inlier keypoint index pairs)} for i < j."""
        edges = {}
        n = len(views)
        pairs_total = n * (n - 1) // 2
        done = 0
        for i in range(n):
            for j in range(i + 1, n):
                idx = self.matcher.match(feats[i], feats[j])
                est = estimate_from_matches(
                    feats[i].keypoints[idx[:, 0]],
                    feats[j].keypoints[idx[:, 1]],
                    views[i].K,
                    views[j].K,
                    self.direct,
                    self.gate,
                )
                done += 1
                if ctx is not None:
                    ctx.report(0.5 * done / pairs_total)
                if (
                    est.pose is not None
                    and est.num_inliers >= int(self.conf["min_edge_inliers"])
                    and est.info.get("p_wrong", 1.0) <= float(self.conf["max_edge_p_wrong"])
                    and est.degeneracy
                    not in ("too_few_matches", "too_few_inliers", "pure_rotation")
                ):
                    edges[(i, j)] = (est, idx[est.inliers])
        return edges

    @staticmethod
    def _best_path(n: int, edges: dict, start: int, goal: int) -> list[int] | None:
        """Path start -> goal maximising support (edge cost 1 / inliers), None if disconnected."""
        graph: dict[int, list[tuple[int, float]]] = {i: [] for i in range(n)}
        for (i, j), (est, _) in edges.items():
            graph[i].append((j, 1.0 / est.num_inliers))
            graph[j].append((i, 1.0 / est.num_inliers))
        best = {start: 0.0}
        previous: dict[int, int] = {}
        queue = [(0.0, start)]
        while queue:
            cost, node = heapq.heappop(queue)
            if node == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return path[::-1]
            if cost > best.get(node, math.inf):
                continue
            for nxt, w in graph[node]:
                if cost + w < best.get(nxt, math.inf):
                    best[nxt] = cost + w
                    previous[nxt] = node
                    heapq.heappush(queue, (cost + w, nxt))
        return None

    # -- estimation ---------------------------------------------------------------------------

    def estimate(self, views: Sequence[Keyframe], ctx: RunContext) -> RelativePose:
        n = len(views)
        if n < 2:
            raise EstimationError(
                Status.INVALID_REQUEST, f"multi-view pose needs >= 2 views, got {n}"
            )
        feats = [self.matcher.extract(v.image) for v in views]
        edges = self._edges(views, feats, ctx)
        path = self._best_path(n, edges, 0, n - 1)
        if path is None:
            raise EstimationError(
                Status.INSUFFICIENT_OVERLAP,
                f"the {n} views do not connect the first to the last: only {len(edges)} of "
                f"{n * (n - 1) // 2} view pairs share enough matches "
                f"(>= {self.conf['min_edge_inliers']} inliers); edges: {sorted(edges)}",
            )
        poses = self._reconstruct(views, feats, edges, path)
        if ctx is not None:
            ctx.report(1.0)
        (R0, t0), (R1, t1) = poses[0], poses[n - 1]
        R = R0 @ R1.T
        t = t0 - R @ t1
        norm = float(np.linalg.norm(t))
        if norm < 1e-9:
            raise EstimationError(
                Status.INSUFFICIENT_OVERLAP, "first and last camera centres coincide"
            )
        return RelativePose(
            R, t / norm, self._chain_covariance(edges, path, t / norm), scale_known=False
        )

    def _reconstruct(self, views, feats, edges, path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """World-to-camera poses {view: (R, t)} of the registered views (first and last included).

        Falls back to chaining the pairwise poses along `path` if registration cannot reach both
        ends (e.g. a path of pairs that share no tracks), which fixes rotations but not scale.
        """
        tracks = build_tracks(len(views), edges)
        (i0, j0), (est0, _) = max(edges.items(), key=lambda item: item[1][0].num_inliers)
        poses = {i0: (np.eye(3), np.zeros(3))}
        R_b_in_a, t_b_in_a = est0.pose.R, est0.pose.t
        poses[j0] = (R_b_in_a.T, -R_b_in_a.T @ t_b_in_a)  # world = camera i0
        points: dict[int, np.ndarray] = {}
        self._triangulate(views, feats, tracks, poses, points)
        while True:
            best = None
            for v in range(len(views)):
                if v in poses:
                    continue
                obs = [(tid, kp) for tid, kp in tracks_in_view(tracks, v) if tid in points]
                if best is None or len(obs) > len(best[1]):
                    best = (v, obs)
            if best is None or len(best[1]) < int(self.conf["min_pnp_inliers"]):
                break
            v, obs = best
            pose = self._pnp(views[v], feats[v], obs, points)
            if pose is None:
                break
            poses[v] = pose
            self._triangulate(views, feats, tracks, poses, points)
        last = len(views) - 1
        if 0 not in poses or last not in poses:
            raise EstimationError(
                Status.INSUFFICIENT_OVERLAP,
                f"views 0 and {last} are linked pairwise (path {path}) but too few points are "
                f"seen in three or more views to fix the scale between the pairs "
                f"(registered views: {sorted(poses)})",
            )
        return bundle_adjust(views, feats, tracks, poses, points, self.conf, reference=i0)

    def _pnp(self, view, feats, obs, points):
        object_points = np.array([points[tid] for tid, _ in obs], np.float64)
        image_points = np.array([feats.keypoints[kp] for _, kp in obs], np.float64)
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(
            object_points,
            image_points,
            view.K,
            None,
            reprojectionError=float(self.conf["pnp_threshold_px"]),
            iterationsCount=1000,
            flags=cv2.SOLVEPNP_SQPNP,
        )
        if not ok or inliers is None or len(inliers) < int(self.conf["min_pnp_inliers"]):
            return None
        return cv2.Rodrigues(rvec)[0], tvec.ravel()

    @staticmethod
    def _triangulate(views, feats, tracks, poses, points) -> None:
        """Triangulate every track seen by >= 2 registered views that has no point yet."""
        for tid, track in enumerate(tracks):
            if tid in points:
                continue
            registered = [(v, kp) for v, kp in track.items() if v in poses]
            if len(registered) < 2:
                continue
            (va, ka), (vb, kb) = registered[0], registered[1]
            Pa = views[va].K @ np.hstack([poses[va][0], poses[va][1][:, None]])
            Pb = views[vb].K @ np.hstack([poses[vb][0], poses[vb][1][:, None]])
            X = cv2.triangulatePoints(
                Pa, Pb, feats[va].keypoints[ka][:, None], feats[vb].keypoints[kb][:, None]
            )
            if abs(X[3, 0]) < 1e-12:
                continue
            X = X[:3, 0] / X[3, 0]
            depth_a = (poses[va][0] @ X + poses[va][1])[2]
            depth_b = (poses[vb][0] @ X + poses[vb][1])[2]
            if depth_a > 0 and depth_b > 0:
                points[tid] = X

    def _chain_covariance(self, edges, path, t_unit) -> np.ndarray:
        """First-order covariance of the chained relative pose along `path` (see module doc)."""
        cov = np.zeros((6, 6))
        R_acc = np.eye(3)
        for a, b in zip(path[:-1], path[1:]):
            est, _ = edges[(min(a, b), max(a, b))]
            R_edge = est.pose.R if a < b else est.pose.R.T
            edge_cov = est.pose.covariance.copy()
            edge_cov[:3, :3] -= self.direct["covariance"]["scale_variance"] * np.outer(
                est.pose.t, est.pose.t
            )
            rotate = np.kron(np.eye(2), R_acc)
            cov += rotate @ edge_cov @ rotate.T
            R_acc = R_acc @ R_edge
        cov[:3, :3] += float(self.direct["covariance"]["scale_variance"]) * np.outer(t_unit, t_unit)
        return 0.5 * (cov + cov.T)


def build_tracks(num_views: int, edges) -> list[dict[int, int]]:
    """Tracks {view: keypoint index} from the edges' inlier matches (union-find); tracks that
    claim two keypoints in one view are dropped."""
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (i, j), (_, idx) in edges.items():
        for ka, kb in idx:
            ra, rb = find((i, int(ka))), find((j, int(kb)))
            if ra != rb:
                parent[ra] = rb
    groups: dict[tuple[int, int], dict[int, int]] = {}
    conflicted = set()
    for node in list(parent):
        root = find(node)
        track = groups.setdefault(root, {})
        if node[0] in track and track[node[0]] != node[1]:
            conflicted.add(root)
        track[node[0]] = node[1]
    return [t for r, t in groups.items() if r not in conflicted and len(t) >= 2]


def tracks_in_view(tracks: list[dict[int, int]], view: int) -> list[tuple[int, int]]:
    return [(tid, t[view]) for tid, t in enumerate(tracks) if view in t]


def bundle_adjust(views, feats, tracks, poses, points, conf, reference: int):
    """Refine registered poses (all but `reference`) and points; returns the refined poses."""
    from scipy.optimize import least_squares
    from scipy.sparse import lil_matrix

    cams = [v for v in sorted(poses) if v != reference]
    cam_index = {v: k for k, v in enumerate(cams)}
    point_ids = sorted(points)
    point_index = {tid: k for k, tid in enumerate(point_ids)}
    observations = [
        (v, tid, feats[v].keypoints[kp])
        for tid in point_ids
        for v, kp in tracks[tid].items()
        if v in poses
    ]
    if not observations or not cams:
        return poses
    obs_view = np.array([o[0] for o in observations])
    obs_point = np.array([point_index[o[1]] for o in observations])
    obs_xy = np.array([o[2] for o in observations])
    x0 = np.concatenate(
        [np.concatenate([cv2.Rodrigues(poses[v][0])[0].ravel(), poses[v][1]]) for v in cams]
        + [np.asarray([points[tid] for tid in point_ids]).ravel()]
    )
    n_cam = len(cams)

    def unpack(x):
        cam_params = x[: 6 * n_cam].reshape(n_cam, 6)
        pts = x[6 * n_cam :].reshape(-1, 3)
        Rs = {reference: poses[reference][0]}
        ts = {reference: poses[reference][1]}
        for v, k in cam_index.items():
            Rs[v] = so3_exp(cam_params[k, :3])
            ts[v] = cam_params[k, 3:]
        return Rs, ts, pts

    def residuals(x):
        Rs, ts, pts = unpack(x)
        out = np.empty((len(observations), 2))
        for v in set(obs_view.tolist()):
            sel = obs_view == v
            cam = pts[obs_point[sel]] @ Rs[v].T + ts[v]
            proj = cam @ views[v].K.T
            out[sel] = proj[:, :2] / np.maximum(proj[:, 2:3], 1e-9) - obs_xy[sel]
        return out.ravel()

    sparsity = lil_matrix((2 * len(observations), len(x0)), dtype=int)
    for k, (v, p) in enumerate(zip(obs_view, obs_point)):
        if v in cam_index:
            sparsity[2 * k : 2 * k + 2, 6 * cam_index[v] : 6 * cam_index[v] + 6] = 1
        sparsity[2 * k : 2 * k + 2, 6 * n_cam + 3 * p : 6 * n_cam + 3 * p + 3] = 1
    result = least_squares(
        residuals,
        x0,
        jac_sparsity=sparsity,
        loss="huber",
        f_scale=float(conf["ba_loss_scale_px"]),
        max_nfev=int(conf["ba_max_evaluations"]),
        x_scale="jac",
        method="trf",
    )
    Rs, ts, _ = unpack(result.x)
    return {v: (Rs[v], ts[v]) for v in poses}


class Dust3rPoseModel(Dust3rStage):
    """MultiViewPoseModel: pose of the last view in the first view's frame, scale unknown."""

    def estimate(self, views: Sequence[Keyframe], ctx: RunContext | None = None) -> RelativePose:
        ctx = ctx or RunContext()
        prepared, predictions = self._predict(views, ctx)
        middle = list(range(1, len(views) - 1))
        left_out: list[int] = []
        if middle and self.config.leave_one_out > 0:
            step = max(1, len(middle) // self.config.leave_one_out)
            left_out = middle[::step][: self.config.leave_one_out]
        runs = 1 + len(left_out)
        with ctx.subspan(0.0, 1 / runs):
            aligned = self.align_views(views, ctx, cached=(prepared, predictions))
        rotation, t = RelativePose.from_cam_to_world(
            aligned.cam_to_world[0], aligned.cam_to_world[-1]
        )
        # The spread of the pose when one middle view is left out measures how much it hinges
        # on any single view (the pairwise predictions are reused; only alignment reruns).
        samples = []
        for run, view in enumerate(left_out, start=1):
            subset = [v for v in range(len(views)) if v != view]
            try:
                with ctx.subspan(run / runs, (run + 1) / runs):
                    sub = self.align_views(views, ctx, subset, cached=(prepared, predictions))
            except EstimationError:
                continue
            samples.append(
                RelativePose.from_cam_to_world(sub.cam_to_world[0], sub.cam_to_world[-1])
            )
        return pose_with_covariance(rotation, t, samples, self.config)


def _rotation_vector(rotation: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(rotation, dtype=np.float64))[0].ravel()


def pose_with_covariance(
    rotation: np.ndarray,
    t: np.ndarray,
    samples: list[tuple[np.ndarray, np.ndarray]],
    config: Dust3rStageConfig,
) -> RelativePose:
    """Unit-translation RelativePose with a 6x6 covariance (x, y, z, rot x, rot y, rot z).

    Rotation block: prior sigma^2 I plus the spread of the leave-one-out rotations, as
    small-angle perturbations R_k R^T. Translation block: direction spread (lateral, unit
    vector) plus `baseline_variance` along t, since DUSt3R's scale is arbitrary.
    """
    norm = float(np.linalg.norm(t))
    if not np.isfinite(norm):
        raise EstimationError(
            Status.INSUFFICIENT_OVERLAP, "DUSt3R returned a non-finite translation"
        )
    direction = t / norm if norm > 1e-12 else np.zeros(3)
    rot_sigma = np.deg2rad(config.rotation_sigma_deg)
    dir_sigma = np.deg2rad(config.direction_sigma_deg)
    rot_cov = np.eye(3) * rot_sigma**2
    dir_cov = (np.eye(3) - np.outer(direction, direction)) * dir_sigma**2
    if samples:
        rot_dev = np.array([_rotation_vector(r @ rotation.T) for r, _ in samples])
        dir_dev = np.array([(tk / max(np.linalg.norm(tk), 1e-12)) - direction for _, tk in samples])
        rot_cov += rot_dev.T @ rot_dev / len(samples)
        dir_cov += dir_dev.T @ dir_dev / len(samples)
    if norm <= 1e-12:
        # Pure rotation: no direction at all, every translation axis is unknown.
        dir_cov = np.eye(3) * config.baseline_variance
    else:
        dir_cov += np.outer(direction, direction) * config.baseline_variance
    covariance = np.zeros((6, 6))
    covariance[:3, :3] = dir_cov
    covariance[3:, 3:] = rot_cov
    return RelativePose(
        R=np.asarray(rotation, dtype=np.float64),
        t=direction.astype(np.float64),
        covariance=covariance,
        scale_known=False,
    )
