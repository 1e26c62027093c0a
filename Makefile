# Set-up is part of every target: the virtual environment is built from the lock
# (requirements/lock.txt: every package pinned, with hashes) on first use, and again whenever
# the lock or pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/lock.txt
AIRFLOW_LOCK := requirements/airflow-lock.txt

# The CPU build of torch the lock pins (torch==2.13.0+cpu): from the wheel folder machines like
# the CI ones carry, otherwise from PyTorch's CPU index.
TORCH_WHEELS ?= /opt/wheels
ifneq ($(wildcard $(TORCH_WHEELS)/torch-*+cpu-*.whl),)
TORCH_SOURCE    := --find-links $(TORCH_WHEELS)
UV_TORCH_SOURCE := $(TORCH_SOURCE)
else
TORCH_SOURCE    := --extra-index-url https://download.pytorch.org/whl/cpu
UV_TORCH_SOURCE := $(TORCH_SOURCE) --index-strategy unsafe-best-match
endif

# `make lock` resolves with uv, from a virtual environment of its own.
UV_VERSION := 0.13.9
LOCK_VENV  := .venv-lock
UV         := $(LOCK_VENV)/bin/uv
# The platform the lock is for: the CI machines and the Dataflow image (apache/beam_python3.11_sdk).
UV_TARGET  := --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes
LOCK_EXTRAS := --extra test --extra bench --extra lineage

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo test bench install browser lock lock-upgrade clean

$(STAMP): $(LOCK) pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps $(TORCH_SOURCE) -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sanitize demo --workdir demo --expectations validations/digits_demo.json

# Headless Chromium and chromedriver for the browser tests (tests/test_report.py,
# tests/test_review_page.py): Debian's packages, installed when either is missing.
browser:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "make browser: installing Debian's chromium and chromium-driver (missing:$$missing)"; \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi

# One pytest-xdist worker per core; a test file stays on one worker, so its module fixtures run once.
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n auto --dist loadfile tests

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

$(UV):
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)

# Re-resolve after editing pyproject.toml or requirements/*.in|pins.txt, keeping every pin that
# still fits; `make lock-upgrade` moves everything to today's releases. Then run `make test`.
lock: $(UV)
	$(UV) pip compile pyproject.toml requirements/tools.in $(LOCK_EXTRAS) -c requirements/pins.txt \
	    $(UV_TARGET) $(UV_TORCH_SOURCE) $(UPGRADE) --custom-compile-command 'make lock' -o $(LOCK)
	{ echo "# requirements/lock.txt without its hashes, for pip -c beside a local project (written by make lock)"; \
	  sed -e '/^ *--hash=/d' -e 's/ \\$$//' $(LOCK); } > requirements/constraints.txt
	$(UV) pip compile requirements/airflow.in -c $(LOCK) \
	    $(UV_TARGET) $(UPGRADE) --custom-compile-command 'make lock' -o $(AIRFLOW_LOCK)

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

clean:
	rm -rf demo bench/_data .pytest_cache test-artifacts
