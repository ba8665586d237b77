#!/usr/bin/env bash
# Issue 14's device session: everything to measure on a lent GPU machine, in one prepared run.
#
#   here:  bash benchmarks/gpu_wheels.sh          (the packages that machine lacks, into .whl/)
#   there: OUT=<folder> LIMIT=<seconds> bash benchmarks/gpu_session.sh
#   a dry run here: OUT=/tmp/x PY=.venv/bin/python NO_INSTALL=1 PROFILE=tiny bash benchmarks/gpu_session.sh
#
# The GPU machine's python3 has torch with CUDA but none of the site's other packages and no
# registry; .whl/ carries them. The steps run in order of value, each with its own time limit, and
# each writes its result under $OUT before the next starts, so a session cut short still returns
# what it finished:
#   1. `mkdocs build --strict` of the full profile on the mnist backend from an empty cache
#      (the tiny IF fp16 equality check and tests/test_deepfloyd.py run beside it: they take seconds and
#      their timing is not read);
#   2. Part B training speed per implementation variant (benchmarks/bench_partb_train.py), alone;
#   3. every run's manifest (name, compute seconds, device, metrics: the judge tables) as one JSON,
#      the build log, GPU memory and load sampled every 0.5 s, and the built site.
set -u
: "${OUT:?set OUT to the folder that comes back}"
LIMIT=${LIMIT:-540}          # seconds this whole script may take
BENCH_S=${BENCH_S:-100}      # seconds kept for the training-speed benchmark
PACK_S=25                    # seconds kept for packing the results
PY=${PY:-python3}            # there: the image's python3, which holds torch with CUDA
PROFILE=${PROFILE:-full}
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( LIMIT - $(elapsed) )); }
log() { echo "[$(elapsed) s] $*" | tee -a "$OUT/session.log"; }

log "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo +dirty)"
nvidia-smi >> "$OUT/session.log" 2>&1
[ -n "${NO_INSTALL:-}" ] || $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >> "$OUT/session.log" 2>&1 || { log "installing .whl/ failed"; exit 1; }
export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# Every module the build imports, so that a missing one stops the session here, not minutes in.
$PY -c "
import torch, diffusers, transformers, accelerate, safetensors, scipy, jinja2, matplotlib, PIL, tqdm, onnx
import markdown, pathspec, pygments, yaml, click, mkdocs.commands.build, material, pymdownx, mkdocs_gen_files
import mkdocs_literate_nav, mkdocs_glightbox, mkdocstrings, mkdocstrings_handlers.python, latex2mathml, selectolax
import mnist, diffusion_lab
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA',
      'diffusers', diffusers.__version__, 'transformers', transformers.__version__, 'onnx', onnx.__version__)
" 2>&1 | tee -a "$OUT/session.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { log "a module the build needs is missing"; exit 1; }
log "installed"

nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -lms 500 > "$OUT/gpu_usage.csv" 2>&1 &
SAMPLER=$!

# 1. The full site (the Makefile's settings, without its venv), and the IF check beside it.
export DIFFUSION_LAB_PROFILE=$PROFILE DIFFUSION_LAB_BACKEND=mnist DIFFUSION_LAB_FORCE= DIFFUSION_LAB_SEED=0 \
       DIFFUSION_LAB_CACHE="$PWD/.cache" DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1
( timeout 120 $PY benchmarks/if_cuda_equality.py --json "$OUT/if_fp16.json" > /tmp/if_fp16.log 2>&1
  echo "exit $?" >> /tmp/if_fp16.log
  timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_deepfloyd.py >> /tmp/if_fp16.log 2>&1
  echo "pytest exit $?" >> /tmp/if_fp16.log ) &
IF_CHECK=$!
SITE_S=$(( $(left) - BENCH_S - PACK_S ))
log "site build ($PROFILE, mnist), at most ${SITE_S} s"
timeout "$SITE_S" $PY -m mkdocs build --strict > "$OUT/build.log" 2>&1
status=$?
[ "$status" -eq 124 ] && why="cut at its time limit; the runs finished before are in the cache" || why="finished"
log "site build exit $status ($why)"
wait $IF_CHECK
{ echo "--- if_cuda_equality"; cat /tmp/if_fp16.log; } >> "$OUT/session.log"

# 2. Training speed, with nothing else on the GPU.
BENCH_LIMIT=$(( $(left) - PACK_S - 10 ))
if [ "$BENCH_LIMIT" -gt 20 ]; then
    log "training-speed benchmark, at most ${BENCH_LIMIT} s"
    timeout $(( BENCH_LIMIT + 10 )) $PY benchmarks/bench_partb_train.py --time-limit "$BENCH_LIMIT" \
        --json "$OUT/train_speed.json" >> "$OUT/session.log" 2>&1
    log "benchmark exit $?"
else
    log "no time left for the training-speed benchmark"
fi

# 3. What the runs recorded, and the site.
kill $SAMPLER 2>/dev/null
$PY benchmarks/gpu_summary.py "$PWD/.cache" "$OUT/runs.json" >> "$OUT/session.log" 2>&1
[ -d site ] && tar czf "$OUT/site.tgz" site 2>> "$OUT/session.log"
[ -f "$OUT/site.tgz" ] && [ "$(stat -c %s "$OUT/site.tgz")" -gt 15000000 ] && \
    { rm "$OUT/site.tgz"; tar czf "$OUT/site.tgz" site/part-b site/build 2>> "$OUT/session.log"; }
log "done"
