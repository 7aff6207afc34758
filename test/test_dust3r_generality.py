"""The DUSt3R model, checker and alignment on configurations the public fixtures do not have
(odd token grids, portrait views, other depth/confidence modes, 4 alignment views, l2 loss with
sqrt weights and trainable adaptors).

Nothing here compares our code with numbers our code wrote: the model is checked against
properties its configuration implies, the alignment against the exact synthetic scene it must
recover, and the parity checker must catch a difference in a fixture of another configuration.
Numerical agreement with the official code is the job of the golden fixtures
(test_dust3r_model.py, test_dust3r_alignment.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from posecrafter_ros.models.dust3r import parity
from posecrafter_ros.models.dust3r.alignment import AlignmentConfig, PointCloudOptimizer
from posecrafter_ros.models.dust3r.config import Dust3rConfig
from posecrafter_ros.models.dust3r.inference import (
    PairPrediction,
    complete_symmetric_pairs,
    infer_pairs,
)
from posecrafter_ros.models.dust3r.model import Dust3rModel

CTOR = {
    "pos_embed": "RoPE100",
    "patch_embed_cls": "PatchEmbedDust3R",
    "landscape_only": False,
    "img_size": [112, 112],
    "head_type": "dpt",
    "output_mode": "pts3d",
    "depth_mode": ["square", "-inf", "inf"],
    "conf_mode": ["sigmoid", 1, 20],
    "patch_size": 16,
    "mlp_ratio": 4,
    "norm_im2_in_dec": True,
    "enc_embed_dim": 24,
    "enc_depth": 1,
    "enc_num_heads": 2,
    "dec_embed_dim": 16,
    "dec_depth": 5,
    "dec_num_heads": 1,
}
DPT = {"feature_dim": 8, "last_dim": 4, "layer_dims": [4, 4, 8, 8]}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """These tiny networks run fastest on one thread, and the CI machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# 48x80 -> a 3x5 token grid (odd: the DPT's coarsest map is cropped back), portrait view.
SHAPES = [(48, 80), (32, 48), (80, 48)]


def _seeded_model_and_views():
    """(model, config, views) of the non-default configuration, seeded: the same every call."""
    config = Dust3rConfig.from_ctor_kwargs(CTOR, DPT)
    torch.manual_seed(7)
    model = Dust3rModel(config).eval()
    views = [torch.rand(1, 3, h, w) * 2 - 1 for h, w in SHAPES]
    return model, config, views


def _write_model_fixture(folder: Path) -> None:
    folder.mkdir()
    model, config, views = _seeded_model_and_views()
    pairs = complete_symmetric_pairs(len(views))
    preds = infer_pairs(model, views, pairs)
    inputs = {f"view{k}_img": v for k, v in enumerate(views)}
    outputs = {}
    for p, pred in enumerate(preds):
        outputs[f"pair{p}_pred1_pts3d"] = pred.pts_i
        outputs[f"pair{p}_pred1_conf"] = pred.conf_i
        outputs[f"pair{p}_pred2_pts3d_in_other_view"] = pred.pts_j
        outputs[f"pair{p}_pred2_conf"] = pred.conf_j
    save_file(inputs, str(folder / "inputs.safetensors"))
    save_file(outputs, str(folder / "outputs.safetensors"))
    save_file(
        {k: v.clone() for k, v in model.state_dict().items()},
        str(folder / "state_dict.safetensors"),
    )
    (folder / "config.json").write_text(
        json.dumps(
            {
                "load_model_instantiates": "AsymmetricCroCo3DStereo(head_type='dpt', ...)",
                "ctor_kwargs": CTOR,
                "tiny_dpt_deviation": DPT,
            }
        )
    )
    (folder / "meta.json").write_text(json.dumps({"pairs": pairs}))


def _synthetic_predictions(num_views: int, height: int, width: int) -> list[PairPrediction]:
    """Exactly consistent point maps of a slanted plane seen by cameras on an arc."""
    focal = 0.9 * max(height, width)
    v, u = np.mgrid[:height, :width].astype(np.float64)
    depth = 3.0 + 0.01 * u + 0.005 * v
    cam_points = np.stack(
        ((u - width / 2) * depth / focal, (v - height / 2) * depth / focal, depth), -1
    )
    poses = []
    for k in range(num_views):
        angle = 0.08 * k
        rotation = np.array(
            [
                [math.cos(angle), 0, math.sin(angle)],
                [0, 1, 0],
                [-math.sin(angle), 0, math.cos(angle)],
            ]
        )
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = rotation, (0.3 * k, 0.02 * k, 0.0)
        poses.append(pose)
    conf = torch.from_numpy(4.0 + (u / width)).float()
    preds = []
    for i, j in complete_symmetric_pairs(num_views):
        to_i = np.linalg.inv(poses[i]) @ poses[j]
        pts_j = cam_points @ to_i[:3, :3].T + to_i[:3, 3]
        preds.append(
            PairPrediction(
                i,
                j,
                torch.from_numpy(cam_points).float(),
                conf,
                torch.from_numpy(pts_j).float(),
                conf,
            )
        )
    return preds


def test_model_outputs_follow_another_config():
    """Odd 3x5 token grid, portrait and landscape views, depth mode "square", confidence mode
    sigmoid in [1, 20]: full-resolution maps, confidences inside the configured range, and
    point norms that are squares of the head's distance code (|pts| = d^2)."""
    from posecrafter_ros.models.dust3r.heads import postprocess

    model, config, views = _seeded_model_and_views()
    pairs = complete_symmetric_pairs(len(views))
    for pred in infer_pairs(model, views, pairs):
        for pts, conf, (h, w) in (
            (pred.pts_i, pred.conf_i, SHAPES[pred.i]),
            (pred.pts_j, pred.conf_j, SHAPES[pred.j]),
        ):
            assert tuple(pts.shape) == (h, w, 3) and tuple(conf.shape) == (h, w)
            assert torch.isfinite(pts).all()
            assert conf.min() >= 1.0 and conf.max() <= 20.0
    raw = torch.tensor([[[[3.0]], [[4.0]], [[0.0]], [[0.0]]]])  # [B x 4 x H x W], |xyz| = 5
    out = postprocess(raw, config)
    np.testing.assert_allclose(out["pts3d"].reshape(3).numpy(), [15.0, 20.0, 0.0], rtol=1e-6)
    assert float(out["conf"].reshape(())) == pytest.approx(1.0 + 19.0 * 0.5)


def test_checker_catches_a_difference_in_another_config(tmp_path):
    """The checker runs on a fixture of another configuration and fails when one output is off
    by 1e-3 (a fixture our code wrote only exercises the checker, it proves nothing else)."""
    from safetensors.torch import load_file

    folder = tmp_path / "another_model"
    _write_model_fixture(folder)
    assert parity.claims(folder)
    outputs = load_file(str(folder / "outputs.safetensors"))
    outputs["pair1_pred1_pts3d"] = outputs["pair1_pred1_pts3d"] + 1e-3
    save_file(outputs, str(folder / "outputs.safetensors"))
    failed = [r.name for r in parity.check_fixture(folder) if not r.passed]
    assert failed == ["another_model/pred1_pts3d"], failed


def _relative_motion(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rotation angle [V-1], unit translation [V-1 x 3]) of every camera relative to camera 0."""
    angles, directions = [], []
    for pose in c2w[1:]:
        relative = np.linalg.inv(c2w[0]) @ pose
        angles.append(math.acos(np.clip((np.trace(relative[:3, :3]) - 1) / 2, -1, 1)))
        directions.append(relative[:3, 3] / np.linalg.norm(relative[:3, 3]))
    return np.array(angles), np.array(directions)


def test_alignment_of_another_config_recovers_the_exact_scene():
    """Exactly consistent point maps of a known scene (4 cameras 0.08 rad apart about y, moving
    along (0.3, 0.02, 0)): the minimum-spanning-tree initialisation is already the scene (zero
    loss and gradient), and optimising with l2 / sqrt weights / pairwise adaptors keeps it."""
    preds = _synthetic_predictions(4, 32, 48)
    config = AlignmentConfig(
        niter=12,
        lr=0.02,
        schedule="cosine",
        min_conf_thr=4.5,
        dist="l2",
        conf="sqrt",
        allow_pw_adaptors=True,
    )
    optimizer = PointCloudOptimizer(preds, config)
    optimizer.init_minimum_spanning_tree()
    true_angles = 0.08 * np.arange(1, 4)
    true_direction = np.array([0.3, 0.02, 0.0]) / np.linalg.norm([0.3, 0.02, 0.0])
    angles, directions = _relative_motion(optimizer.cam_to_world().detach().double().numpy())
    np.testing.assert_allclose(angles, true_angles, atol=1e-4)
    np.testing.assert_allclose(directions, np.tile(true_direction, (3, 1)), atol=1e-3)
    np.testing.assert_allclose(optimizer.focals().detach().numpy().ravel(), 0.9 * 48, rtol=1e-3)
    loss = optimizer()
    loss.backward()
    assert float(loss.detach()) < 1e-6
    assert float(optimizer.im_poses.grad.abs().max()) < 1e-3
    optimizer.optimize()
    angles, directions = _relative_motion(optimizer.cam_to_world().detach().double().numpy())
    np.testing.assert_allclose(angles, true_angles, atol=0.01)
    np.testing.assert_allclose(directions, np.tile(true_direction, (3, 1)), atol=0.05)


def test_synthetic_scene_is_recovered_by_alignment():
    preds = _synthetic_predictions(4, 32, 48)
    optimizer = PointCloudOptimizer(preds, AlignmentConfig(niter=40))
    optimizer.init_minimum_spanning_tree()
    optimizer.optimize()
    c2w = optimizer.cam_to_world().detach().double().numpy()
    # The scene's true relative rotation between the first and last camera is 0.24 rad about y.
    relative = np.linalg.inv(c2w[0]) @ c2w[-1]
    angle = math.acos(np.clip((np.trace(relative[:3, :3]) - 1) / 2, -1, 1))
    assert abs(angle - 0.24) < 0.01
    np.testing.assert_allclose(optimizer.focals().detach().numpy().ravel(), 0.9 * 48, rtol=0.02)
