#!/usr/bin/env bash
# Device run (on the GPU machine) for MoE on CUDA (ops/moe_experts): the cuda-labelled
# tests that cover it, then random MoE models synthesised in the same run (a 6-layer
# Qwen3-30B-A3B-shape and a 2-layer Mixtral-8x7B-shape, bf16) under
# `tide bench forward --device cuda` (prefill of batch x 128 tokens in one step, then
# decode steps): the new binary against the older ones carried with it, on the same card.
# Expects build/h-moe2-carry.tar.xz (carried; CARRY= to name another) holding
# h-moe2-carry/: tide (new), tide_dev (the device-only MoE path: the previous run's
# tide, built at 07:02 from the tree of aa5fcec), tide_host (the host-grouping MoE of
# f07a687; optional), ops_cuda_test, cuda_golden_test, decode_graph_cuda_test, lib/.
# Env: SKIP_TESTS=1, SKIP_BENCH=1, OPS_FILTER (gtest filter for ops_cuda_test),
# BATCHES (default 1,8,32,64), BINS (default "tide tide_dev tide_host").
# Output: test result lines, then the bench rows, then a short table last; full logs
# under $OUT.
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
CARRY=${CARRY:-build/h-moe2-carry.tar.xz}
mkdir -p /tmp/carry && tar -xJf $CARRY -C /tmp/carry
D=/tmp/carry/$(basename $CARRY .tar.xz)
export LD_LIBRARY_PATH=$D/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/gpu.txt
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  for t in ops_cuda_test cuda_golden_test decode_graph_cuda_test; do
    F=""; [ $t = ops_cuda_test ] && F="--gtest_filter=${OPS_FILTER:-Moe*:Matmul*}"
    timeout 240 $D/$t $F > $OUT/$t.log 2>&1; echo "=== $t rc=$?" >> $OUT/tests.txt
    grep -E "^\[  (PASSED|FAILED) |^\[       OK \]|^\[  FAILED|Failure|Expected|Which is|error|differ" $OUT/$t.log \
      | head -40 >> $OUT/tests.txt
  done
  cat $OUT/tests.txt
fi
[ "${SKIP_BENCH:-0}" = 1 ] && exit 0
BINS=${BINS:-tide tide_dev tide_host}
for m in qwen3_moe_small mixtral_small; do
  ( time timeout 200 $D/tide synth -c scripts/cuda/${m}_config.json -o /tmp/$m --dtype bf16 ) > $OUT/synth_$m.log 2>&1
  tail -1 $OUT/synth_$m.log
  for b in $BINS; do
    [ -x $D/$b ] || continue
    echo "=== $b bench forward $m"
    timeout 240 $D/$b bench forward --device cuda -m /tmp/$m --batch ${BATCHES:-1,8,32,64} --prompt-len 128 \
      --decode-steps 32 2>&1 | tee $OUT/bench_${m}_${b}.log | grep -vE "^\[tide\]"
  done
  rm -rf /tmp/$m
done
# Rows of `bench forward`: batch prompt | prefill tok/s of-peak | decode tok/s of-floor
# bound | forward tok/s of-floor ms/step.
echo "=== summary: forward ms/step (model step alone) and prefill tok/s (batch x 128 tokens), per binary"
for m in qwen3_moe_small mixtral_small; do
  for b in $BINS; do
    f=$OUT/bench_${m}_${b}.log; [ -f $f ] || continue
    awk -v m=$m -v b=$b '/^[0-9]+ +[0-9]+ +\|/ { printf "%-16s %-10s batch %-4s forward %8s ms  prefill %9s tok/s\n", m, b, $1, $13, $4 }' $f
  done
done
[ -f $OUT/tests.txt ] && { echo "=== tests"; grep -E "^===|PASSED|FAILED" $OUT/tests.txt; }
