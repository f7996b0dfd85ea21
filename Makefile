# Outfall edge monitoring: one entry point for everyone (technicians, developers, CI).
# `make demo` and `make test` install what they need themselves: Debian packages with apt-get,
# Python packages (pinned in requirements.lock) into .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv system-deps demo test test-fast test-faults bench mpy clean

help:
	@echo "make demo         whole system locally: 3 simulated sites -> firmware -> MQTT -> gateway -> InfluxDB, HJ 212 platform, daily report"
	@echo "make test         the whole test suite (starts its own Mosquitto and InfluxDB on loopback)"
	@echo "make test-fast    pure tests only (no servers)"
	@echo "make test-faults  the whole-system fault scenarios, one line each (results/faults.json)"
	@echo "make bench        measured figures, written to results/"
	@echo "make mpy          compile the firmware to .mpy (mpy-cross) and its ROMFS image, under build/"

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { \
	  echo "python3 venv module missing: installing python3-venv"; \
	  $(if $(filter 0,$(shell id -u)),,sudo -n) apt-get update -qq && \
	  $(if $(filter 0,$(shell id -u)),,sudo -n) apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

system-deps: venv
	$(BIN)/python -c "from edgemon.dev.stack import ensure_installed; print(ensure_installed())"

demo: system-deps
	$(BIN)/edgemon demo

test: system-deps
	$(BIN)/pytest -q

test-faults: system-deps
	EDGEMON_FAULTS_LONG=1 $(BIN)/pytest -q -s tests/integration/test_system_faults.py tests/integration/test_gateway_faults.py

test-fast: venv
	$(BIN)/pytest -q -m "not integration"

bench: system-deps
	$(BIN)/python -m edgemon.bench

mpy: venv
	$(BIN)/python -c "from edgemon.dev.nodeproc import build_mpy, build_romfs; print('mpy  ', build_mpy()); print('romfs', build_romfs())"

clean:
	rm -rf $(VENV) build run results .pytest_cache
