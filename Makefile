# Every target creates .venv when it is missing (pip only; torch/torchaudio pins are in pyproject.toml).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv run test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[notebooks,dev]"
	touch $(STAMP)

run: $(STAMP)  ## the main job: notebooks 01-05 on the built-in melody set (outputs in runs/default)
	$(PY) -m wav2tok_core.cli run --params notebooks/params/default.yaml --run_dir runs/default

test: $(STAMP)  ## the test suite
	$(PY) -m pytest -q

bench: $(STAMP)  ## speed benchmarks (print numbers)
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_search.py

clean:
	rm -rf $(VENV) runs
