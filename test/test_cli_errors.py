"""What a user sees when a command is given bad input: one `ERROR:` line naming the culprit
and a non-zero exit code, never a Python traceback. Each command runs as the user runs it,
in its own process."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import REPO, requires_ros

TEMPLE = REPO / "test" / "data" / "eval" / "templering"


def run_cli(module: str, *args: str, timeout: float = 300) -> tuple[int, str]:
    """(exit code, stdout + stderr) of `python -m posecrafter_ros.<module> args...`."""
    proc = subprocess.run(
        [sys.executable, "-m", f"posecrafter_ros.{module}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    return proc.returncode, proc.stdout + proc.stderr


def assert_one_line_error(code: int, output: str, *needles: str) -> None:
    assert code != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, output
    for needle in needles:
        assert needle in errors[0], output


@pytest.fixture()
def images(tmp_path):
    """Two 640x480 images (content does not matter: the commands fail before any request)."""
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a.png", "b.png"):
        path = tmp_path / name
        cv2.imwrite(str(path), rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
        paths.append(str(path))
    return paths


def camera_yaml(path, text: str) -> str:
    path.write_text(text)
    return str(path)


GOOD_K = "camera_matrix:\n  rows: 3\n  cols: 3\n  data: [500, 0, 320, 0, 500, 240, 0, 0, 1]\n"


@requires_ros
@pytest.mark.parametrize(
    "case,yaml_text,needles",
    [
        ("syntax", "camera_matrix: [1, 2\nimage_width: 640\n", ["not valid YAML"]),
        ("three_values", "camera_matrix:\n  data: [500, 320, 240]\n", ["has 3 values"]),
        (
            "wrong_size",
            "image_width: 320\nimage_height: 240\n" + GOOD_K,
            ["calibrated for 320x240", "640x480"],
        ),
    ],
)
def test_query_names_the_bad_camera_yaml(images, tmp_path, case, yaml_text, needles):
    path = camera_yaml(tmp_path / f"{case}.yaml", yaml_text)
    code, out = run_cli("ros.query", *images, "--camera-info", path)
    assert_one_line_error(code, out, path, *needles)


@requires_ros
def test_query_refuses_conflicting_or_too_many_intrinsics(images, tmp_path):
    path = camera_yaml(tmp_path / "cam.yaml", "image_width: 640\nimage_height: 480\n" + GOOD_K)
    code, out = run_cli("ros.query", *images, "--camera-info", path, "--K", "1", "1", "1", "1")
    assert_one_line_error(code, out, "--camera-info or --K, not both")
    code, out = run_cli("ros.query", *images, "--camera-info", path, path, path)
    assert_one_line_error(code, out, "got 3")


def test_eval_fails_on_a_row_that_cannot_run_unless_told_to_skip(tmp_path):
    common = ["--data", str(TEMPLE), "--pairs-per-bin", "1", "--bins", "0-50", "--no-progress"]
    rows = ["--rows", "direct,pipeline:bogus"]
    code, out = run_cli("cli.eval", *common, *rows, "--out", str(tmp_path / "a"))
    assert_one_line_error(code, out, "pipeline:bogus", "--skip-unavailable")
    assert not (tmp_path / "a").exists()
    code, out = run_cli(
        "cli.eval", *common, *rows, "--skip-unavailable", "--out", str(tmp_path / "b")
    )
    assert code == 0, out
    assert "pipeline:bogus" in (tmp_path / "b" / "summary.json").read_text()


def test_bag_eval_of_a_folder_that_is_not_a_bag(tmp_path):
    code, out = run_cli("ros.bag", "eval", "docs", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, out, "docs is not a readable ROS bag")


def test_bag_help_shows_defaults_and_describes_every_option():
    code, out = run_cli("ros.bag", "make", "--help")
    assert code == 0
    assert "bag storage format" in out and "(default: sqlite3)" in out


def test_parity_help_says_where_the_fixtures_are():
    code, out = run_cli("cli.parity", "--help")
    assert code == 0 and "test/data/golden/" in out
    code, out = run_cli("cli.parity", "docs")
    assert_one_line_error(code, out, "test/data/golden/")


@requires_ros
def test_node_help_lists_parameters_and_exits_without_starting():
    code, out = run_cli("ros.node", "--help", timeout=120)  # a started node would never exit
    assert code == 0, out
    assert "max_concurrent_requests (2; 1 .. 1024)" in out
    assert "requests computed at once; more are answered BUSY" in out
    assert "ready:" not in out


@requires_ros
@pytest.mark.parametrize(
    "setting,needles",
    [
        ("profile:=bogus", ["profile 'bogus' not found", "known:"]),
        ("max_concurrent_requests:=-3", ["max_concurrent_requests", "out of range"]),
        ("request_timeout_sec:=-1.0", ["request_timeout_sec", "out of range"]),
        ("buffer.max_frames:=0", ["buffer.max_frames", "out of range"]),
    ],
)
def test_node_refuses_bad_settings_at_start(setting, needles):
    code, out = run_cli("ros.node", "--ros-args", "-p", setting, timeout=120)
    assert_one_line_error(code, out, "posecrafter_node cannot start", *needles)
    assert "ready:" not in out
