"""scripts/gpu_smoke.py: the first-GPU-run checks, run here on the tiny profile (CPU)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_smoke.py"


@pytest.fixture(scope="module")
def gpu_smoke():
    return runpy.run_path(str(SCRIPT))


def test_tiny_profile_runs_every_stage_and_marks_real_weight_thresholds(gpu_smoke, capsys):
    assert gpu_smoke["main"](["--profile", "tiny", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for stage in ("direct", "interpolate", "relay_pose", "synthesize", "select", "pose"):
        assert f"---- {stage}" in out  # seconds and peak memory per stage
    lines = out.splitlines()
    marked = [line for line in lines if line.endswith("[real weights]")]
    assert len(marked) >= 5 and all(line.split()[0] in ("INFO", "PASS") for line in marked)
    applied = [line for line in lines if line.split()[:1] in (["PASS"], ["FAIL"])]
    assert applied and all(line.split()[0] == "PASS" for line in applied)
    assert "candidates (input copies left out)" in out
    assert lines[-1].startswith("PASS:") and "real-weights checks shown as INFO" in lines[-1]


def test_real_weight_thresholds_decide_the_outcome_with_official_weights():
    from posecrafter_ros.eval.smoke import Smoke

    for real_weights, failures in ((False, 0), (True, 1)):
        smoke = Smoke(pipeline=None, device="cpu", real_weights=real_weights)
        smoke.check("pose", "rotation error", False, "40 deg", real_weights_only=True)
        smoke.check("pose", "finite pose", True, "")
        assert len(smoke.failed) == failures


def test_unknown_pair_is_an_error(gpu_smoke, capsys):
    assert gpu_smoke["main"](["--profile", "tiny", "--pair", "nope"]) == 2
    assert "not in" in capsys.readouterr().out
