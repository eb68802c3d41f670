# WildPose set-up and jobs. `make demo` and `make test` each build what they need first (the virtual
# environment only when it is missing or setup.cfg changed), so both work on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `wildpose serve` (PyTriton) runs from its own environment: PyTriton 0.7's Triton backend stub is built
# against NumPy 1 (under NumPy 2 it answers empty tensors), and OpenCV and pandas here need NumPy 2.
# The Python must have a shared libpython (pyenv's and Debian's do; SERVE_PYTHON=/usr/bin/python3).
SERVE_PYTHON ?= $(PYTHON)
SERVE_VENV ?= $(VENV)-serve
SERVE_STAMP := $(SERVE_VENV)/.installed
SERVE_PACKAGES := nvidia-pytriton==0.7.0 numpy==1.26.4 onnx==1.23.2 onnxruntime==1.32.0 tqdm==4.70.1
# PyTorch pinned; on the project's CPU machines pip takes this version's CPU wheel from local disk.
TORCH_PIN := torch==2.13.0
# What the tests need from Debian: GStreamer's RTSP server (a real RTSP source), run by the system
# Python that has `gi`; Chromium for the browser viewer; Node.js and npm for the JavaScript subscriber.
DEBIAN_TEST_PACKAGES := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav \
	chromium
# Node.js and npm for the JavaScript subscriber's test, from Debian only when no `npm` is installed
# (a NodeSource Node.js ships its own npm, which Debian's npm package conflicts with)
NODE_PACKAGES := nodejs npm

.PHONY: demo test bench venv serve-env system-packages clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[torch,test]"
	touch $(STAMP)

serve-env: $(SERVE_STAMP)

$(SERVE_STAMP): setup.cfg pyproject.toml Makefile
	test -x $(SERVE_VENV)/bin/python || $(SERVE_PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/python -m pip install --quiet "$(TORCH_PIN)" $(SERVE_PACKAGES)
	$(SERVE_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(SERVE_STAMP)

system-packages:
	@if ! command -v dpkg >/dev/null; then \
		echo "not a Debian system: install GStreamer's RTSP server yourself, or its tests skip"; exit 0; fi; \
	missing=$$(for p in $(DEBIAN_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done; \
		command -v npm >/dev/null || echo $(NODE_PACKAGES)); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

demo: $(STAMP)
	$(BIN)/wildpose demo

# two workers (pytest-xdist): much of the suite waits on processes, sockets and servers, so two
# tests at a time fill the two cores (591 s against 958 s one at a time, 2026-11-27)
test: $(STAMP) $(SERVE_STAMP) system-packages
	$(BIN)/python -m pytest -n 2

bench: $(STAMP)
	$(BIN)/wildpose bench --engine-only
	$(BIN)/wildpose bench --end-to-end

clean:
	rm -rf $(VENV) $(SERVE_VENV) *.egg-info
