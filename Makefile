# Two commands on a fresh machine with Python >= 3.10:
#   make demo   trains the pendulum swing-up and writes plots + an animation to runs/pendulum
#   make test   lint + the test suite (notebooks executed in quick mode, strict docs build)
#   make docs   the documentation site, strictly, into site/ (`.venv/bin/mkdocs serve` previews it)
#   make notebooks  re-executes every notebook in full mode and stores its outputs
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench docs notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,rl,brax,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/diffsim train pendulum --plots --out runs/pendulum

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow" -n auto --dist loadfile --no-loadscope-reorder

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict

notebooks: $(STAMP)
	$(BIN)/python docs/execute_notebooks.py

bench: $(STAMP)
	$(BIN)/python benchmarks/rollout_throughput.py
	$(BIN)/python benchmarks/trebuchet_aiming.py

clean:
	rm -rf $(VENV) runs build dist site .cache *.egg-info
