"""Small geometry kernels shared by DUSt3R global alignment and the two-view path.

Written to reproduce the official float32 numbers: rigid transforms are applied as
`[p, 1] @ T^T` with four output columns, the Umeyama registration follows roma's
weighted formulation, and quaternions are XYZW (roma / scipy layout).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def apply_transform(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """transform: [... x 4 x 4], points: [... x N x 3] (or [H x W x 3] with a 4x4) -> same shape."""
    transposed = transform.transpose(-1, -2)
    out = points @ transposed[..., :-1, :] + transposed[..., -1:, :]
    return out[..., :3]


def signed_log1p(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def signed_expm1(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(torch.abs(x))


def quaternion_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """quat: [... x 4] unit XYZW -> [... x 3 x 3]."""
    x, y, z, w = quat.unbind(-1)
    x2, y2, z2, w2 = x * x, y * y, z * z, w * w
    xy, zw, xz, yw, yz, xw = x * y, z * w, x * z, y * w, y * z, x * w
    return torch.stack(
        (
            x2 - y2 - z2 + w2,
            2 * (xy - zw),
            2 * (xz + yw),
            2 * (xy + zw),
            -x2 + y2 - z2 + w2,
            2 * (yz - xw),
            2 * (xz - yw),
            2 * (yz + xw),
            -x2 - y2 + z2 + w2,
        ),
        dim=-1,
    ).reshape(quat.shape[:-1] + (3, 3))


def matrix_to_quaternion(rotation: torch.Tensor) -> torch.Tensor:
    """rotation: [3 x 3] -> unit XYZW quaternion [4].

    Markley's method: each of the four vectors 4 q_i q is a linear function of the entries of
    A = R^T; the one with the largest diagonal term (largest |q_i|) is normalised.
    """
    (a11, a12, a13), (a21, a22, a23), (a31, a32, a33) = rotation.T
    candidates = torch.stack(
        [
            torch.stack([1 + a11 - a22 - a33, a12 + a21, a13 + a31, a23 - a32]),
            torch.stack([a21 + a12, 1 + a22 - a33 - a11, a23 + a32, a31 - a13]),
            torch.stack([a31 + a13, a32 + a23, 1 + a33 - a11 - a22, a12 - a21]),
            torch.stack([a23 - a32, a31 - a13, a12 - a21, 1 + a11 + a22 + a33]),
        ]
    )
    best = candidates[int(candidates.diagonal().argmax())]
    return best / torch.norm(best)


def similarity_registration(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted Umeyama: (s, R, t) minimising sum w |s R x + t - y|^2.

    source, target: [... x 3] corresponding points; weights: same leading shape.
    Returns scale [], R [3 x 3], t [3]. The rotation (the nearest rotation to the weighted
    cross-covariance) is solved in float64, so it is exact to float32 rounding.
    """
    x = source.reshape(-1, 3)
    y = target.reshape(-1, 3)
    w = weights.reshape(-1)
    w = w / torch.sum(w, dim=-1, keepdim=True)
    x_mean = torch.einsum("k,ki->i", w, x)
    y_mean = torch.einsum("k,ki->i", w, y)
    x_hat, y_hat = x - x_mean[None, :], y - y_mean[None, :]
    cross = torch.einsum("k,ki,kj->ij", w, y_hat, x_hat)
    rotation = nearest_rotation(cross.double()).to(cross.dtype)
    # Optimal scale: tr(R^T M) / weighted variance of x (Umeyama 1991).
    scale = torch.sum(rotation * cross, dim=(-2, -1)) / torch.einsum("k,ki,ki->", w, x_hat, x_hat)
    t = y_mean - scale * torch.einsum("ij,j->i", rotation, x_mean)
    return scale, rotation, t


def nearest_rotation(matrix: torch.Tensor) -> torch.Tensor:
    """[3 x 3] -> the rotation R maximising tr(R^T matrix) (SVD with det correction)."""
    u, _, vt = torch.linalg.svd(matrix)
    correction = torch.ones(3, dtype=matrix.dtype, device=matrix.device)
    correction[-1] = torch.sign(torch.det(u @ vt))
    return (u * correction) @ vt


def similarity_matrix(scale, rotation: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """[4 x 4] float32 with s*R in the top-left block and t (unscaled) in the last column."""
    out = torch.eye(4)
    out[:3, :3] = rotation * scale
    out[:3, 3] = t.ravel()
    return out


def pixel_centres(height: int, width: int) -> np.ndarray:
    """[H x W x 2] float32 (x, y) integer pixel coordinates."""
    return np.mgrid[:width, :height].T.astype(np.float32)


def estimate_focal(points: torch.Tensor, pp: torch.Tensor | None = None) -> float:
    """Focal of a pinhole camera that sees `points` [H x W x 3] (its own frame) at their pixels.

    Robust (Weiszfeld, 10 reweighting rounds) fit of |pixel - pp - f * (x, y) / z|.
    """
    height, width, _ = points.shape
    if pp is None:
        pp = torch.tensor((width / 2, height / 2))
    xs = torch.arange(width, device=points.device)
    ys = torch.arange(height, device=points.device)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)
    pixels = grid.view(1, -1, 2) - pp.view(-1, 1, 2)
    flat = points[None].flatten(1, 2)
    xy_over_z = (flat[..., :2] / flat[..., 2:3]).nan_to_num(posinf=0, neginf=0)
    dot_xy_px = (xy_over_z * pixels).sum(dim=-1)
    dot_xy_xy = xy_over_z.square().sum(dim=-1)
    focal = dot_xy_px.mean(dim=1) / dot_xy_xy.mean(dim=1)
    for _ in range(10):
        residual = (pixels - focal.view(-1, 1, 1) * xy_over_z).norm(dim=-1)
        weight = residual.clip(min=1e-8).reciprocal()
        focal = (weight * dot_xy_px).mean(dim=1) / (weight * dot_xy_xy).mean(dim=1)
    return float(focal.clip(min=0.0))


def pnp_ransac(
    points: np.ndarray, pixels: np.ndarray, focal: float, pp: tuple[float, float], iterations: int
) -> tuple[int, np.ndarray, np.ndarray] | None:
    """SQPnP inside RANSAC (5 px): (inlier count, Rodrigues vector, t) world->camera, or None."""
    K = np.float32([(focal, 0, pp[0]), (0, focal, pp[1]), (0, 0, 1)])
    try:
        success, rvec, tvec, inliers = cv2.solvePnPRansac(
            points,
            pixels,
            K,
            None,
            iterationsCount=iterations,
            reprojectionError=5,
            flags=cv2.SOLVEPNP_SQPNP,
        )
    except cv2.error:
        return None
    if not success or inliers is None:
        return None
    return len(inliers), rvec, tvec
