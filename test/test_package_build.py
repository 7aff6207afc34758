"""The package builds the way colcon builds it on a ROS machine (ament_cmake, full install):
interfaces, the Python package merged beside them, executables in lib/<pkg>, launch and
config in share/<pkg>, and an ament index entry so `ros2 run` / `ros2 launch` find it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO, requires_ros

VENV = Path(sys.prefix)


@requires_ros
@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("ninja") is None, reason="cmake/ninja missing"
)
def test_ament_cmake_install(tmp_path):
    # Build from a copy: the venv lives inside this checkout, and CMake refuses exported
    # include paths (numpy's, in the venv) that lie inside the source tree.
    src, build, prefix = tmp_path / "src", tmp_path / "build", tmp_path / "install"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("msg", "srv", "action", "launch", "config", "scripts", "posecrafter_ros"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("CMakeLists.txt", "package.xml"):
        shutil.copy(REPO / name, src / name)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), PATH=f"{VENV / 'bin'}:{os.environ['PATH']}")
    subprocess.run(
        [
            "cmake",
            "-S",
            str(src),
            "-B",
            str(build),
            "-G",
            "Ninja",
            f"-DCMAKE_PREFIX_PATH={VENV}",
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            "-DBUILD_TESTING=OFF",
            f"-DPython3_EXECUTABLE={sys.executable}",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    subprocess.run(
        ["cmake", "--build", str(build), "--target", "install"],
        check=True,
        env=env,
        capture_output=True,
    )

    site = prefix / Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    pkg = site / "posecrafter_ros"
    for rel in (
        "__init__.py",
        "ros/node.py",
        "pipeline.py",
        "stages/synthesize.py",
        "profiles/cpu.yaml",
        "msg/__init__.py",
        "srv/__init__.py",
        "action/__init__.py",
    ):
        assert (pkg / rel).is_file(), rel
    assert "extend_path" in (pkg / "__init__.py").read_text()  # ours, not the generated empty one
    for exe in ("posecrafter_node", "posecrafter_query"):
        assert os.access(prefix / "lib/posecrafter_ros" / exe, os.X_OK)
    share = prefix / "share/posecrafter_ros"
    assert (share / "launch/posecrafter.launch.py").is_file() and (
        share / "config/gpu.yaml"
    ).is_file()
    assert (prefix / "share/ament_index/resource_index/packages/posecrafter_ros").is_file()

    child_env = {k: v for k, v in env.items() if k not in ("_ROS_WHEELS_BOOTSTRAP_COMPLETE",)}
    child_env["PYTHONPATH"] = str(site)
    child_env["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    probe = (
        "import posecrafter_ros, posecrafter_ros.ros.node as n; from posecrafter_ros.srv import EstimateRelativePose as S;"
        "S.__class__.__import_type_support__(); print(posecrafter_ros.__file__, n.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=child_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split()[0].startswith(str(pkg)) and out.split()[1].startswith(str(pkg)), out
