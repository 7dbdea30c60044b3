#!/usr/bin/env bash
# The GPU measurements in one go, within 8 minutes of wall time, every result in one folder.
#
#   benchmarks/gpu_check.sh [OUT_DIR]                # on a CUDA machine, from the repository root
#   benchmarks/gpu_check.sh --cpu-dry-run [OUT_DIR]  # the same steps on the CPU with tiny budgets
#
# Steps (each under its own time limit; a step that fails or times out is recorded and the next
# one runs):
#   1. machine.txt      nvidia-smi, torch/CUDA versions
#   2. tests.txt        the CUDA tests (every test with "cuda" in its name; they skip without CUDA)
#   3. bench_histogram.txt   benchmarks/bench_histogram.py --device cuda
#   4. bench_train.txt       benchmarks/bench_train.py --device cuda (GEMM peak, histogram share
#                            of the step, trainer vs bare loop)
#   5. syncs.txt        a short job under torch.cuda.set_sync_debug_mode("warn"): every host sync
#                       inside the loop is listed (target: none but the logging ones)
#   6. deterministic.txt     two short trainer.deterministic=true jobs: identical metrics?
#   7. reference_job/   the reference's 500,000-image job on the embedded tiles, timed (target:
#                       under a minute on a current data-centre GPU), its job folder included
# summary.txt: each step's exit status and seconds. Exit status: 0 if every step passed.
# SKIP="tests bench_histogram" leaves those steps out (e.g. to rerun the rest).
set -uo pipefail

cd "$(dirname "$0")/.."
DRY=0
if [[ "${1:-}" == "--cpu-dry-run" ]]; then
  DRY=1
  shift
fi
OUT="${1:-gpu_check-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PY="${PYTHON:-python}"

if ((DRY)); then
  DEVICE=cpu
  HIST_ARGS=(--quick --reps 1)
  TRAIN_ARGS=(--quick --steps 3 --inputs 640)
  REF_INPUTS=640 SHORT_INPUTS=192
  T_TESTS=300 T_HIST=300 T_TRAIN=600 T_SYNC=120 T_DET=240 T_REF=120
else
  DEVICE=cuda
  HIST_ARGS=()
  TRAIN_ARGS=()
  REF_INPUTS=500000 SHORT_INPUTS=1280
  # Sums to 450 s: the 8-minute budget with half a minute of start-up to spare.
  T_TESTS=60 T_HIST=60 T_TRAIN=120 T_SYNC=30 T_DET=60 T_REF=120
fi

: >"$OUT/summary.txt"
FAILED=0
step() { # step NAME LIMIT_S OUTFILE COMMAND...
  local name=$1 limit=$2 file=$3
  shift 3
  if [[ " ${SKIP:-} " == *" $name "* ]]; then
    echo "$name skipped (SKIP)" | tee -a "$OUT/summary.txt"
    return
  fi
  local start rc ms
  start=$(date +%s%N)
  timeout --kill-after=5 "$limit" "$@" >"$OUT/$file" 2>&1
  rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  printf '%-16s rc=%-3s %4d.%d s  (limit %s s)  %s\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000 / 100)) "$limit" "$file" \
    | tee -a "$OUT/summary.txt"
  ((rc == 0)) || FAILED=1
}

{
  date -u
  echo "device: $DEVICE (dry run: $DRY)"
  nvidia-smi 2>&1 || echo "no nvidia-smi"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available()); print(torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device")'
  uptime
} >"$OUT/machine.txt" 2>&1

if ((!DRY)); then
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
    echo "no CUDA device: run with --cpu-dry-run to check the script on the CPU" | tee -a "$OUT/summary.txt"
    exit 2
  }
fi

step tests "$T_TESTS" tests.txt "$PY" -m pytest -q -rs -k "cuda" tests/
step bench_histogram "$T_HIST" bench_histogram.txt \
  "$PY" benchmarks/bench_histogram.py --device "$DEVICE" "${HIST_ARGS[@]}"
step bench_train "$T_TRAIN" bench_train.txt \
  "$PY" benchmarks/bench_train.py --device "$DEVICE" "${TRAIN_ARGS[@]}"

step syncs "$T_SYNC" syncs.txt "$PY" - "$DEVICE" "$OUT/syncs_job" "$SHORT_INPUTS" <<'EOF'
"""A short job with every host sync reported (CUDA's sync debug mode): where are they?"""
import sys, tempfile, warnings, collections, traceback
import torch
from hydra import compose, initialize_config_dir
from pathlib import Path
import histae.config  # noqa: F401
from histae.train import train

device, job_dir, inputs = sys.argv[1], sys.argv[2], int(sys.argv[3])
with initialize_config_dir(str(Path("conf").resolve()), version_base="1.3"):
    cfg = compose("config", overrides=[f"trainer.device={device}", f"trainer.max_inputs={inputs}",
                                       "trainer.val_every_inputs=100000", "trainer.save_checkpoint=false"])
where = collections.Counter()
def record(message, category, filename, lineno, file=None, line=None):
    frames = [f for f in traceback.extract_stack() if "/histae/" in f.filename]
    where[f"{frames[-1].filename.split('/histae/')[-1]}:{frames[-1].lineno}" if frames else "?"] += 1
warnings.showwarning = record
warnings.simplefilter("always")  # every sync, not only the first at each line
if device.startswith("cuda"):
    torch.cuda.set_sync_debug_mode("warn")
summary = train(cfg, job_dir)
torch.cuda.set_sync_debug_mode(0) if device.startswith("cuda") else None
steps = summary["steps"]
print(f"{steps} steps; host syncs by line of histae (count, per step):")
for place, count in where.most_common():
    print(f"  {place:40s} {count:6d} {count / steps:6.2f}")
print("none" if not where else f"{sum(where.values())} syncs in all")
EOF

step deterministic "$T_DET" deterministic.txt bash -c "
  set -e
  for run in a b; do
    $PY -m histae trainer.device=$DEVICE trainer.deterministic=true trainer.max_inputs=$SHORT_INPUTS \
      trainer.val_every_inputs=$((SHORT_INPUTS / 2)) trainer.save_checkpoint=false hydra.run.dir=$OUT/det_\$run
  done
  if cmp $OUT/det_a/metrics.csv $OUT/det_b/metrics.csv; then
    echo 'deterministic: the two runs wrote identical metrics.csv'
  else
    echo 'deterministic: metrics.csv DIFFER'; diff $OUT/det_a/metrics.csv $OUT/det_b/metrics.csv; exit 1
  fi"

step reference_job "$T_REF" reference_job.txt \
  "$PY" -m histae trainer.device="$DEVICE" trainer.max_inputs="$REF_INPUTS" \
  trainer.val_every_inputs=100000 hydra.run.dir="$OUT/reference_job"
"$PY" - "$OUT/reference_job/summary.json" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except OSError:
    sys.exit("reference job: no summary.json")
print(f"reference job: {s['inputs']} images in {s['wall_time']:.1f} s "
      f"({s['images_per_second']} img/s) on {s['device']}; target < 60 s on a GPU")
EOF

echo "results in $OUT" | tee -a "$OUT/summary.txt"
exit "$FAILED"
