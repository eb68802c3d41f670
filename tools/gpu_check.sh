#!/usr/bin/env bash
# The GPU checks in one run, for a machine lent for a few minutes: engine bench (eager vs compiled),
# GPU parity tests, concurrent streams, crowds (1, 3, 6 people). Results go to $OUT (default
# ./gpu-check). Wheels the machine lacks (PyAV, pyzmq for Python 3.12) can be put in $WHEELS; each
# step has a time limit, so a slow one cannot eat the others' time; STEPS picks and orders them.
# tools/gpu_carry.sh gathers the wheels, clips and detector below into .carry/ (carry .carry/wheels, .carry/gpu).
#   WHEELS=.carry/wheels STREAMS_SOURCE=.carry/gpu/people-640x480-30fps.mp4 CROWD_SOURCE=.carry/gpu/pose_squats.mp4 \
#   CROWD_DETECTOR=.carry/gpu/yolox_nano.onnx STEPS="bench tests streams crowd" bash tools/gpu_check.sh
# Step inductor (not in the default STEPS): `bench --inductor`, VARIANTS (comma-separated), INDUCTOR_BATCH, INDUCTOR_S.
# Step host (not in the default STEPS; no GPU used, the host's cores are what it measures): `bench --capture`
# on STREAMS_SOURCE with CAPTURE_COUNTS (default 16,64), then `bench --smooth-stage` with SMOOTH_COUNTS
# (default 16,48); HOST_S limits each.
# Also: COUNTS (streams), BENCH_BATCH, BENCH_PATHS (e.g. eager,compiled,compiled-whole,compiled-frozen), BENCH_RESTARTS,
# CROPS (streams and crowd once per mode: host, the default, and/or device: crops cut on the GPU,
# `--device-crops`), OVERLAP (streams once per mode: on, the default, and/or off: `--no-overlap`, inference
# waits for each batch before reading the next), and each step's time limit in seconds: BENCH_S, TESTS_S,
# STREAMS_S, CROWD_S (per mode).
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$PWD/gpu-check}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WILDPOSE_CACHE="${WILDPOSE_CACHE:-/tmp/wildpose-cache}"
if ! python3 -c "import wildpose" 2>/dev/null; then  # a checkout, not installed: import it as `wildpose`
  mkdir -p /tmp/wildpose-pkg && ln -sfn "$ROOT" /tmp/wildpose-pkg/wildpose
  export PYTHONPATH="/tmp/wildpose-pkg${PYTHONPATH:+:$PYTHONPATH}"
fi
S=$(date +%s); step() { echo "[$(( $(date +%s) - S )) s] $*" | tee -a "$OUT/steps.txt"; }
[ -n "${WHEELS:-}" ] && python3 -m pip install --no-index --no-deps -q "$WHEELS"/*.whl > /dev/null 2>&1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
} > "$OUT/gpu.txt" 2>&1; cat "$OUT/gpu.txt"
cd "$ROOT"
bench() {
  timeout -k 5 "${BENCH_S:-250}" python3 -m wildpose.tools.cli bench --gpu --presets paper --batch "${BENCH_BATCH:-1,8,64}" \
    --paths "${BENCH_PATHS:-eager,compiled}" \
    --seconds 1.5 --restarts "${BENCH_RESTARTS:-1}" --json "$OUT/bench_gpu.json" > "$OUT/bench_gpu.md" 2> "$OUT/bench_gpu.log"
  step "bench --gpu exit $?"; cat "$OUT/bench_gpu.md"
}
inductor() {  # the compiled path's settings at one batch size, each with where its time goes
  timeout -k 5 "${INDUCTOR_S:-300}" python3 -m wildpose.tools.cli bench --inductor --variants "${VARIANTS:-eager,symbolic,fixed}" \
    --batch "${INDUCTOR_BATCH:-64}" --json "$OUT/inductor.json" > "$OUT/inductor.md" 2> "$OUT/inductor.log"
  step "bench --inductor exit $?"; cat "$OUT/inductor.md"
}
host() {  # the capture and smoothing stages' host CPU with the many-stream machine's cores; no GPU used
  timeout -k 10 "${HOST_S:-150}" python3 -m wildpose.tools.cli bench --capture "${CAPTURE_COUNTS:-16,64}" --seconds 10 \
    ${STREAMS_SOURCE:+--source "$STREAMS_SOURCE"} --json "$OUT/capture.json" > "$OUT/host.md" 2> "$OUT/host.log"
  step "bench --capture exit $?"
  timeout -k 10 "${HOST_S:-150}" python3 -m wildpose.tools.cli bench --smooth-stage "${SMOOTH_COUNTS:-16,48}" --seconds 10 \
    --json "$OUT/smooth_stage.json" >> "$OUT/host.md" 2>> "$OUT/host.log"
  step "bench --smooth-stage exit $?"; cat "$OUT/host.md"
}
tests() {
  timeout -k 5 "${TESTS_S:-360}" python3 -m pytest -q -rs --tb=short -p no:cacheprovider tests/engine/test_gpu_engines.py \
    > "$OUT/tests.txt" 2>&1
  step "GPU tests exit $?"; grep -E "^E |FAILED|passed|failed|SKIPPED" "$OUT/tests.txt" | cut -c1-300 | tail -12
}
crops_args() { [ "$1" = device ] && echo "--backend torch --device-crops"; }
streams() {
  local paper crops overlap mode
  paper=$(python3 -c "from wildpose.engine import default_model; print(default_model.untrained_checkpoint('paper', 0))")
  for crops in ${CROPS:-host}; do
    for overlap in ${OVERLAP:-on}; do
      mode="$crops"; [ "$overlap" = off ] && mode="$crops-no-overlap"
      rm -f "$WILDPOSE_CACHE"/bench/streams-*.log  # this mode's logs only
      # shellcheck disable=SC2046  # the crop options are separate words
      timeout -k 10 "${STREAMS_S:-200}" python3 -m wildpose.tools.cli bench --streams "${COUNTS:-16,32,48}" \
        ${STREAMS_SOURCE:+--source "$STREAMS_SOURCE"} --model "$paper" $(crops_args "$crops") \
        $([ "$overlap" = off ] && echo --no-overlap) \
        --json "$OUT/streams-$mode.json" > "$OUT/streams-$mode.md" 2> "$OUT/streams-$mode.log"
      step "streams ($crops crops, overlap $overlap) exit $?"; cat "$OUT/streams-$mode.md"
      mkdir -p "$OUT/streams-$mode-logs"; cp "$WILDPOSE_CACHE"/bench/streams-*.log "$OUT/streams-$mode-logs/" 2>/dev/null
    done
  done
}
crowd() {
  local mode
  for mode in ${CROPS:-host}; do
    # shellcheck disable=SC2046
    timeout -k 10 "${CROWD_S:-300}" python3 -m wildpose.tools.cli bench --crowd ${CROWD_SOURCE:+--source "$CROWD_SOURCE"} \
      ${CROWD_DETECTOR:+--detector "$CROWD_DETECTOR"} $(crops_args "$mode") --json "$OUT/crowd-$mode.json" \
      > "$OUT/crowd-$mode.md" 2> "$OUT/crowd-$mode.log"
    step "crowd ($mode crops) exit $?"; cat "$OUT/crowd-$mode.md"
  done
}
for name in ${STEPS:-bench tests streams crowd}; do "$name"; done
# At most 8 files come back from a lent machine: the tables stay loose, everything else goes in one archive.
tar -czf /tmp/gpu-check-all.tgz -C "$OUT" . && mv /tmp/gpu-check-all.tgz "$OUT/all.tgz" && \
  find "$OUT" -type f ! -name '*.md' ! -name steps.txt ! -name gpu.txt ! -name all.tgz -delete
