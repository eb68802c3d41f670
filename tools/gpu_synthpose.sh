#!/usr/bin/env bash
# Issue #5 on a lent GPU: fine-tune the bundled demo weights with re-posed limbs, with faces on the
# figures, with faces and folded elbows, or with none of these (VARIANT=repose, faces, fold or plain:
# the same start, seeds and steps; FOLD sets fold's probability per elbow, default 0.25), or train them
# long at the demo's first learning rate (VARIANT=long: configs/synthpose_long_gpu.toml, 5000 steps,
# scoring the wild test and train takes after each quarter; INIT=checkpoint.pt continues from another
# start, such as the last session's long.pt), then score the result per joint on the 1000 held-out wild
# samples (drawn with faces for faces, fold and long). VARIANT=mixed is long's schedule from the bundled
# weights with half the figures faceless (configs/synthpose_mixed_gpu.toml), scored without faces and with.
# Each variant fits one device call (~4 minutes on an H200 with 16 cores; long and mixed ~8.5).
# Results go to $OUT (default ./gpu-synthpose): train-V.log, metrics-V.csv, eval-V.md/.json, V.pt in parts
# (V.pt.part-*, V.pt.sha256: a lent machine returns no file over 16 MiB).
# The GPU machines lack tqdm and ../shared: bring the tqdm wheel in $WHEELS and the CMU BVH files in $MOCAP
# (tools/gpu_carry.sh puts them in .carry/wheels-train and .carry/cmu_mocap).
#   VARIANT=faces WHEELS=.carry/wheels-train MOCAP=.carry/cmu_mocap bash tools/gpu_synthpose.sh
# DEVICE, STEPS_PER_EPOCH and EVAL_SIZE override the GPU sizes (a CPU smoke run: DEVICE=cpu STEPS_PER_EPOCH=2);
# LOADER=1 first measures the data loader alone (`wildpose bench --loader`, ~1 minute).
# PRECISION=bf16 trains under bfloat16 autocast (default fp32, as the bundled weights). Each logged interval
# of train-V.log ends with the share of a step spent waiting for the loader: high, and rendering is the
# limit (more cores); low, and the update is (try bf16).
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$PWD/gpu-synthpose}"; mkdir -p "$OUT"
VARIANT="${VARIANT:-repose}"
FOLD_ELBOWS=0.0
BASE=synthpose_finetune_gpu.toml
case "$VARIANT" in
  repose) REPOSE=0.5; FACES="" ;;
  faces) REPOSE=0.0; FACES="\nfaces = true" ;;
  fold) REPOSE=0.0; FACES="\nfaces = true"; FOLD_ELBOWS="${FOLD:-0.25}" ;;
  plain) REPOSE=0.0; FACES="" ;;
  long) REPOSE=0.0; FACES=""; BASE=synthpose_long_gpu.toml ;;  # its config draws faces itself
  mixed) REPOSE=0.0; FACES=""; BASE=synthpose_mixed_gpu.toml ;;  # half its figures with faces, by config
  *) echo "VARIANT must be repose, faces, fold, plain, long or mixed, got '$VARIANT'" >&2; exit 2 ;;
esac
EVAL_FACES=$([ -n "$FACES" ] || [ "$VARIANT" = long ] && echo --faces)
if [ -n "${INIT:-}" ]; then
  INIT="$(cd "$(dirname "$INIT")" 2>/dev/null && pwd)/$(basename "$INIT")"
  [ -f "$INIT" ] || { echo "no checkpoint at INIT=$INIT" >&2; exit 2; }
fi
export PYTHONUNBUFFERED=1
if ! python3 -c "import wildpose" 2>/dev/null; then  # a checkout, not installed: import it as `wildpose`
  mkdir -p /tmp/wildpose-pkg && ln -sfn "$ROOT" /tmp/wildpose-pkg/wildpose
  export PYTHONPATH="/tmp/wildpose-pkg${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -n "${WHEELS:-}" ] && python3 -m pip install --no-index --no-deps -q "$WHEELS"/*.whl > /dev/null 2>&1
MOCAP_DIR="$(cd "${MOCAP:-$ROOT/../shared/data/cmu_mocap}" 2>/dev/null && pwd)" \
  || { echo "no CMU BVH folder at ${MOCAP:-../shared/data/cmu_mocap}: set MOCAP" >&2; exit 2; }
WORKERS=$(( $(nproc) > 2 ? $(nproc) - 2 : 0 ))
# The config with absolute paths (it is read from /tmp), the variant's re-posing, folds and faces, the
# mocap folder, and the start (INIT) and steps when given.
CONFIG="/tmp/synthpose-finetune-$VARIANT.toml"
sed -e "s#\"\.\./weights/#\"$ROOT/weights/#" -e "s#^repose_limbs = .*#repose_limbs = $REPOSE\nfold_elbows = $FOLD_ELBOWS#" \
    -e "s#^format = \"synthpose\"\(.*\)#format = \"synthpose\"\1\nmocap = \"$MOCAP_DIR\"$FACES#" \
    ${STEPS_PER_EPOCH:+-e "s#^steps_per_epoch = .*#steps_per_epoch = $STEPS_PER_EPOCH#"} \
    ${INIT:+-e "s#^init = .*#init = \"$INIT\"#"} \
    "$ROOT/configs/$BASE" > "$CONFIG"
RUN="/tmp/synthpose-finetune-$VARIANT"
rm -rf "$RUN"
S=$(date +%s); step() { echo "[$(( $(date +%s) - S )) s] $VARIANT: $*" | tee -a "$OUT/steps.txt"; }
if [ -n "${LOADER:-}" ]; then  # LOADER=1: first the loader alone with the run's workers, OpenCV one thread a worker and default (~1 minute)
  timeout -k 5 120 python3 -m wildpose.tools.cli bench --loader "$WORKERS" --seconds 10 --mocap "$MOCAP_DIR" \
    > "$OUT/loader.md" 2>> "$OUT/train-$VARIANT.log"
  step "loader bench exit $?"; cat "$OUT/loader.md"
fi
timeout -k 10 "${TRAIN_S:-$(case "$VARIANT" in long|mixed) echo 540 ;; *) echo 420 ;; esac)}" python3 -m wildpose.tools.cli train --config "$CONFIG" --output "$RUN" \
  --device "${DEVICE:-cuda}" --workers "$WORKERS" --precision "${PRECISION:-fp32}" > "$OUT/train-$VARIANT.log" 2>&1
step "train exit $?"; tail -3 "$OUT/train-$VARIANT.log" | cut -c1-300
grep -o "[0-9.]* s/step, [0-9]* % of it waiting for data" "$OUT/train-$VARIANT.log" | tail -3
grep -o "eval [0-9]*_synthpose after [a-z]* epoch [0-9]*: samples [0-9]*, error_2d_px [0-9.]*, pck@0.1 [0-9.]*" \
  "$OUT/train-$VARIANT.log"
cp "$RUN/metrics.csv" "$OUT/metrics-$VARIANT.csv" 2>/dev/null
[ -f "$RUN/last.pt" ] || { step "no checkpoint"; exit 1; }
# A lent machine returns files of at most 16 MiB and last.pt (weights + trainer state) is 18 MB: it comes
# back in parts with its digest (here: cat V.pt.part-* > V.pt; sha256sum -c V.pt.sha256).
(cd "$RUN" && sha256sum last.pt | sed "s/last.pt/$VARIANT.pt/" > "$OUT/$VARIANT.pt.sha256")
split -b 15m "$RUN/last.pt" "$OUT/$VARIANT.pt.part-"
score() {  # score NAME [--faces]: last.pt on the 1000 held-out wild samples, per joint
  timeout -k 5 "${EVAL_S:-150}" python3 -m wildpose.tools.cli eval "$RUN/last.pt" --format synthpose \
    --size "${EVAL_SIZE:-1000}" --per-joint "${@:2}" --mocap "$MOCAP_DIR" --workers "$WORKERS" --device "${DEVICE:-cuda}" \
    --json "$OUT/eval-$1.json" > "$OUT/eval-$1.md" 2>> "$OUT/train-$VARIANT.log"
  step "eval $1 exit $?"; grep -E "pck@0.1 |lr_swaps|wrist|mpjpe_reference" "$OUT/eval-$1.md"
}
# shellcheck disable=SC2086  # EVAL_FACES is empty or one word
score "$VARIANT" $EVAL_FACES
if [ "$VARIANT" = mixed ]; then score "$VARIANT-faces" --faces; fi  # trained on both: these samples with faces too
