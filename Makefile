# `make run`: set up .venv and run the default boosting job. `make test`: set up and test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# MadryLab's robustness pins torchvision, which breaks CPU-only installs; the cross-check
# tests need only its attacker and models, so it goes in without its dependencies.
ROBUSTNESS := robustness==1.2.1.post2

.PHONY: setup run test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e '.[dev,madry,slurm]'
	$(PY) -m pip install --no-deps $(ROBUSTNESS)
	touch $@

run: $(STAMP)
	$(PY) run_boost.py

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_boost.py
	$(PY) benchmarks/bench_run.py

clean:
	rm -rf $(VENV) .pytest_cache
