# Two commands: `make demo` and `make test`. Each sets itself up in .venv first.
# `make test-fast` is the contributor loop: the suite without the SLURM cluster (no root) and the slow tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=python3"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[train,trackers,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m scaling.demo

test: $(STAMP)
	$(BIN)/ruff check scaling tests bench analysis hydra_plugins
	bash tests/slurm.sh start
	$(BIN)/pytest -q -ra; status=$$?; bash tests/slurm.sh stop; exit $$status

test-fast: $(STAMP)
	$(BIN)/ruff check scaling tests bench analysis hydra_plugins
	$(BIN)/pytest -q -ra -m "not slurm and not slow"

lint: $(STAMP)
	$(BIN)/ruff check scaling tests bench analysis hydra_plugins

bench: $(STAMP)
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/fit_speed.py
	$(BIN)/python bench/sweep_overhead.py
	$(BIN)/python bench/extrapolation.py

clean:
	rm -rf $(VENV) outputs multirun reports
