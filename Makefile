# WildPose set-up and jobs. `make demo` and `make test` each build the virtual environment first
# (only when it is missing or setup.cfg changed), so both work on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# PyTorch pinned; on the project's CPU machines pip takes this version's CPU wheel from local disk.
TORCH_PIN := torch==2.13.0

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[torch,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wildpose demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/wildpose bench --engine-only

clean:
	rm -rf $(VENV) *.egg-info
