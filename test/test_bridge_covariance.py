"""eval/bridge_covariance.py: the bridge covariance model and its leave-one-scene-out fit
(the fit behind ColmapPoseConfig.covariance_scale)."""

from __future__ import annotations

import numpy as np

from posecrafter_ros.eval.bridge_covariance import (
    Answer,
    coverage,
    fit,
    leave_one_scene_out,
    translation_coverage,
)


def _row(rng, true_scale: float, views: int, disagreement: float = 0.0, level: float = 0.0):
    """An oracle row as oracle_report.py writes it: the covariance terms of a BA block, and a
    rotation error drawn from true_scale * BA + level * disagreement^2 * I."""
    L = rng.normal(size=(3, 3)) * 1e-3
    ba = np.zeros((6, 6))
    ba[:3, :3] = np.eye(3)
    ba[3:, 3:] = L @ L.T + 1e-7 * np.eye(3)
    truth = true_scale * ba[3:, 3:] + level * disagreement**2 * np.eye(3)
    return {
        "covariance_terms": {
            "ba": ba.tolist(),
            "links": views - 1,
            "pair_disagreement": disagreement,
            "t_unit": [0.0, 0.0, 1.0],
        },
        "rotation_error": rng.multivariate_normal(np.zeros(3), truth).tolist(),
        "translation_error": [0.0, 0.0, 0.0],
        "_ba": ba[3:, 3:],
    }


def test_a_row_gives_back_the_model_terms():
    row = _row(np.random.default_rng(0), 50.0, views=7, disagreement=0.01)
    answer = Answer(row, disagreement_weight=2.0)
    assert answer.links == 6
    assert np.allclose(answer.ba, row["_ba"])
    expected = 3.0 * row["_ba"] + (2.0 * 0.01**2 + 6 * np.radians(0.5) ** 2) * np.eye(3)
    assert np.allclose(answer.covariance(3.0, 0.5), expected)


def test_fit_recovers_the_scale_errors_follow_and_holds_on_a_left_out_scene():
    rng = np.random.default_rng(1)
    true_scale = 400.0
    by_scene = {
        scene: [Answer(_row(rng, true_scale, 6), 1.0) for _ in range(120)]
        for scene in ("a", "b", "c")
    }
    scale, sigma = fit(list(by_scene.values()))
    assert 0.5 * true_scale < scale < 2.0 * true_scale and sigma <= 0.05
    assert coverage(by_scene["a"], 1.0, 0.0) < 0.2  # the BA as it is: far too confident
    for scene, (_, _, held_out) in leave_one_scene_out(by_scene).items():
        assert 0.88 <= held_out <= 1.0, (scene, held_out)


def test_fit_holds_on_every_scene_not_only_on_the_pooled_answers():
    # Scene "big" has many answers at one error level, scene "small" few at a four times
    # larger one (in standard deviation). A pooled 95% follows "big" and leaves "small" short.
    rng = np.random.default_rng(2)
    big = [Answer(_row(rng, 100.0, 6), 1.0) for _ in range(200)]
    small = [Answer(_row(rng, 1600.0, 6), 1.0) for _ in range(20)]
    scale, sigma = fit([big, small])
    assert coverage(small, scale, sigma) >= 0.9
    assert coverage(big + small, scale, sigma) >= 0.95
    # ... while still the sharpest such model: not wider than "small" alone needs by much.
    assert (
        coverage(small, 0.5 * scale, sigma) < 0.9
        or coverage(big + small, 0.5 * scale, sigma) < 0.95
    )


def test_the_pairs_disagreement_carries_an_error_level_the_bundle_adjustment_misses():
    # Each answer's error follows its own disagreement d (d^2 per axis), the BA block says
    # nothing about it, and one scene's d (and errors) are three times the others'. Left out,
    # that scene is covered when d is in the model, and not by the BA and floor alone.
    rng = np.random.default_rng(3)

    def scene(d_deg):
        return [
            _row(rng, 1.0, 6, np.radians(d_deg * rng.uniform(0.5, 1.5)), level=1.0)
            for _ in range(60)
        ]

    rows = {"a": scene(0.3), "b": scene(0.3), "c": scene(0.4), "rough": scene(1.2)}
    for weight, held_out_rough in ((1.0, True), (0.0, False)):
        by_scene = {k: [Answer(r, weight) for r in v] for k, v in rows.items()}
        *_, rough = leave_one_scene_out(by_scene)["rough"]
        assert (rough >= 0.9) is held_out_rough, (weight, rough)


def test_the_translation_direction_is_judged_across_it_only():
    # The true direction 2 sigma off the answer's (inside the 2-dof 95% region, radius 2.45
    # sigma) or 3 sigma off (outside); the length of t (the unobservable scale) does not count.
    row = _row(np.random.default_rng(4), 1.0, views=5, disagreement=0.01)  # sigma: 0.01 rad
    t_unit = np.array(row["covariance_terms"]["t_unit"])

    def off_by(sigmas):
        angle = 0.01 * sigmas
        t_true = np.array([np.sin(angle), 0.0, np.cos(angle)])
        row["translation_error"] = (t_unit - t_true).tolist()
        return translation_coverage([Answer(row, 1.0)], 0.0, 0.0)

    assert off_by(2.0) == 1.0 and off_by(-2.0) == 1.0
    assert off_by(3.0) == 0.0


def test_a_zero_covariance_covers_nothing():
    row = _row(np.random.default_rng(5), 1.0, views=5, disagreement=0.0)
    assert coverage([Answer(row, 1.0)], 0.0, 0.0) == 0.0
