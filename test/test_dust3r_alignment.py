"""DUSt3R global alignment and two-view path against the official fixtures, and the checker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from posecrafter_ros.models.dust3r import parity
from posecrafter_ros.models.dust3r.alignment import (
    AlignmentConfig,
    AlignmentError,
    PointCloudOptimizer,
    two_view_alignment,
)
from posecrafter_ros.models.dust3r.alignment_parity import _alignment_config, _predictions
from posecrafter_ros.models.dust3r.geometry import (
    matrix_to_quaternion,
    quaternion_to_matrix,
    similarity_registration,
)

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
ALIGNER = GOLDEN / "dust3r_global_aligner"


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """These tiny networks run fastest on one thread, and the CI machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def meta():
    return json.loads((ALIGNER / "meta.json").read_text())


def _variant_predictions(meta, variant):
    if variant == "model":
        return _predictions(
            load_file(str(GOLDEN / "dust3r_dpt" / "outputs.safetensors")), meta["pairs"]
        )
    return _predictions(load_file(str(ALIGNER / f"{variant}_inputs.safetensors")), meta["pairs"])


@pytest.mark.parametrize("variant", ["synthetic", "model"])
def test_init_state_and_gradients_match_official(meta, variant):
    prefix = "" if variant == "model" else f"{variant}_"
    init = load_file(str(ALIGNER / f"{prefix}pco_init.safetensors"))
    optimizer = PointCloudOptimizer(_variant_predictions(meta, variant), _alignment_config(meta))
    optimizer.init_minimum_spanning_tree()
    for name in ("im_depthmaps", "im_poses", "im_focals", "pw_poses"):
        torch.testing.assert_close(
            getattr(optimizer, name).detach(), init[f"param.{name}"], rtol=1e-5, atol=1e-5
        )
    torch.testing.assert_close(
        optimizer.cam_to_world().detach(), init["im_poses_c2w"], rtol=1e-5, atol=1e-5
    )
    loss = optimizer()
    loss.backward()
    assert float(loss.detach()) == pytest.approx(meta["variants"][variant]["init_loss"], rel=1e-6)
    for name in ("im_depthmaps", "im_poses", "im_focals", "pw_poses"):
        ref = init[f"grad_at_init.{name}"]
        torch.testing.assert_close(
            getattr(optimizer, name).grad, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max())
        )


def test_synthetic_optimisation_follows_official_loss_curve(meta):
    final = load_file(str(ALIGNER / "synthetic_pco_final.safetensors"))
    optimizer = PointCloudOptimizer(
        _variant_predictions(meta, "synthetic"), _alignment_config(meta)
    )
    optimizer.init_minimum_spanning_tree()
    curve = []
    returned = optimizer.optimize(lambda _, loss: curve.append(loss), report_every=1)
    np.testing.assert_allclose(curve, final["losses"].numpy(), rtol=1e-3)
    assert returned == pytest.approx(meta["variants"]["synthetic"]["returned_loss"], rel=1e-3)
    torch.testing.assert_close(optimizer.focals().detach(), final["focals"], rtol=1e-3, atol=0.1)
    torch.testing.assert_close(
        optimizer.cam_to_world().detach(), final["im_poses_c2w"], rtol=0, atol=1e-2
    )


def test_two_view_path_matches_pairviewer(meta):
    inputs = load_file(str(ALIGNER / "pairviewer_inputs.safetensors"))
    outputs = load_file(str(ALIGNER / "pairviewer_outputs.safetensors"))
    for prefix in ("", "synthetic_"):
        result = two_view_alignment(_predictions(inputs, meta["pairviewer_pairs"], prefix))
        torch.testing.assert_close(
            result.cam_to_world, outputs[f"{prefix}im_poses_c2w"], rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(result.focals, outputs[f"{prefix}focals"], rtol=1e-5, atol=1e-4)
        for view in (0, 1):
            np.testing.assert_allclose(
                result.world_points[view], outputs[f"{prefix}pts3d{view}"].numpy(), atol=1e-4
            )
            assert torch.equal(result.masks[view], outputs[f"{prefix}mask{view}"])


def test_two_view_reports_pnp_failure_instead_of_identity(meta):
    inputs = load_file(str(ALIGNER / "pairviewer_inputs.safetensors"))
    predictions = _predictions(inputs, meta["pairviewer_pairs"], "synthetic_")
    # No pixel above the confidence threshold: the official PairViewer's PnP raises, the
    # exception is swallowed and the identity is returned as the relative pose.
    for pred in predictions:
        pred.conf_i = torch.ones_like(pred.conf_i)
        pred.conf_j = torch.ones_like(pred.conf_j)
    with pytest.raises(AlignmentError, match="PnP"):
        two_view_alignment(predictions)


def test_quaternion_and_registration_kernels():
    rng = np.random.default_rng(1)
    for _ in range(20):
        quat = torch.tensor(rng.normal(size=4), dtype=torch.float64)
        quat = quat / quat.norm()
        back = matrix_to_quaternion(quaternion_to_matrix(quat))
        assert torch.allclose(back * torch.sign(back[3]), quat * torch.sign(quat[3]), atol=1e-12)
    points = torch.tensor(rng.normal(size=(50, 3)), dtype=torch.float32)
    rotation = quaternion_to_matrix(
        torch.tensor([0.1, -0.3, 0.2, 0.9]) / torch.tensor([0.1, -0.3, 0.2, 0.9]).norm()
    )
    target = 2.5 * points @ rotation.T + torch.tensor([1.0, -2.0, 0.5])
    scale, rot, t = similarity_registration(points, target, torch.rand(50) + 0.5)
    assert float(scale) == pytest.approx(2.5, rel=1e-5)
    torch.testing.assert_close(rot, rotation, atol=1e-5, rtol=0)
    torch.testing.assert_close(t, torch.tensor([1.0, -2.0, 0.5]), atol=1e-5, rtol=0)


def test_known_intrinsics_stay_fixed(meta):
    config = AlignmentConfig(niter=5)
    optimizer = PointCloudOptimizer(_variant_predictions(meta, "synthetic"), config)
    focals = [80.0, 81.0, 82.0]
    centres = [(w / 2 + 1, h / 2 - 1) for h, w in optimizer.imshapes]
    optimizer.preset_intrinsics(focals, centres)
    optimizer.init_minimum_spanning_tree()
    optimizer.optimize()
    np.testing.assert_allclose(optimizer.focals().detach().numpy().ravel(), focals, rtol=1e-5)
    np.testing.assert_allclose(optimizer.principal_points().detach().numpy(), centres, atol=1e-4)


def test_checker_claims_by_content_and_passes(tmp_path):
    assert (
        parity.claims(ALIGNER)
        and parity.claims(GOLDEN / "dust3r_dpt")
        and parity.claims(GOLDEN / "manifests")
    )
    assert not parity.claims(tmp_path)
    renamed = tmp_path / "some_fixture"
    renamed.mkdir()
    for name in ("config.json", "meta.json"):
        (renamed / name).write_text((GOLDEN / "dust3r_linear" / name).read_text())
    assert parity.claims(renamed)
    results = parity.check_fixture(GOLDEN / "dust3r_linear") + parity.check_fixture(
        GOLDEN / "manifests"
    )
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]


def test_only_the_preset_views_keep_their_intrinsics(meta):
    """Known K for the real keyframes only: the other views' focals are optimised, with
    their principal points at the image centre (the official preset_focal froze them all)."""
    config = AlignmentConfig(niter=20)
    optimizer = PointCloudOptimizer(_variant_predictions(meta, "synthetic"), config)
    centres = [(w / 2 + 1, h / 2 - 1) for h, w in optimizer.imshapes]
    optimizer.preset_intrinsics([80.0, 82.0], [centres[0], centres[2]], views=[0, 2])
    optimizer.init_minimum_spanning_tree()
    initial_middle = float(optimizer.focals()[1, 0])
    optimizer.optimize()
    focals = optimizer.focals().detach().numpy().ravel()
    np.testing.assert_allclose(focals[[0, 2]], [80.0, 82.0], rtol=1e-6)
    assert abs(focals[1] - initial_middle) > 1e-3 * initial_middle  # the middle focal moved
    pps = optimizer.principal_points().detach().numpy()
    np.testing.assert_allclose(pps[[0, 2]], [centres[0], centres[2]], atol=1e-4)
    h, w = optimizer.imshapes[1]
    np.testing.assert_allclose(pps[1], (w / 2, h / 2), atol=1e-6)
    with pytest.raises(ValueError, match="2 focals"):
        optimizer.preset_intrinsics([80.0, 82.0], centres, views=[0, 2])
