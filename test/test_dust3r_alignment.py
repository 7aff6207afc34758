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
from posecrafter_ros.models.dust3r.alignment_parity import (
    ALIGNMENT_PARAMS,
    CHAOTIC_INIT_CHANGE,
    INIT_LOSS_RTOL,
    _alignment_config,
    _predictions,
    loss_and_gradients_at,
)
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


# The fixture recorded one CPU's float32 rounding. Replaying the official naver/dust3r code
# (cloud_opt, same pinned packages) on an AVX512 Xeon gives results bit-identical to ours there
# (init state, init loss, gradients, all 30 losses) but not to the fixture: float32 torch
# reductions round differently on that CPU (init parameters move by <= 2.6e-6), and three
# steps amplify that noise. (1) The init loss is an L1 sum over residuals that are at
# rounding level right after the MST init (a view's points are the pair's prediction), so it
# moves by 9.0e-6 relative (0.0139257945 vs 0.0139259202). (2) PnP-RANSAC picks its consensus
# set chaotically on the noisy model outputs (log-depth of the PnP-posed view moves by 1.32).
# (3) Adam's first step is ~lr*sign(grad) and those gradients are rounding-level for the
# synthetic scene, so its loss curve moves by up to 33% mid-way and 1.0% at the end.
# So: the initial state is compared tightly where it is not chaotic (all views of the
# well-conditioned synthetic scene; the views the model variant's tree reaches without PnP),
# the loss and gradients tightly AT THE FIXTURE'S OWN INITIAL STATE (forward and backward are
# machine-independent there: loss bit-identical, model gradients within 1.1e-6 of 0.66),
# the optimisation loosely.


@pytest.mark.parametrize("variant", ["synthetic", "model"])
def test_init_state_matches_official(meta, variant):
    prefix = "" if variant == "model" else f"{variant}_"
    init = load_file(str(ALIGNER / f"{prefix}pco_init.safetensors"))
    optimizer = PointCloudOptimizer(_variant_predictions(meta, variant), _alignment_config(meta))
    optimizer.init_minimum_spanning_tree()
    # The fixture records how much its init moves under 1e-6 input noise: the synthetic scene
    # is well conditioned (its PnP-posed views reproduce across CPUs), the model variant not.
    sensitivity = meta["variants"][variant]["sensitivity_to_1e6_relative_input_noise"]
    chaotic = sensitivity["init_max_abs_change"] > CHAOTIC_INIT_CHANGE
    chaotic = set(optimizer.pnp_views) if chaotic else set()
    stable = [v for v in range(optimizer.num_views) if v not in chaotic]
    assert stable, "no view is reproducible across CPUs: nothing tight to compare"
    for name in ("im_depthmaps", "im_poses"):
        torch.testing.assert_close(
            getattr(optimizer, name).detach()[stable],
            init[f"param.{name}"][stable],
            rtol=1e-5,
            atol=1e-5,
        )
    for name in ("im_focals", "pw_poses"):
        torch.testing.assert_close(
            getattr(optimizer, name).detach(), init[f"param.{name}"], rtol=1e-5, atol=1e-5
        )
    torch.testing.assert_close(
        optimizer.cam_to_world().detach()[stable],
        init["im_poses_c2w"][stable],
        rtol=1e-5,
        atol=1e-5,
    )
    if not chaotic:
        loss = float(optimizer().detach())
        assert loss == pytest.approx(meta["variants"][variant]["init_loss"], rel=INIT_LOSS_RTOL)


@pytest.mark.parametrize("variant", ["synthetic", "model"])
def test_loss_and_gradients_at_official_init_state(meta, variant):
    prefix = "" if variant == "model" else f"{variant}_"
    init = load_file(str(ALIGNER / f"{prefix}pco_init.safetensors"))
    optimizer = PointCloudOptimizer(_variant_predictions(meta, variant), _alignment_config(meta))
    loss, grads, spread = loss_and_gradients_at(optimizer, init)
    assert loss == pytest.approx(meta["variants"][variant]["init_loss"], rel=1e-6)
    for name in ALIGNMENT_PARAMS:
        ref = init[f"grad_at_init.{name}"]
        # The synthetic residuals are at rounding level at init, so its L1 gradient directions
        # are rounding noise: bounded by the measured float32-vs-float64 spread (0.024 of 0.17
        # for poses; the model variant's spread, 6.5e-7, is far below 1e-4 of the maximum).
        tolerance = max(1e-4 * float(ref.abs().max()), spread[name])
        torch.testing.assert_close(grads[name], ref, rtol=1e-4, atol=tolerance)


def test_synthetic_optimisation_follows_official_loss_curve(meta):
    final = load_file(str(ALIGNER / "synthetic_pco_final.safetensors"))
    optimizer = PointCloudOptimizer(
        _variant_predictions(meta, "synthetic"), _alignment_config(meta)
    )
    optimizer.init_minimum_spanning_tree()
    curve = []
    returned = optimizer.optimize(lambda _, loss: curve.append(loss), report_every=1)
    official = final["losses"].numpy()
    assert len(curve) == len(official)
    assert curve[0] == pytest.approx(official[0], rel=INIT_LOSS_RTOL)
    # Loose (see above): the last three losses differ by <= 1.8% across CPUs.
    np.testing.assert_allclose(curve[-3:], official[-3:], rtol=5e-2)
    assert returned == pytest.approx(meta["variants"]["synthetic"]["returned_loss"], rel=5e-2)
    # Measured across CPUs: focals <= 0.2 px (of 86), camera poses <= 3.8e-3.
    torch.testing.assert_close(optimizer.focals().detach(), final["focals"], rtol=5e-3, atol=0)
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
    initial_middle = float(optimizer.focals()[1, 0].detach())
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
