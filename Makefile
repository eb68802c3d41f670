# WildPose set-up and jobs. `make demo` and `make test` each build what they need first (the virtual
# environment only when it is missing or setup.cfg changed), so both work on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
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

.PHONY: demo test bench venv system-packages clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[torch,test]"
	touch $(STAMP)

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

test: $(STAMP) system-packages
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/wildpose bench --engine-only
	$(BIN)/wildpose bench --end-to-end

clean:
	rm -rf $(VENV) *.egg-info
