# Two commands on a fresh machine:  make demo  |  make test
# Each builds (once) the venv in .venv: CPU torch, ROS 2 Kilted wheels from PyPI, this
# package's interfaces compiled by rosidl, and the package itself (editable).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-complete
SETUP_INPUTS := tools/setup_env.sh $(wildcard requirements/*.txt) CMakeLists.txt package.xml setup.py \
	$(wildcard msg/*.msg srv/*.srv action/*.action tools/tf2_msgs/msg/*.msg)
PYTEST_ARGS ?=

.PHONY: setup demo test test-jazzy lint clean

setup: $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	tools/setup_env.sh $(VENV)
	touch $@

demo: setup
	$(PY) -m posecrafter_ros.ros.demo --data test/data/posed_pairs_fixture

test: setup
	$(PY) -m pytest test $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check posecrafter_ros test scripts launch
	$(PY) -m ruff format --check posecrafter_ros test scripts launch

# The ROS-facing tests again on ROS 2 Jazzy's rclpy (Ubuntu 24.04 robots); CI runs both.
VENV_JAZZY ?= .venv-jazzy
ROS_TESTS := test/test_ros_node.py test/test_launch_files.py test/test_ros_conversions.py \
	test/test_ros_lifecycle.py

$(VENV_JAZZY)/.setup-complete: $(SETUP_INPUTS)
	ROS_DISTRO=jazzy tools/setup_env.sh $(VENV_JAZZY)
	touch $@

test-jazzy: $(VENV_JAZZY)/.setup-complete
	$(VENV_JAZZY)/bin/python -m pytest $(ROS_TESTS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(VENV_JAZZY) build .pytest_cache
