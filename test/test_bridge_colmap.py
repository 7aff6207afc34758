"""COLMAP as the bridge's multi-view pose, and the CPU profile's bridge on a real walk."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from posecrafter_ros.core.types import EstimateOptions, EstimationError, RunContext, Status
from posecrafter_ros.eval.datasets import load_middlebury, make_pair
from posecrafter_ros.eval.frames import view_keyframe
from posecrafter_ros.eval.metrics import pair_errors
from posecrafter_ros.pipeline import Pipeline
from posecrafter_ros.stages.pose import (
    ColmapMultiViewPose,
    ColmapPoseConfig,
    _camera,
    bridge_covariance,
    connected,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def walk():
    views = load_middlebury(DATA / "strecha_fountain")
    return views, [view_keyframe(v, 320) for v in views]  # small images keep the test quick


@pytest.fixture(scope="module")
def ring():
    views = load_middlebury(DATA / "templering")
    return views, [view_keyframe(v, 320) for v in views]  # small images keep the test quick


def test_connected():
    assert connected(4, [(0, 1), (1, 3)], 0, 3)
    assert not connected(4, [(0, 1), (2, 3)], 0, 3)


def test_colmap_bridges_a_ring_pair_in_the_project_conventions(ring):
    views, keyframes = ring
    pair = make_pair(views[12], views[20])
    assert pair.rotation_deg > 55  # beyond what the direct path answers on this ring
    # COLMAP's own BA covariance, nothing added
    raw = ColmapMultiViewPose(ColmapPoseConfig(covariance_scale=1.0, pair_disagreement_weight=0))
    pose = raw.estimate([keyframes[i] for i in (12, 14, 16, 18, 20)], RunContext())
    rot_err, trans_err = pair_errors(pose.to_epipolar(), pair)  # pose: B in A, p_A = R p_B + t
    assert rot_err < 5.0 and trans_err < 10.0  # at 320 px
    assert np.isclose(np.linalg.norm(pose.t), 1.0) and not pose.scale_known
    cov = pose.covariance
    assert cov.shape == (6, 6) and np.all(np.isfinite(cov)) and np.allclose(cov, cov.T)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    # The BA constrains the rotation to well under a degree here; the unit translation's scale
    # direction carries the (large) scale variance.
    assert np.sqrt(np.diag(cov)[3:]).max() < np.radians(1.0)
    assert pose.t @ cov[:3, :3] @ pose.t > 0.5


def test_the_covariance_carries_the_error_level_the_view_pairs_show(ring):
    """The rotation covariance holds the pairs' disagreement d as d^2 per axis on top of the
    weighted BA covariance; views whose geometry the model cannot reconcile (one view given a
    focal length 25% too long) raise d, and with it the covariance."""
    _, keyframes = ring
    bridge = [keyframes[i] for i in (12, 14, 16, 18, 20)]
    model = ColmapMultiViewPose()
    pose, terms = model.estimate_with_terms(bridge, RunContext())
    assert terms.links == 4 and 0 < terms.pair_disagreement < np.radians(10.0)  # 320 px
    assert np.array_equal(pose.covariance, bridge_covariance(terms, model.conf))
    with_ba = ColmapPoseConfig(covariance_scale=50.0)
    added = bridge_covariance(terms, with_ba) - bridge_covariance(
        terms, ColmapPoseConfig(covariance_scale=50.0, pair_disagreement_weight=0.0)
    )
    assert np.allclose(added[3:, 3:], terms.pair_disagreement**2 * np.eye(3))
    across = np.eye(3) - np.outer(pose.t, pose.t)  # and across the translation direction
    assert np.allclose(added[:3, :3], terms.pair_disagreement**2 * across)
    assert np.allclose(added[:3, 3:], 0.0)

    middle = bridge[2]
    K = np.array(middle.K, float)
    K[0, 0] *= 1.25
    K[1, 1] *= 1.25
    bent = bridge[:2] + [dataclasses.replace(middle, K=K)] + bridge[3:]
    _, bent_terms = model.estimate_with_terms(bent, RunContext())
    assert bent_terms.pair_disagreement > 1.5 * terms.pair_disagreement  # 1.9x measured


def test_pair_disagreement_is_the_median_over_the_pairs_with_a_pose():
    import cv2
    import pycolmap

    from posecrafter_ros.stages.pose import VerifiedPair, pair_disagreement

    def rotation(deg, axis=0):
        vector = np.zeros(3)
        vector[axis] = np.radians(deg)
        return cv2.Rodrigues(vector)[0]

    class View:  # a registered image of a reconstruction
        def __init__(self, name, R):
            self.name, self.has_pose = name, True
            self.pose = pycolmap.Rigid3d(pycolmap.Rotation3d(R), np.zeros(3))

        def cam_from_world(self):
            return self.pose

    class Reconstruction:
        images = {
            k: View(f"v{k}", rotation(10.0 * k, axis=1)) for k in range(3)
        }  # view k turned 10k deg

    def pair(i, j, off_deg):  # the two-view rotation of (i, j), off_deg from the model's
        return VerifiedPair(np.zeros((30, 2)), rotation(off_deg) @ rotation(10.0 * (j - i), 1))

    pairs = {(0, 1): pair(0, 1, 1.0), (1, 2): pair(1, 2, 2.0), (0, 2): pair(0, 2, 4.0)}
    assert np.isclose(np.degrees(pair_disagreement(Reconstruction(), pairs)), 2.0)
    pairs[(1, 2)] = VerifiedPair(np.zeros((30, 2)), None)  # COLMAP found no pose for it
    assert np.isclose(np.degrees(pair_disagreement(Reconstruction(), pairs)), 2.5)
    del pairs[(0, 2)]  # one pair left: nothing measures the model's error level
    with pytest.raises(EstimationError) as info:
        pair_disagreement(Reconstruction(), pairs)
    assert info.value.status == Status.INSUFFICIENT_OVERLAP


def test_colmap_reports_views_that_do_not_connect(ring):
    _, keyframes = ring
    with pytest.raises(EstimationError) as info:
        ColmapMultiViewPose().estimate([keyframes[0], keyframes[12]], RunContext())
    assert info.value.status == Status.INSUFFICIENT_OVERLAP
    # Either the verified view graph is split, or (when a weak pair does verify) the mapper
    # cannot put both ends into one model: both are the same refusal, said with its reason.
    assert re.search(
        r"do not connect|could not register the first and the last view", info.value.message
    )


@pytest.mark.parametrize("fallback", [False, True])
def test_mapper_options_follow_the_config(ring, monkeypatch, fallback):
    """The settings reach COLMAP's mapper (structure-less registration is off by default:
    docs/geometry.md measured it costing 35 s per refused bridge)."""
    import pycolmap

    seen = {}
    real = pycolmap.incremental_mapping

    def spy(database_path, image_path, output_path, options):
        seen["fallback"] = options.structure_less_registration_fallback
        seen["init_min_inliers"] = options.mapper.init_min_num_inliers
        seen["mapper_threads"] = options.num_threads
        return real(database_path, image_path, output_path, options)

    monkeypatch.setattr(pycolmap, "incremental_mapping", spy)
    views, keyframes = ring
    conf = ColmapPoseConfig(structure_less_fallback=fallback, init_min_inliers=40, num_threads=2)
    ColmapMultiViewPose(conf).estimate([keyframes[i] for i in (12, 14, 16)], RunContext())
    # One thread whatever num_threads says: on two the mapper's answer changes run to run.
    assert seen == {"fallback": fallback, "init_min_inliers": 40, "mapper_threads": 1}
    assert ColmapPoseConfig().structure_less_fallback is False


def test_colmap_with_learned_matching(walk):
    views, keyframes = walk
    pair = make_pair(views[2], views[5])
    model = ColmapMultiViewPose.from_config(
        {"matcher": {"name": "xfeat_lighterglue", "top_k": 512}}
    )
    pose = model.estimate([keyframes[i] for i in (2, 3, 4, 5)], RunContext())
    rot_err, _ = pair_errors(pose.to_epipolar(), pair)
    assert rot_err < 3.0


def test_cpu_profile_bridges_an_extreme_walk_pair_through_real_frames(walk):
    views, keyframes = walk
    pair = make_pair(views[1], views[8])
    assert 65 <= pair.rotation_deg < 90
    pipeline = Pipeline.from_profile("cpu")
    a, b = keyframes[1], keyframes[8]
    alone = pipeline.estimate(a, b)
    assert alone.status == Status.INSUFFICIENT_OVERLAP, alone.message
    result = pipeline.estimate(a, b, EstimateOptions(force_bridge=True), sequence=keyframes)
    assert result.ok, result.message
    assert result.diagnostics.path == "bridge"
    assert result.diagnostics.num_candidate_frames == 6  # views 2..7, between A and B
    rot_err, trans_err = pair_errors(result.pose.to_epipolar(), pair)
    assert rot_err < 5.0 and trans_err < 10.0


def test_oracle_benchmark_runs_the_evaluation_rows(walk):
    """eval.oracle.run_oracle: the baseline and direct rows of eval/rows.py beside the oracle
    bridge, whose answer agrees with its own rotation error vector."""
    from posecrafter_ros.eval.oracle import run_oracle

    views, _ = walk
    j = next(j for j in range(1, len(views)) if make_pair(views[0], views[j]).rotation_deg > 50)
    (row,) = run_oracle(views, [(0, j)], max_candidates=8, max_side=320)
    assert set(row.errors) == {"baseline", "direct", "oracle"}
    assert row.rotation_deg > 50 and 0 < len(row.selected) <= 6
    assert all(0 < k < j for k in row.selected)  # a walk: the views between A and B
    oracle_rot, _ = row.errors["oracle"]
    assert oracle_rot < 5.0, row.message
    assert np.isclose(np.degrees(np.linalg.norm(row.rotation_error)), oracle_rot, atol=1e-3)
    assert row.covariance.shape == (6, 6) and row.cpu_seconds > 0


def test_direct_benchmark_compares_the_direct_and_baseline_rows(walk):
    from posecrafter_ros.eval.direct_bench import compare_direct_to_opencv

    views, _ = walk
    pair = make_pair(views[0], views[1])
    (row,) = compare_direct_to_opencv([pair], repeats=1)
    assert row.direct_accepted and row.direct_rotation_error < 2.0
    assert row.baseline_rotation_error < 5.0
    assert row.direct_seconds > 0 and row.baseline_seconds > 0


def test_colmap_refuses_a_model_that_contradicts_its_view_pairs(walk, tmp_path):
    # A sound model passes the check; tilt one of its cameras by 3 deg (as a bent model's
    # views are off) and the pairs through that view no longer agree: the answer is refused.
    import cv2
    import pycolmap

    _, keyframes = walk
    bridge = [keyframes[i] for i in (2, 3, 4, 5)]
    model = ColmapMultiViewPose()
    cameras = [_camera(view) for view in bridge]
    feats = [model.matcher.extract(view.image) for view in bridge]
    verified = model._verified_pairs(bridge, cameras, feats, RunContext())
    assert min(len(pair.inliers) for pair in verified.values()) >= 4 * 25  # all judged
    reconstruction = model._map(tmp_path, cameras, feats, verified)
    model._check_agreement(reconstruction, bridge, feats, verified)  # sound: no refusal
    image = next(im for im in reconstruction.images.values() if im.name == "v2")
    frame = reconstruction.frame(image.frame_id)
    tilt = pycolmap.Rotation3d(cv2.Rodrigues(np.array([np.radians(3.0), 0.0, 0.0]))[0])
    frame.rig_from_world = pycolmap.Rigid3d(tilt, np.zeros(3)) * frame.rig_from_world
    with pytest.raises(EstimationError) as info:
        model._check_agreement(reconstruction, bridge, feats, verified)
    assert info.value.status == Status.INSUFFICIENT_OVERLAP
    assert re.search(r"contradicts .* views 0 and 2 agree", info.value.message)


def test_parallel_bridge_repeats_its_answer_on_real_frames(ring):
    """Pairs verified side by side, then mapped: the same answer, bit for bit, on every run and
    on one thread. With COLMAP's mapper on two threads the answer changed from run to run on
    the same verified matches (docs/geometry.md, "Seconds per bridge")."""
    views, _ = ring
    # The benchmark's bridge templeR0016 -> templeR0023 at its 640 px: eight views, 7.7 deg
    # apart (at 320 px the two-thread mapper happened to repeat its answer).
    bridge = [view_keyframe(views[i], 640) for i in range(15, 23)]

    def answer(model):
        pose = model.estimate(bridge, RunContext())
        return pose.R.tobytes() + pose.t.tobytes() + pose.covariance.tobytes()

    serial = answer(ColmapMultiViewPose(ColmapPoseConfig(num_threads=1)))
    parallel = ColmapMultiViewPose(ColmapPoseConfig(num_threads=2))
    runs = [answer(parallel) for _ in range(3)]
    assert all(run == serial for run in runs)


def test_pairs_verified_side_by_side_come_back_in_pair_order(walk, monkeypatch):
    """The mapper reads the pairs in the order they are written: the first pair finishing last
    (held back here) must not move it, nor change any pair's inliers."""
    import threading

    _, keyframes = walk
    bridge = [keyframes[i] for i in (2, 3, 4, 5)]
    serial = ColmapMultiViewPose(ColmapPoseConfig(num_threads=1))
    cameras = [_camera(view) for view in bridge]
    feats = [serial.matcher.extract(view.image) for view in bridge]
    expected = serial._verified_pairs(bridge, cameras, feats, RunContext())

    parallel = ColmapMultiViewPose(ColmapPoseConfig(num_threads=2))
    finished, real_match = [], parallel.matcher.match
    lock, another_finished = threading.Lock(), threading.Event()

    def held_back_match(feats_a, feats_b):
        ab = (feats_a, feats_b)
        first = feats_a is feats[0] and feats_b is feats[1]
        if first:  # the first pair finishes only after another one has (a condition, not a delay)
            assert another_finished.wait(timeout=120)
        matches = real_match(feats_a, feats_b)
        with lock:
            finished.append(tuple(next(k for k, f in enumerate(feats) if f is x) for x in ab))
        if not first:
            another_finished.set()
        return matches

    monkeypatch.setattr(parallel.matcher, "match", held_back_match)
    verified = parallel._verified_pairs(bridge, cameras, feats, RunContext())
    assert finished[0] != (0, 1)  # the threads did finish out of order
    assert list(verified) == list(expected) == sorted(expected)
    for pair in expected:
        assert np.array_equal(verified[pair].inliers, expected[pair].inliers)
        assert np.array_equal(verified[pair].rotation, expected[pair].rotation)
