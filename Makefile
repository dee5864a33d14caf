# Two commands: `make demo` and `make test`. Each sets itself up in .venv first.
# `make test-fast` is the contributor loop: the suite without the SLURM cluster (no root) and the slow tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Two pytest-xdist workers, each running whole test modules (the SLURM modules on one worker together);
# tests/conftest.py schedules them (see there why).
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

.PHONY: setup demo test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=python3"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[train,trackers,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m scaling.cli.demo

test: lint
	bash tests/slurm.sh start
	$(BIN)/pytest -q -ra $(XDIST); status=$$?; bash tests/slurm.sh stop; exit $$status

test-fast: lint
	$(BIN)/pytest -q -ra $(XDIST) -m "not slurm and not slow"

lint: $(STAMP)
	$(BIN)/ruff check scaling tests bench analysis hydra_plugins

bench: $(STAMP)
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/fit_speed.py
	$(BIN)/python bench/sweep_overhead.py
	$(BIN)/python bench/extrapolation.py

clean:
	rm -rf $(VENV) outputs multirun reports
