# Set-up is part of every target: the virtual environment is created and the
# package installed on first use (torch pinned to the CPU wheel via constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install browser clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sanitize demo --workdir demo --expectations validations/digits_demo.json

# Headless Chromium for the report's browser tests (tests/test_report.py); Debian's package, installed once.
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver)

test: $(STAMP) browser
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf demo bench/_data .pytest_cache test-artifacts
