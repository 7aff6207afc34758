"""Metrics of the evaluation protocol against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from posecrafter_ros.eval.metrics import (
    FAILED_DEG,
    auc,
    recall_at,
    rotation_error_deg,
    summarize,
    translation_angle_deg,
)


def rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def rot_x(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


@pytest.mark.parametrize(
    "R_est, R_gt, expected",
    [
        (np.eye(3), np.eye(3), 0.0),
        (rot_z(30), np.eye(3), 30.0),
        (rot_x(10), rot_x(-20), 30.0),
        (rot_z(180), np.eye(3), 180.0),
        (rot_z(-100), rot_z(100), 160.0),  # the short way round: 200° -> 160°
    ],
)
def test_rotation_error_is_the_geodesic_angle(R_est, R_gt, expected):
    assert rotation_error_deg(R_est, R_gt) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "t_est, t_gt, expected",
    [
        ([1, 0, 0], [0, 1, 0], 90.0),
        ([1, 0, 0], [2, 0, 0], 0.0),  # scale-free
        ([1, 0, 0], [-3, 0, 0], 180.0),
        ([1, 1, 0], [1, 0, 0], 45.0),
        ([0, 0, 0], [1, 0, 0], FAILED_DEG),  # no direction: a failure
    ],
)
def test_translation_error_is_the_direction_angle(t_est, t_gt, expected):
    got = translation_angle_deg(np.asarray(t_est, float), np.asarray(t_gt, float))
    assert got == pytest.approx(expected, abs=1e-6)


def test_recall_counts_errors_strictly_below_the_threshold():
    errors = [1, 5, 10, 20, 40]
    assert recall_at(errors, 5) == pytest.approx(1 / 5)
    assert recall_at(errors, 15) == pytest.approx(3 / 5)
    assert recall_at(errors, 30) == pytest.approx(4 / 5)
    assert recall_at([], 30) == 0.0


@pytest.mark.parametrize(
    "errors, expected",
    [
        # (0,0) (10,.5) (20,1) then flat to 30: 2.5 + 7.5 + 10 = 20 -> 20/30
        ([10, 20], 20 / 30),
        ([15], 22.5 / 30),  # (0,0) (15,1) (30,1): 7.5 + 15
        ([0, 0], 1.0),
        ([40, 50], 0.0),
        ([10, 40], 12.5 / 30),  # (0,0) (10,.5) then flat at .5 to 30: 2.5 + 10
    ],
)
def test_auc_matches_hand_computed_areas(errors, expected):
    assert auc(errors, 30.0) == pytest.approx(expected)


def test_summarize_reports_every_metric_and_the_smaller_auc():
    stats = summarize([10, 20], [15, 15])
    assert stats["n"] == 2
    assert stats["MRE"] == pytest.approx(15.0)
    assert stats["MTE"] == pytest.approx(15.0)
    assert (stats["R@5"], stats["R@15"], stats["R@30"]) == (0.0, 0.5, 1.0)
    assert (stats["T@5"], stats["T@15"], stats["T@30"]) == (0.0, 0.0, 1.0)
    # rotation AUC 20/30; translation (0,0) (15,.5) (15,1) (30,1): 3.75 + 15 = 18.75 -> 0.625
    assert stats["AUC@30"] == pytest.approx(0.625)


def test_a_failed_pair_weighs_in_at_180_degrees():
    stats = summarize([0.0, FAILED_DEG], [0.0, FAILED_DEG])
    assert stats["MRE"] == pytest.approx(90.0)
    assert stats["R@30"] == pytest.approx(0.5)
    assert stats["AUC@30"] == pytest.approx(0.5)
