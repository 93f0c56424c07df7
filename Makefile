# Every target creates .venv when it is missing (pip only; torch/torchaudio pins are in pyproject.toml).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv run test test-browser lab bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[notebooks,dev,speech-synth,pitch]"
	touch $(STAMP)

run: $(STAMP)  ## the main job: notebooks 01-05 on the built-in melody set (outputs in runs/default)
	$(PY) -m wav2tok_core.cli run --params notebooks/params/default.yaml --run_dir runs/default

test: $(STAMP)  ## the test suite (the browser test skips without Chromium: apt-get install -y chromium)
	$(PY) -m pytest -q

test-browser: $(STAMP)  ## only the JupyterLab test in headless Chromium
	$(PY) -m pytest -q -m browser

lab: $(STAMP)  ## JupyterLab on this venv, opened on the notebooks (paths resolve against this checkout)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: $(STAMP)  ## speed benchmarks (print numbers)
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_search.py

clean:
	rm -rf $(VENV) runs
