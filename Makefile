# Two commands on a fresh machine with Python >= 3.10:
#   make demo   trains the pendulum swing-up and writes plots + an animation to runs/pendulum
#   make test   lint + the test suite (notebooks executed in quick mode)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,rl]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/diffsim train pendulum --plots --out runs/pendulum

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/rollout_throughput.py
	$(BIN)/python benchmarks/trebuchet_aiming.py

clean:
	rm -rf $(VENV) runs build dist *.egg-info
