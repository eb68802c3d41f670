#!/usr/bin/env bash
# Issue #5 on a lent GPU: fine-tune the bundled demo weights with re-posed limbs, with faces on the
# figures, with faces and folded elbows, or with none of these (VARIANT=repose, faces, fold or plain:
# the same start, seeds and steps; FOLD sets fold's probability per elbow, default 0.25), then score
# the result per joint on the 1000 held-out wild samples (drawn with faces for faces and fold). Each
# variant fits one device call (~4 minutes on an H200 with 16 cores).
# Results go to $OUT (default ./gpu-synthpose): train-V.log, metrics-V.csv, eval-V.md/.json, V.pt in parts
# (V.pt.part-*, V.pt.sha256: a lent machine returns no file over 16 MiB).
# The GPU machines lack tqdm and ../shared: bring the tqdm wheel in $WHEELS and the CMU BVH files in $MOCAP
# (tools/gpu_carry.sh puts them in .carry/wheels-train and .carry/cmu_mocap).
#   VARIANT=faces WHEELS=.carry/wheels-train MOCAP=.carry/cmu_mocap bash tools/gpu_synthpose.sh
# DEVICE, STEPS_PER_EPOCH and EVAL_SIZE override the GPU sizes (a CPU smoke run: DEVICE=cpu STEPS_PER_EPOCH=2);
# PRECISION=bf16 trains under bfloat16 autocast (default fp32, as the bundled weights). Each logged interval
# of train-V.log ends with the share of a step spent waiting for the loader: high, and rendering is the
# limit (more cores); low, and the update is (try bf16).
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$PWD/gpu-synthpose}"; mkdir -p "$OUT"
VARIANT="${VARIANT:-repose}"
FOLD_ELBOWS=0.0
case "$VARIANT" in
  repose) REPOSE=0.5; FACES="" ;;
  faces) REPOSE=0.0; FACES="\nfaces = true" ;;
  fold) REPOSE=0.0; FACES="\nfaces = true"; FOLD_ELBOWS="${FOLD:-0.25}" ;;
  plain) REPOSE=0.0; FACES="" ;;
  *) echo "VARIANT must be repose, faces, fold or plain, got '$VARIANT'" >&2; exit 2 ;;
esac
export PYTHONUNBUFFERED=1
if ! python3 -c "import wildpose" 2>/dev/null; then  # a checkout, not installed: import it as `wildpose`
  mkdir -p /tmp/wildpose-pkg && ln -sfn "$ROOT" /tmp/wildpose-pkg/wildpose
  export PYTHONPATH="/tmp/wildpose-pkg${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -n "${WHEELS:-}" ] && python3 -m pip install --no-index --no-deps -q "$WHEELS"/*.whl > /dev/null 2>&1
MOCAP_DIR="$(cd "${MOCAP:-$ROOT/../shared/data/cmu_mocap}" 2>/dev/null && pwd)" \
  || { echo "no CMU BVH folder at ${MOCAP:-../shared/data/cmu_mocap}: set MOCAP" >&2; exit 2; }
WORKERS=$(( $(nproc) > 2 ? $(nproc) - 2 : 0 ))
# The config with absolute paths (it is read from /tmp), the variant's re-posing, folds and faces, the mocap folder.
CONFIG="/tmp/synthpose-finetune-$VARIANT.toml"
sed -e "s#\"\.\./weights/#\"$ROOT/weights/#" -e "s#^repose_limbs = .*#repose_limbs = $REPOSE\nfold_elbows = $FOLD_ELBOWS#" \
    -e "s#^format = \"synthpose\"#format = \"synthpose\"\nmocap = \"$MOCAP_DIR\"$FACES#" \
    -e "s#^steps_per_epoch = .*#steps_per_epoch = ${STEPS_PER_EPOCH:-1000}#" \
    "$ROOT/configs/synthpose_finetune_gpu.toml" > "$CONFIG"
RUN="/tmp/synthpose-finetune-$VARIANT"
rm -rf "$RUN"
S=$(date +%s); step() { echo "[$(( $(date +%s) - S )) s] $VARIANT: $*" | tee -a "$OUT/steps.txt"; }
timeout -k 10 "${TRAIN_S:-420}" python3 -m wildpose.tools.cli train --config "$CONFIG" --output "$RUN" \
  --device "${DEVICE:-cuda}" --workers "$WORKERS" --precision "${PRECISION:-fp32}" > "$OUT/train-$VARIANT.log" 2>&1
step "train exit $?"; tail -3 "$OUT/train-$VARIANT.log" | cut -c1-300
grep -o "[0-9.]* s/step, [0-9]* % of it waiting for data" "$OUT/train-$VARIANT.log" | tail -3
cp "$RUN/metrics.csv" "$OUT/metrics-$VARIANT.csv" 2>/dev/null
[ -f "$RUN/last.pt" ] || { step "no checkpoint"; exit 1; }
# A lent machine returns files of at most 16 MiB and last.pt (weights + trainer state) is 18 MB: it comes
# back in parts with its digest (here: cat V.pt.part-* > V.pt; sha256sum -c V.pt.sha256).
(cd "$RUN" && sha256sum last.pt | sed "s/last.pt/$VARIANT.pt/" > "$OUT/$VARIANT.pt.sha256")
split -b 15m "$RUN/last.pt" "$OUT/$VARIANT.pt.part-"
timeout -k 5 "${EVAL_S:-150}" python3 -m wildpose.tools.cli eval "$RUN/last.pt" --format synthpose \
  --size "${EVAL_SIZE:-1000}" --per-joint ${FACES:+--faces} --mocap "$MOCAP_DIR" --workers "$WORKERS" --device "${DEVICE:-cuda}" \
  --json "$OUT/eval-$VARIANT.json" > "$OUT/eval-$VARIANT.md" 2>> "$OUT/train-$VARIANT.log"
step "eval exit $?"; grep -E "pck@0.1 |lr_swaps|wrist|mpjpe_reference" "$OUT/eval-$VARIANT.md"
