#!/usr/bin/env bash
# Device run (on the GPU machine) for MoE on CUDA (ops/moe_experts): the cuda-labelled
# tests that cover it, then decode steps of random MoE models synthesised in the same run
# (a 6-layer Qwen3-30B-A3B-shape and a 2-layer Mixtral-8x7B-shape, bf16) under
# `tide bench forward --device cuda`: the new binary with and without decode graphs against
# tide_old (the host-grouping MoE, no graphs for MoE) on the same card.
# Expects build/h-moe-carry.tar.xz (carried) holding h-moe-carry/: tide, tide_old,
# ops_cuda_test, cuda_golden_test, decode_graph_cuda_test, lib/.
# Env: SKIP_TESTS=1, SKIP_BENCH=1, OPS_FILTER (gtest filter for ops_cuda_test), BATCHES.
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
mkdir -p /tmp/carry && tar -xJf build/h-moe-carry.tar.xz -C /tmp/carry
D=/tmp/carry/h-moe-carry
export LD_LIBRARY_PATH=$D/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/gpu.txt
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  for t in ops_cuda_test cuda_golden_test decode_graph_cuda_test; do
    F=""; [ $t = ops_cuda_test ] && F="--gtest_filter=${OPS_FILTER:-*}"
    timeout 200 $D/$t $F > $OUT/$t.log 2>&1; echo "=== $t rc=$?" >> $OUT/tests.txt
    grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|Failure|Expected|Which is|error|differ" $OUT/$t.log | head -20 >> $OUT/tests.txt
  done
  cat $OUT/tests.txt
fi
[ "${SKIP_BENCH:-0}" = 1 ] && exit 0
for m in qwen3_moe_small mixtral_small; do
  ( time timeout 200 $D/tide synth -c scripts/cuda/${m}_config.json -o /tmp/$m --dtype bf16 ) > $OUT/synth_$m.log 2>&1
  tail -1 $OUT/synth_$m.log
  for b in tide tide_nograph tide_old; do
    echo "=== $b bench forward $m"
    bin=$b; env=""; [ $b = tide_nograph ] && { bin=tide; env="TIDE_CUDA_GRAPHS=0"; }
    env $env timeout 200 $D/$bin bench forward --device cuda -m /tmp/$m --batch ${BATCHES:-1,8,64} --prompt-len 128 \
      --decode-steps 32 2>&1 | tee $OUT/bench_${b}_$m.log | grep -vE "^\[tide\]"
  done
  rm -rf /tmp/$m
done
echo "=== summary (batch prompt | prefill tok/s, of peak | decode tok/s, of floor, bound | forward tok/s, of floor, ms)"
for f in $OUT/bench_*.log; do echo "-- $(basename $f)"; grep -E "^[0-9]" $f; done
[ -f $OUT/tests.txt ] && { echo "=== tests"; cat $OUT/tests.txt; }
