# Inverse Workbench. `make run` serves the app, `make test` runs the suite, `make bench` regenerates
# the whole of BENCHMARKS.md, `make bench-quick` is the benchmarks' correctness gate (CI).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PORT   ?= 8501
DOMAINS ?= ot mri tumor eels pde
# the benchmarks that are parts of a domain or of none; with DOMAINS, `ot --grid`, `ot --cpu-targets` and
# `ot --cloud10k` they write every section of BENCHMARKS.md (benchmarks/gpu.py needs a GPU
# and is run by hand)
BENCH_PARTS ?= mri_tune mri_dds mri_diagnose tumor_patient pde_rgnp pde_rgnp_diagnose scale startup
export OMP_WAIT_POLICY := PASSIVE
export VTK_DEFAULT_OPENGL_WINDOW := vtkEGLRenderWindow

.PHONY: setup run test test-fast bench bench-quick lint format chromium clean

$(STAMP): pyproject.toml
	@echo "== creating $(VENV) and installing the workbench (torch pinned to the CPU build first)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q "torch==2.13.0" -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

chromium:
	@if [ -x /usr/bin/chromium ]; then echo "== chromium present: /usr/bin/chromium"; \
	else echo "== installing Debian's chromium (browser tests and figure export)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; fi

run: setup
	@echo "== serving Inverse Workbench on http://127.0.0.1:$(PORT)"
	$(BIN)/python -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
	  --server.headless true --browser.gatherUsageStats false

test: setup chromium
	@echo "== running the test suite"
	@$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser" -x

bench: setup
	@for d in $(DOMAINS) $(BENCH_PARTS); do echo "== benchmark $$d"; \
	  $(BIN)/workbench bench $$d || exit $$?; done
	@echo "== benchmark ot --grid"; $(BIN)/workbench bench ot --grid
	@echo "== benchmark ot --cloud10k"; $(BIN)/workbench bench ot --cloud10k --cap-s 240
	@echo "== benchmark ot --cpu-targets"; $(BIN)/workbench bench ot --cpu-targets --cap-s 40

# Every domain at CI scale, one thread; fails on correctness only (not converged, NaN, a peer row
# missing: workbench.bench.check), never on time. The total wall time is printed at the end.
bench-quick: setup
	@t0=$$(date +%s); for d in $(DOMAINS); do echo "== bench-quick $$d"; \
	  OMP_NUM_THREADS=1 $(BIN)/workbench bench $$d --quick --check || exit $$?; done; \
	  echo "== bench-quick: all domains passed in $$(( $$(date +%s) - t0 )) s"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
