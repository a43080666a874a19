#!/usr/bin/env bash
# Device run for the prefill work (bf16-activation GEMM, tensor-core FlashAttention):
# cuda-labelled tests, the exact-vs-bf16 GEMM timing over m (to place
# kMatmulBf16MinRows), then `tide bench forward --device cuda` on a random
# Llama-3-8B-shape bf16 model synthesised into /tmp, old and new binary in the same run.
# Expects build/perfcarry-pre/ (carried): tide, tide_old (the binary to compare with),
# device_memory_test, ops_cuda_test, cuda_golden_test, lib/ (shared libraries tide links).
# Env: SKIP_TESTS=1, SKIP_TIMING=1, GEMM_TIMING=1, LENS="4096 1024" (prompt lengths),
# WARPS="8 4" (the tensor-core attention kernel's warps per block, one new-binary bench
# run each through TIDE_FLASH_WARPS).
cd "$(dirname "$0")/../.."
D=build/perfcarry-pre
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=$PWD/$D/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/gpu.txt
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  for t in device_memory_test ops_cuda_test cuda_golden_test; do
    timeout 150 $D/$t > $OUT/$t.log 2>&1; echo "=== $t rc=$?"
    grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|Failure|Expected|Which is|error" $OUT/$t.log | head -20
  done
  grep -E "relative norm error|bf16 activations" $OUT/ops_cuda_test.log $OUT/cuda_golden_test.log | sed 's/^.*log://' | sort | uniq | head -40
fi
if [ "${SKIP_TIMING:-0}" != 1 ]; then
  timeout 120 $D/ops_cuda_test --gtest_also_run_disabled_tests --gtest_filter='Attention*PrefillTiming*' > $OUT/attn_timing.log 2>&1
  echo "=== attention timing rc=$?"; grep "^attention" $OUT/attn_timing.log
  if [ "${GEMM_TIMING:-0}" = 1 ]; then
    timeout 120 $D/ops_cuda_test --gtest_also_run_disabled_tests --gtest_filter='Matmul*PrefillTiming*' > $OUT/gemm_timing.log 2>&1
    echo "=== gemm timing rc=$?"; grep "^matmul" $OUT/gemm_timing.log
  fi
fi
( time timeout 200 $D/tide synth -c scripts/cuda/llama3_8b_config.json -o /tmp/l8b --dtype bf16 ) > $OUT/synth.log 2>&1
tail -3 $OUT/synth.log
RUNS="tide_old"; for w in ${WARPS:-8}; do RUNS="$RUNS tide:$w"; done
for len in ${LENS:-4096 1024}; do
  for run in $RUNS; do
    bin=${run%%:*}; w=${run#*:}; [ "$w" = "$run" ] && w=8; tag=${bin}_w${w}_$len
    echo "=== $bin (TIDE_FLASH_WARPS=$w) bench forward --device cuda --batch 1 --prompt-len $len --decode-steps 4"
    TIDE_FLASH_WARPS=$w timeout 100 $D/$bin bench forward --device cuda -m /tmp/l8b --batch 1 --prompt-len $len \
      --decode-steps 4 > $OUT/bench_$tag.log 2>&1; echo "rc=$?"
    grep -vE "^\[tide\]" $OUT/bench_$tag.log | grep -v "^decode floor" | tail -3
  done
done
echo "=== summary ($(cut -d, -f1 $OUT/gpu.txt))"
for len in ${LENS:-4096 1024}; do
  for run in $RUNS; do
    bin=${run%%:*}; w=${run#*:}; [ "$w" = "$run" ] && w=8; tag=${bin}_w${w}_$len
    printf "%-8s w%s | " $bin $w
    grep -E "^1 +$len " $OUT/bench_$tag.log | head -1
  done
done
grep -h "^gpu:" $OUT/bench_tide_*.log | head -2
