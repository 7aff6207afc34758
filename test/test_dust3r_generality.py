"""The DUSt3R checker and stages on configurations the public fixtures do not have.

Fixture folders are written in the official layout with another tiny config (odd token
grids, 4 alignment views, other depth/confidence modes and sizes, l2 loss with sqrt weights
and trainable adaptors), so nothing may depend on the public fixtures' numbers.
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


def _write_model_fixture(folder: Path) -> None:
    folder.mkdir()
    config = Dust3rConfig.from_ctor_kwargs(CTOR, DPT)
    torch.manual_seed(7)
    model = Dust3rModel(config).eval()
    # 48x80 -> a 3x5 token grid (odd: the DPT's coarsest map is cropped back), portrait view.
    shapes = [(48, 80), (32, 48), (80, 48)]
    views = [torch.rand(1, 3, h, w) * 2 - 1 for h, w in shapes]
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


def _write_alignment_fixture(folder: Path) -> None:
    folder.mkdir()
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
    init = {
        f"param.{k}": getattr(optimizer, k).detach().clone()
        for k in ("im_depthmaps", "im_poses", "im_focals", "pw_poses")
    }
    init["im_poses_c2w"] = optimizer.cam_to_world().detach()
    loss = optimizer()
    loss.backward()
    init_loss = float(loss.detach())
    for k in ("im_depthmaps", "im_poses", "im_focals", "pw_poses"):
        init[f"grad_at_init.{k}"] = getattr(optimizer, k).grad.clone()
    curve: list[float] = []
    returned = optimizer.optimize(lambda _, value: curve.append(value), report_every=1)
    final = {
        "im_poses_c2w": optimizer.cam_to_world().detach(),
        "losses": torch.tensor(curve, dtype=torch.float64),
    }
    inputs = {}
    for p, pred in enumerate(preds):
        inputs[f"pair{p}_pred1_pts3d"], inputs[f"pair{p}_pred1_conf"] = pred.pts_i, pred.conf_i
        inputs[f"pair{p}_pred2_pts3d_in_other_view"] = pred.pts_j
        inputs[f"pair{p}_pred2_conf"] = pred.conf_j
    save_file({k: v.clone() for k, v in inputs.items()}, str(folder / "plane_inputs.safetensors"))
    save_file(init, str(folder / "plane_pco_init.safetensors"))
    save_file(final, str(folder / "plane_pco_final.safetensors"))
    (folder / "meta.json").write_text(
        json.dumps(
            {
                "pco_calls": [
                    "scene = global_aligner(out, device='cpu', "
                    "mode=GlobalAlignerMode.PointCloudOptimizer, allow_pw_adaptors=True)",
                    "loss = scene.compute_global_alignment(init='mst', niter=12, "
                    "schedule='cosine', lr=0.02)",
                ],
                "pco_defaults": {"min_conf_thr": 4.5, "dist": "l2", "conf": "sqrt"},
                "pairs": [[p.i, p.j] for p in preds],
                "variants": {"plane": {"init_loss": init_loss, "returned_loss": returned}},
            }
        )
    )


def test_checker_handles_other_configs_views_and_settings(tmp_path):
    _write_model_fixture(tmp_path / "another_model")
    _write_alignment_fixture(tmp_path / "another_alignment")
    for folder in (tmp_path / "another_model", tmp_path / "another_alignment"):
        assert parity.claims(folder)
        results = parity.check_fixture(folder)
        assert len(results) >= 4
        failed = [r for r in results if not r.passed]
        assert not failed, failed


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
