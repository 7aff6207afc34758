"""eval/bridge_covariance.py: the bridge covariance model and its leave-one-scene-out fit
(the fit behind ColmapPoseConfig.covariance_scale)."""

from __future__ import annotations

import numpy as np

from posecrafter_ros.eval.bridge_covariance import Answer, coverage, fit, leave_one_scene_out


def _row(rng, true_scale: float, shipped_scale: float, shipped_sigma: float, views: int) -> dict:
    """An oracle row as oracle_report.py writes it: the covariance as the shipped model made it
    from a BA block, and a rotation error drawn from true_scale * BA."""
    L = rng.normal(size=(3, 3)) * 1e-3
    ba = L @ L.T + 1e-7 * np.eye(3)
    floor = (views - 1) * np.radians(shipped_sigma) ** 2
    covariance = np.zeros((6, 6))
    covariance[:3, :3] = np.eye(3)
    covariance[3:, 3:] = shipped_scale * ba + floor * np.eye(3)
    return {
        "covariance_model": {
            "covariance_scale": shipped_scale,
            "rotation_sigma_per_link_deg": shipped_sigma,
        },
        "num_views": views,
        "covariance": covariance.tolist(),
        "rotation_error": rng.multivariate_normal(np.zeros(3), true_scale * ba).tolist(),
        "_ba": ba,
    }


def test_a_row_gives_back_the_bundle_adjustment_block():
    row = _row(np.random.default_rng(0), 50.0, shipped_scale=69.0, shipped_sigma=0.3, views=7)
    answer = Answer(row)
    assert answer.links == 6
    assert np.allclose(answer.ba, row["_ba"], rtol=1e-6, atol=1e-15)


def test_fit_recovers_the_scale_errors_follow_and_holds_on_a_left_out_scene():
    rng = np.random.default_rng(1)
    true_scale = 400.0
    by_scene = {
        scene: [Answer(_row(rng, true_scale, 69.0, 0.0, 6)) for _ in range(120)]
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
    big = [Answer(_row(rng, 100.0, 69.0, 0.0, 6)) for _ in range(200)]
    small = [Answer(_row(rng, 1600.0, 69.0, 0.0, 6)) for _ in range(20)]
    scale, sigma = fit([big, small])
    assert coverage(small, scale, sigma) >= 0.9
    assert coverage(big + small, scale, sigma) >= 0.95
    # ... while still the sharpest such model: not wider than "small" alone needs by much.
    assert (
        coverage(small, 0.5 * scale, sigma) < 0.9
        or coverage(big + small, 0.5 * scale, sigma) < 0.95
    )
