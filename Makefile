# One Makefile for humans and CI. `make demo` and `make test` each create .venv on their own.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help demo test lint bench fuzz presets-index clean

help:
	@echo "make demo   - create .venv, install llmfit, run the headline example"
	@echo "make test   - create .venv, install llmfit with test extras, run ruff, mypy and pytest"
	@echo "make bench  - run the benchmarks (accuracy, start-up, plan speed, model files, batch, presets): each target beside its measurement"
	@echo "make presets-index - regenerate configs/index.json (the built-in presets, validated) and configs/validators.pickle (the spec schemas) after editing configs/ or a spec module"
	@echo "make fuzz   - process-level fuzz of the installed llmfit, 10,000 runs (~45 min on 2 cores)"

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/llmfit fit 70b --dtype int4 --gpu a100-80 --context 8k; \
	rc=$$?; echo "(exit code $$rc: 0 = fits, 1 = does not fit)"; [ $$rc -le 1 ]

test: $(VENV)/.installed-test
	$(BIN)/ruff check llmfit tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Benchmarks print each target beside its measurement (and exit 1 when one is missed); `make bench` runs
# them all regardless and ends with the list of those that missed.
BENCHMARKS := accuracy finetune_accuracy startup plan_speed model_files batch presets_speed
bench: $(VENV)/.installed-test
	@missed=""; for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; \
	  $(BIN)/python benchmarks/$$b.py || missed="$$missed $$b"; echo; done; \
	  if [ -n "$$missed" ]; then echo "targets missed in:$$missed"; else echo "every benchmark met its targets"; fi

# The long form of tests/test_fuzz_process.py: prints internal errors, hangs, crashes, runs over 1 GiB.
FUZZ_RUNS ?= 10000
FUZZ_SEED ?= 0
fuzz: $(VENV)/.installed-test
	$(BIN)/python benchmarks/fuzz.py --runs $(FUZZ_RUNS) --seed $(FUZZ_SEED) --jobs 2

# configs/index.json: every built-in preset validated once, read at start-up without yaml or pydantic
# (llmfit/presets_index.py); tests/test_presets_index.py fails until it is regenerated after a change.
presets-index: $(VENV)/.installed
	$(BIN)/python -m llmfit.presets_index
	$(BIN)/python -m llmfit.validators

clean:
	rm -rf $(VENV) build dist *.egg-info
