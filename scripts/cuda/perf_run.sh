#!/usr/bin/env bash
# Device run (on the GPU machine) for the decode/prefill figures of docs/perf.md:
# cuda-labelled tests first, then the decode kernels one by one (cuda_decode_bench),
# then `tide bench forward --device cuda` on a random Llama-3-8B-shape bf16 model
# synthesised into /tmp in the same run. Each bench run measures the GPU's read
# bandwidth and bf16 GEMM rate itself.
# Expects build/perfcarry/ (carried): tide, device_memory_test, ops_cuda_test,
# cuda_golden_test, cuda_decode_bench, lib/ (the shared libraries tide links), and
# optionally tide_base (an older tide, timed with `tide generate` as a same-run baseline).
# Env: D=folder (instead of build/perfcarry), SKIP_TESTS=1, SKIP_BENCH=1, BENCH="args"
# (extra bench forward runs, ';'-separated), AB=1 (each bench run again with
# TIDE_CUDA_GRAPHS=0 and, when present, with tide_base), DECODE_ONLY=1 (skip the 4k run),
# TRACE=1 (the 1k-context run also traces decode-step overhead with CUPTI).
cd "$(dirname "$0")/../.."
D=${D:-build/perfcarry}
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=$PWD/$D/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/gpu.txt
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  for t in device_memory_test ops_cuda_test cuda_golden_test decode_graph_cuda_test model_runner_greedy_test kernel_trace_test; do
    [ -x $D/$t ] || continue
    timeout 150 $D/$t > $OUT/$t.log 2>&1; echo "=== $t rc=$?"
    grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|Failure|Expected|Which is|error" $OUT/$t.log | head -20
  done
fi
[ "${SKIP_BENCH:-0}" = 1 ] && exit 0
timeout 120 $D/cuda_decode_bench > $OUT/kernels.log 2>&1; echo "=== cuda_decode_bench rc=$?"
( time timeout 300 $D/tide synth -c scripts/cuda/llama3_8b_config.json -o /tmp/l8b --dtype bf16 ) > $OUT/synth.log 2>&1
tail -3 $OUT/synth.log
P=128000,791,6864,315,9822,374,12366,13
if [ -x $D/tide_base ]; then
  echo "=== baseline (older tide) generate, batch 1"
  timeout 120 $D/tide_base generate -m /tmp/l8b --device cuda --prompt-ids $P -n 64 --ignore-eos 2>&1 | tail -3 | tee $OUT/base.log
fi
echo "=== new tide generate, batch 1"
timeout 120 $D/tide generate -m /tmp/l8b --device cuda --prompt-ids $P -n 64 --ignore-eos 2>&1 | tail -3 | tee $OUT/gen.log
echo "=== new tide generate, batch 1, sampled on the GPU (temperature 0.8, top-k 50, top-p 0.9)"
timeout 120 $D/tide generate -m /tmp/l8b --device cuda --prompt-ids $P -n 64 --ignore-eos -t 0.8 --top-k 50 --top-p 0.9 --seed 7 2>&1 | tail -3 | tee $OUT/gen_sampled.log
run_bench() {
  echo "=== tide bench forward --device cuda $*"
  timeout 300 $D/tide bench forward --device cuda -m /tmp/l8b "$@" 2>&1 | tee -a $OUT/bench.log | grep -vE "^\[tide\]"
  if [ "${AB:-0}" = 1 ]; then
    echo "=== (graphs off) tide bench forward --device cuda $*"
    TIDE_CUDA_GRAPHS=0 timeout 300 $D/tide bench forward --device cuda -m /tmp/l8b "$@" 2>&1 | tee -a $OUT/bench_nograph.log | grep -E "^[0-9]"
    if [ -x $D/tide_base ]; then
      echo "=== (tide_base) tide bench forward --device cuda $*"
      timeout 300 $D/tide_base bench forward --device cuda -m /tmp/l8b "$@" 2>&1 | tee -a $OUT/bench_base.log | grep -E "^[0-9]"
    fi
  fi
}
run_bench --batch 1 --prompt-len 128 --decode-steps 64
run_bench --batch 1,8,32,64 --prompt-len 1024 --decode-steps 32 ${TRACE:+--trace-overhead}
[ "${DECODE_ONLY:-0}" = 1 ] || run_bench --batch 1 --prompt-len 4096 --decode-steps 8
IFS=';' read -ra extra <<< "${BENCH:-}"
for e in "${extra[@]}"; do run_bench $e; done
echo "=== kernels"
cat $OUT/kernels.log
echo "=== summary (batch prompt | prefill tok/s, of peak | decode tok/s, of floor, bound | forward tok/s, of floor, ms)"
for f in bench bench_nograph bench_base; do
  [ -f $OUT/$f.log ] && { echo "-- $f"; grep -E "^[0-9]" $OUT/$f.log; }
done
grep -hE "tok/s" $OUT/base.log $OUT/gen.log $OUT/gen_sampled.log 2>/dev/null | tail -3
