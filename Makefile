# Two commands on a fresh machine:  make demo  |  make test
# Each builds (once) the venv in .venv: CPU torch, ROS 2 Kilted wheels from PyPI, this
# package's interfaces compiled by rosidl, and the package itself (editable).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-complete
SETUP_INPUTS := tools/setup_env.sh $(wildcard requirements/*.txt) CMakeLists.txt package.xml setup.py \
	$(wildcard msg/*.msg srv/*.srv action/*.action tools/tf2_msgs/msg/*.msg)
PYTEST_ARGS ?=

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	tools/setup_env.sh $(VENV)
	touch $@

demo: setup
	$(PY) -m posecrafter_ros.cli.demo --data test/data/posed_pairs_fixture

test: setup
	$(PY) -m pytest test $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache
